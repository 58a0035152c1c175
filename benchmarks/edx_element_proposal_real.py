"""Element proposal (EDXModel.propose_elements) on the real EDX files of ../shared/data.

For each file: the summed spectrum (in blocks, never a float64 copy of the cube), the
elements its metadata list (``Sample.elements``), the proposal with those as ``known``
(or from the peaks alone when the file lists none), the elements labelled
detector/holder, the elements outside the metadata, the candidates rejected and the
proposal without the family test, the artefacts and the FDR (``family_check=False,
artefacts=False, fdr=1``). For a file without element
metadata, a figure of the summed spectrum with the proposed elements' lines marked.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/edx_element_proposal_real.py \
        ../shared/data docs/spectral_physics
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

import matchar as mc
from matchar.spectral._edx import _summed_spectrum, edx_metadata
from matchar.spectral._elements import propose_elements

FILES = (
    "bruker-test_TEM.bcf",
    "sem-edx-P45.bcf",
    "sem-edx-ebsd.bcf",
    "jeol-edx-512x512.pts",
    "velox-edx-16x16.zip",
)


def summed(path: Path) -> list[tuple[str, np.ndarray, dict]]:
    """(name, summed spectrum (C,), edx_metadata) of each spectrum image in ``path``; the
    Velox archive's reduced-data .emd (per-detector sum spectra, no spectrum image) is
    summed over its spectra."""
    if path.suffix != ".zip":
        cube, _, meta = mc.io.load_spectrum_image(path, lazy=path.suffix == ".pts")
        spec = _summed_spectrum(cube, cube.shape[-1])
        return [(path.name, spec, edx_metadata(meta, spec.size))]
    out = []
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            if not name.endswith(".emd"):
                continue
            f = Path(z.extract(name, tmp))
            label = f"{path.name}: {name}"
            if "Reduced" not in name:
                cube, _, meta = mc.io.load_spectrum_image(f)
                spec = _summed_spectrum(cube, cube.shape[-1])
                out.append((label, spec, edx_metadata(meta, spec.size)))
                continue
            from rsciio.emd import file_reader

            items = [it for it in file_reader(str(f)) if np.ndim(it["data"]) == 1]
            spec = np.sum([np.asarray(it["data"], dtype=np.float64) for it in items], 0)
            ax = items[0]["axes"][0]
            meta = dict(
                energy_offset=ax["offset"],
                energy_scale=ax["scale"],
                energy_size=spec.size,
                energy_unit=ax.get("units"),
                metadata=items[0]["metadata"],
            )
            out.append((label, spec, edx_metadata(meta, spec.size)))
    return out


def figure(name: str, model, spec: np.ndarray, found: list, out: Path) -> Path:
    """The summed spectrum (log counts) with each proposed element's lines marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    E = model.energy
    top = min(E[-1], max(p["energy_keV"] for p in found) * 1.6 + 1.0) if found else E[-1]
    sel = (E >= model.low_cut_keV) & (E <= top)
    fig, ax = plt.subplots(figsize=(10, 4.2), layout="constrained")
    ax.semilogy(E[sel], np.maximum(spec[sel], 0.5), lw=0.8, color="0.2", label="summed counts")
    colors = plt.cm.tab10.colors
    for k, p in enumerate(found):
        m1 = mc.spectral.EDXModel([p["element"]], (model.offset, model.scale, E.size),
                                  model.beam_energy_keV, resolution_eV=model.resolution_eV,
                                  takeoff_deg=model.takeoff_deg)  # fmt: skip
        wmax = max(ln["weight"] for ln in m1.lines)
        lines = [ln for ln in m1.lines if ln["weight"] >= 0.05 * wmax and ln["energy_keV"] <= top]
        c = colors[k % 10]
        for j, ln in enumerate(lines):
            label = f"{p['element']} ({p['source']})" if j == 0 else None
            ax.axvline(ln["energy_keV"], color=c, lw=0.9, ls="--", alpha=0.85, label=label)
    ax.legend(loc="upper right", fontsize=8, title="lines >= 5 % of the strongest")
    ax.set_xlabel("energy (keV)")
    ax.set_ylabel("counts per channel (summed over the map)")
    ax.set_xlim(E[sel][0], top)
    fig.suptitle(f"{name}: proposed {', '.join(p['element'] for p in found) or 'none'}",
                 fontsize=10)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    path = out / (
        "proposal_" + name.split(":")[-1].strip().replace(" ", "_").split(".")[0] + ".png"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="the shared data folder")
    ap.add_argument("figures", type=Path, nargs="?", help="folder for the figures")
    args = ap.parse_args()
    rows = []
    for fname in FILES:
        path = args.data / fname
        if not path.exists():
            print(f"{fname}: not found, skipped")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parts = summed(path)
        for name, spec, md in parts:
            listed = md["elements"]
            model = mc.spectral.EDXModel(
                ["Si"], md["energy_axis"], md["beam_energy_keV"],
                resolution_eV=md["resolution_eV"], takeoff_deg=md["takeoff_deg"],
            )  # fmt: skip
            t0 = time.perf_counter()
            found, info = propose_elements(model, spec, known=listed, return_details=True)
            dt = time.perf_counter() - t0
            # the same search without the family test, the artefacts and the FDR
            loose = propose_elements(
                model, spec, known=listed, family_check=False, artefacts=False, fdr=1.0
            )
            info["loose"] = [p["element"] for p in loose if p["source"] != "known"]
            labelled = [p["element"] for p in found if p["source"] == "detector/holder"]
            extra = [p["element"] for p in found if listed and p["element"] not in listed
                     and p["source"] != "detector/holder"]  # fmt: skip
            fig = None
            if not listed and args.figures is not None:
                fig = figure(name, model, spec, found, args.figures)
            rows.append((name, int(spec.sum()), listed, found, labelled, extra, dt, fig, info))
    print("| file | counts | metadata elements | proposed (z) | detector/holder | outside "
          "metadata | rejected candidates | time | without the tests |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for name, n, listed, found, labelled, extra, dt, _, info in rows:
        prop = ", ".join(f"{p['element']} ({p['z']:.0f})" for p in found if p["source"] != "known")
        rej = ", ".join(sorted(info["rejected"]))
        print(f"| {name} | {n:,} | {', '.join(listed) if listed else '(none)'} | {prop or '-'} "
              f"| {', '.join(labelled) or '-'} | "
              f"{(', '.join(extra) or 'none') if listed else 'n/a'} | {rej or '-'} | "
              f"{dt:.1f} s | {', '.join(info['loose']) or '-'} |")  # fmt: skip
    for name, *_, fig, info in rows:
        print(f"{name}: background {info['background']}, {info['n_tests']} candidates tested")
        if fig is not None:
            print(f"{name}: figure {fig}")
        for el, why in info["rejected"].items():
            print(f"  {name}: {el} rejected: {why}")


if __name__ == "__main__":
    main()
