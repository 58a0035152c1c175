"""matchar.io.load_spectrum_image on the real Bruker EDX map, then an NMF fit of it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matchar as mc


def test_missing_file_and_bad_extension(tmp_path):
    with pytest.raises(FileNotFoundError):
        mc.io.load_spectrum_image(tmp_path / "absent.bcf")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="unsupported extension"):
        mc.io.load_spectrum_image(tmp_path / "x.txt")


def test_bruker_bcf_loads_and_decomposes(shared_data):
    pytest.importorskip("rsciio")
    path = shared_data / "bruker-test_TEM.bcf"
    if not path.exists():
        pytest.skip(f"{path} not found")
    cube, energy, meta = mc.io.load_spectrum_image(path)
    assert cube.shape == (64, 64, 2048)
    assert cube.dtype.kind == "u"  # raw counts, read in place by NMF
    assert energy.shape == (2048,)
    assert meta["energy_units"] == "keV"
    np.testing.assert_allclose(np.diff(energy), meta["energy_scale"])
    nmf = mc.spectral.NMF(4, max_iter=100, random_state=0)
    maps = nmf.fit_transform(cube)
    assert maps.shape == (64, 64, 4)
    assert np.isfinite(nmf.components_).all()
    deviance = float(nmf.residual_map_.sum())
    # Poisson deviance per count of the rank-4 model: reported, and far below the
    # deviance of a rank-0 (mean spectrum) model of the same data.
    X = cube.reshape(-1, 2048).astype(np.float64)
    mean = X.mean(0, keepdims=True) * np.ones((X.shape[0], 1))
    nz = X > 0
    dev0 = 2 * (np.sum(X[nz] * np.log(X[nz] / np.maximum(mean[nz], 1e-12))) - X.sum() + mean.sum())
    print(
        f"bruker-test_TEM.bcf: {int(X.sum())} counts, NMF(4) KL deviance {deviance:.1f}, "
        f"mean-spectrum model {dev0:.1f}, {nmf.n_iter_} iterations"
    )
    assert deviance < dev0


def test_jeol_pts_loads(shared_data):
    pytest.importorskip("rsciio")
    pytest.importorskip("numba")  # rosettasciio's .pts reader needs it (matchar[io])
    path = shared_data / "jeol-edx-512x512.pts"
    if not path.exists():
        pytest.skip(f"{path} not found")
    cube, energy, meta = mc.io.load_spectrum_image(path)
    assert cube.shape == (512, 512, 4096) and cube.dtype.kind == "u"
    assert int(cube.sum(dtype=np.int64)) > 0
    assert energy.shape == (4096,) and meta["energy_units"] == "keV"
    np.testing.assert_allclose(np.diff(energy), meta["energy_scale"])


def test_velox_emd_loads(shared_data, tmp_path):
    import zipfile

    pytest.importorskip("rsciio")
    pytest.importorskip("h5py")
    pytest.importorskip("sparse")  # rosettasciio's Velox EDS stream reader needs it
    archive = shared_data / "velox-edx-16x16.zip"
    if not archive.exists():
        pytest.skip(f"{archive} not found")
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path)
    full = next(p for p in tmp_path.rglob("*.emd") if "Reduced" not in p.name)
    cube, energy, meta = mc.io.load_spectrum_image(full)
    assert cube.shape == (16, 16, 4096) and cube.dtype.kind == "u"
    assert int(cube.sum(dtype=np.int64)) > 0
    assert energy.shape == (4096,) and meta["energy_units"] == "keV"
    image, pixel_size, _ = mc.io.load_image(full)
    assert image.shape == (16, 16) and pixel_size is not None and pixel_size > 0
    # the reduced file keeps the maps and the summed spectrum, not the spectrum image
    reduced = next(p for p in tmp_path.rglob("*.emd") if "Reduced" in p.name)
    # RosettaSciIO's log message about it is a warning naming the file, not a print
    with pytest.warns(UserWarning, match=r"Reduced.*No spectrum stream.*\(RosettaSciIO\)"):
        mc.io.list_signals(reduced)
    # asked for a spectrum image, the reader's message is the reason: in the error, once
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            ValueError, match=r"holds no spectrum image.*The reader says: No spectrum stream"
        ):
            mc.io.load_spectrum_image(reduced)
