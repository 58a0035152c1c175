"""Unreadable files (empty, random bytes, truncated, directories) given to the loaders in
matchar.io: one FileFormatError (a ValueError) naming the file and the format, never a
reader's raw struct.error/IndexError/OSError, a crash or silently wrong data."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import matchar.io
from matchar.io import FileFormatError

SPECTRUM_FORMATS = {
    ".bcf": "Bruker .bcf",
    ".spx": "Bruker .spx",
    ".emd": "EMD .emd",
    ".hspy": "HyperSpy .hspy",
    ".dm3": "DigitalMicrograph .dm3",
    ".dm4": "DigitalMicrograph .dm4",
    ".pts": "JEOL .pts",
}


def _truncated(src, dst, fraction: float):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def _raises_naming(path, fmt: str, reason: str = ""):
    """pytest.raises(FileFormatError) whose message names the file and the format."""
    return pytest.raises(
        FileFormatError,
        match=rf"cannot read '{re.escape(str(path))}' as .*{re.escape(fmt)}.*{reason}",
    )


def test_file_format_error_is_a_value_error():
    assert issubclass(FileFormatError, ValueError)


@pytest.mark.parametrize("ext", sorted(SPECTRUM_FORMATS))
@pytest.mark.parametrize("kind", ["empty", "random"])
def test_spectrum_image_empty_or_random_bytes(tmp_path, ext, kind):
    pytest.importorskip("rsciio")
    pytest.importorskip("h5py")
    path = tmp_path / f"{kind}{ext}"
    path.write_bytes(b"" if kind == "empty" else np.random.default_rng(0).bytes(4096))
    reason = "file is empty" if kind == "empty" else ""
    with _raises_naming(path, SPECTRUM_FORMATS[ext], reason) as info:
        matchar.io.load_spectrum_image(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("ext", sorted(SPECTRUM_FORMATS))
def test_spectrum_image_directory_and_missing_file(tmp_path, ext):
    pytest.importorskip("rsciio")
    folder = tmp_path / f"folder{ext}"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=re.escape(str(folder))):
        matchar.io.load_spectrum_image(folder)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / f"absent{ext}"))):
        matchar.io.load_spectrum_image(tmp_path / f"absent{ext}")


@pytest.mark.parametrize(
    ("name", "fraction"),
    [
        ("bruker-test_TEM.bcf", 0.0003),  # inside the SFS header
        ("bruker-test_TEM.bcf", 0.02),  # struct.error in the reader before
        ("bruker-test_TEM.bcf", 0.5),  # silently all-zero counts before
        ("bruker-test_TEM.bcf", 0.9),  # StopIteration before
        ("sem-edx-P45.bcf", 0.95),
        ("sem-edx-ebsd.bcf", 0.5),
    ],
)
def test_truncated_bcf(shared_data, tmp_path, name, fraction):
    pytest.importorskip("rsciio")
    path = _truncated(shared_data / name, tmp_path / name, fraction)
    with _raises_naming(path, "Bruker .bcf", "file is truncated"):
        matchar.io.load_spectrum_image(path)


def test_truncated_bcf_that_crashed_the_reader_is_refused(shared_data, tmp_path):
    # rosettasciio's compiled .bcf reader dies with SIGSEGV on this file: run it in a
    # child so that a regression fails this test instead of killing the test session
    pytest.importorskip("rsciio")
    path = _truncated(shared_data / "sem-edx-P45.bcf", tmp_path / "half.bcf", 0.5)
    code = (
        "import sys, matchar.io\n"
        "try:\n    matchar.io.load_spectrum_image(sys.argv[1])\n"
        "except matchar.io.FileFormatError as err:\n    print(err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"cannot read '{path}' as Bruker .bcf: file is truncated" in out.stdout


@pytest.mark.parametrize("fraction", [0.002, 0.02, 0.5, 0.999])
def test_truncated_jeol_pts(shared_data, tmp_path, fraction):
    # the reader returned a cube of zeros past the end of the event stream
    pytest.importorskip("rsciio")
    path = _truncated(shared_data / "jeol-edx-512x512.pts", tmp_path / "map.pts", fraction)
    with _raises_naming(path, "JEOL .pts", "file is truncated"):
        matchar.io.load_spectrum_image(path)


def test_pts_without_numba_names_the_missing_module(shared_data, monkeypatch):
    pytest.importorskip("rsciio")
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba -> ImportError
    with pytest.raises(ImportError, match=r"needs the module 'numba'.*matchar\[io\]"):
        matchar.io.load_spectrum_image(shared_data / "jeol-edx-512x512.pts")


@pytest.fixture
def velox_emd(shared_data, tmp_path):
    """The Velox EDS spectrum-image .emd from velox-edx-16x16.zip, unzipped to tmp_path."""
    archive = shared_data / "velox-edx-16x16.zip"
    if not archive.exists():
        pytest.skip(f"{archive} not found")
    with zipfile.ZipFile(archive) as z:
        name = next(n for n in z.namelist() if n.endswith(".emd") and "Reduced" not in n)
        z.extract(name, tmp_path / "velox")
    return tmp_path / "velox" / name


@pytest.mark.parametrize("fraction", [0.001, 0.3, 0.99])
def test_truncated_velox_emd(velox_emd, tmp_path, fraction):
    pytest.importorskip("rsciio")
    pytest.importorskip("h5py")
    path = _truncated(velox_emd, tmp_path / "cut.emd", fraction)
    with _raises_naming(path, "EMD .emd", "file is truncated"):
        matchar.io.load_spectrum_image(path)
    with _raises_naming(path, "EMD .emd", "file is truncated"):
        matchar.io.load_image(path)


def test_hdf5_file_of_another_layout(tmp_path):
    pytest.importorskip("rsciio")
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "plain.hspy"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros((4, 4))
    with _raises_naming(path, "HyperSpy .hspy", "not a valid HyperSpy"):
        matchar.io.load_spectrum_image(path)


def _png(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(path, np.random.default_rng(0).random((32, 32)))
    return path


@pytest.mark.parametrize(
    ("ext", "kind"),
    [
        *(
            (ext, kind)
            for ext in (".png", ".tif", ".npy", ".hspy")
            for kind in ("empty", "random", "truncated")
        ),
        (".dm3", "empty"),
        (".dm3", "random"),
    ],
)
def test_image_loader_bad_files(tmp_path, ext, kind):
    pytest.importorskip("rsciio")
    pytest.importorskip("h5py")
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / f"{kind}{ext}"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(1).bytes(2048))
    else:
        good = tmp_path / f"good{ext}"
        image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
        if ext == ".png":
            _png(good)
        elif ext == ".tif":
            tifffile.imwrite(good, image)
        elif ext == ".npy":
            np.save(good, image)
        else:
            matchar.io.save_hspy(good, image, n_signal_axes=2)
        assert matchar.io.load_image(good)[0].shape == (32, 32)
        _truncated(good, path, 0.6)
    fmt = {".png": "PNG", ".tif": "TIFF", ".npy": "NumPy .npy"}.get(ext, ext)
    with _raises_naming(path, fmt) as info:
        matchar.io.load_image(path)
    assert "\n" not in str(info.value)


def test_image_loader_directory_and_missing(tmp_path):
    folder = tmp_path / "images.png"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=re.escape(str(folder))):
        matchar.io.load_image(folder)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "no.png"))):
        matchar.io.load_image(tmp_path / "no.png")


def _xyz(tmp_path):
    import ase.build
    import ase.io

    path = tmp_path / "good.xyz"
    ase.io.write(path, [ase.build.molecule("CH3CH2OH"), ase.build.molecule("CH3OH")])
    return path


def test_load_structures_reads_every_frame(tmp_path):
    frames = matchar.io.load_structures(_xyz(tmp_path))
    assert [len(a) for a in frames] == [9, 6]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "file is empty"),
        (b"\n\n", "holds no structure"),
        (b"hello world\n", "Expected xyz header"),
        (bytes(range(128, 256)) * 4, "UnicodeDecodeError"),
        (b"1\n\nH nan 0 0\n", "non-finite"),
        (b"0\n\n", "no atoms"),
    ],
)
def test_load_structures_bad_files(tmp_path, content, reason):
    path = tmp_path / "bad.xyz"
    path.write_bytes(content)
    with _raises_naming(path, "structure file", reason):
        matchar.io.load_structures(path)


def test_load_structures_truncated_directory_missing_unknown(tmp_path):
    good = _xyz(tmp_path)
    cut = _truncated(good, tmp_path / "cut.xyz", 0.5)
    with _raises_naming(cut, "structure file", "Frame has"):
        matchar.io.load_structures(cut)
    (tmp_path / "frames.xyz").mkdir()
    with pytest.raises(IsADirectoryError, match=r"frames\.xyz"):
        matchar.io.load_structures(tmp_path / "frames.xyz")
    with pytest.raises(FileNotFoundError, match=r"absent\.xyz"):
        matchar.io.load_structures(tmp_path / "absent.xyz")
    (tmp_path / "mols.unknownext").write_text("abc")
    with _raises_naming(tmp_path / "mols.unknownext", "structure file", "ASE does not know"):
        matchar.io.load_structures(tmp_path / "mols.unknownext")
