"""The bad-input reproducers, each with its expected (fixed) outcome.

Every case runs in a child process (:mod:`harness`) under a 4 GiB address-space limit,
with RuntimeWarnings turned into errors, after :data:`harness.PRELUDE` (``np``, ``mc``,
``base()``: Poisson counts of shape (40, 30), ``limg()``: a 96 x 96 cosine lattice
image). ``expect`` lists the acceptable outcomes: a clear exception (``match``: a
regular expression its message must contain, usually the argument's name) and/or
``"ok"``: the call returned and everything in ``result`` is finite (some cases also
check the value). Cases marked ``slow`` take more than a few seconds even when fixed.

Used by ``test_reproducers.py`` and ``scripts/robustness.py``.
"""

from __future__ import annotations

from harness import Case

VALUE = ("ValueError",)
MEMORY = ("MemoryError",)
CLEAR = ("ValueError", "TypeError")
NOT_FITTED = ("matchar.NotFittedError",)
CTRL_C = ("KeyboardInterrupt",)
FILE_ERROR = ("ValueError", "OSError")

# Inputs of structure_posterior: 3 candidates, 8 sites; the shifts come from candidate
# 0 through delta = 31 - sigma.
POSTERIOR = """
rng = np.random.default_rng(0)
pred = rng.normal(30.0, 2.0, (3, 8))
exp = 31.0 - pred[0] + rng.normal(0.0, 0.2, 8)
"""

HAADF = "'fcc', (1, 1, 0), 4.0"
SMALL_LCM = "patch=8, window=8, n_shifts=20"

# A HAADF image the shipped classifier accepts (16 Å windows at 0.12 Å/px).
CLASSIFIER_IMAGE = """
img = mc.imaging.simulate_haadf('fcc', (1, 0, 0), 3.6, shape=(160, 160), pixel_size=0.12, seed=0)
clf = mc.imaging.CrystalClassifier.default()
"""

GP_DATA = """
rng = np.random.default_rng(0)
X = rng.random((60, 8))
y = X @ rng.random(8)
"""

EDX = "['Fe'], (0.0, 0.01, 1024)"

THREADS = """
import threading

def in_threads(fns):
    barrier = threading.Barrier(len(fns))
    errors = []

    def wrap(fn):
        try:
            barrier.wait()
            fn()
        except BaseException as err:
            errors.append(err)

    ts = [threading.Thread(target=wrap, args=(f,), daemon=True) for f in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
"""

# Loading a file that is empty, random bytes, truncated or a directory: one error that
# names the file (FileFormatError is a ValueError; a directory may give an OSError).
SPECTRUM_EXTS = (".emd", ".hspy", ".dm3", ".dm4", ".pts", ".bcf")

BAD_FILES = """
import os, tempfile
from pathlib import Path

tmp = Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)

def valid_hdf5():
    p = mc.io.save_hspy(tmp / 'valid.hspy', rng.poisson(5, (4, 4, 64)).astype(np.uint16))
    return Path(p).read_bytes()

HEADERS = {  # what a truncated file of each format starts with
    '.dm3': (3).to_bytes(4, 'big') + (10**6).to_bytes(4, 'big') + (1).to_bytes(4, 'big'),
    '.dm4': (4).to_bytes(4, 'big') + (10**6).to_bytes(8, 'big') + (1).to_bytes(4, 'big'),
    '.bcf': b'AAMVHFSS' + bytes(56),
    '.pts': (304).to_bytes(4, 'little') + b'JEOL' + bytes(24),
}

def make(kind, ext):
    p = tmp / f'{kind}{ext}'
    if kind == 'directory':
        p.mkdir()
    elif kind == 'empty':
        p.write_bytes(b'')
    elif kind == 'random':
        p.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    else:  # truncated
        data = valid_hdf5() if ext in ('.emd', '.hspy') else HEADERS[ext]
        p.write_bytes(data[: len(data) // 2])
    return p

def check(kind, load):
    bad = []
    for ext in EXTS:
        p = make(kind, ext)
        try:
            load(p)
            bad.append(f'{p.name}: no error')
        except (ValueError, OSError) as err:
            msg = str(err)
            if p.name not in msg or 'Traceback' in msg:
                bad.append(f'{p.name}: {type(err).__name__}: {msg[:160]}')
        except Exception as err:
            bad.append(f'{p.name}: {type(err).__name__}: {str(err)[:160]}')
    assert not bad, '; '.join(bad)
"""

CLI = """
import contextlib, io as _io, tempfile
from pathlib import Path
from matchar.cli import main

tmp = Path(tempfile.mkdtemp())

def cli(*argv):
    err = _io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(_io.StringIO()):
        rc = main([*map(str, argv), '--out', str(tmp / 'out')])
    return rc, err.getvalue().strip().splitlines()

def check(path, *argv):
    rc, lines = cli(*argv)
    assert rc == 2, f'exit code {rc}, stderr {lines[-3:]}'
    assert len(lines) == 1, f'{len(lines)} lines on stderr: {lines[-3:]}'
    assert Path(path).name in lines[0], f'the file is not named: {lines[0]}'
"""


def _cases() -> list[Case]:
    c: list[Case] = []
    add = c.append

    # -- crashes: allocations beyond the address-space limit -> MemoryError ------------
    for name, call in [
        ("haadf_16k_float64", f"mc.imaging.simulate_haadf({HAADF}, shape=(2**14, 2**14))"),
        (
            "haadf_16k_float32",
            f"mc.imaging.simulate_haadf({HAADF}, shape=(2**14, 2**14), dtype=np.float32)",
        ),
        ("haadf_2p28_by_1", f"mc.imaging.simulate_haadf({HAADF}, shape=(2**28, 1))"),
        (
            "cbed_16k",
            "mc.imaging.simulate_cbed('fcc', (1, 0, 0), 3.6, shape=(2**14, 2**14), "
            "reciprocal_pixel_size=1e-4)",
        ),
    ]:
        if name == "haadf_16k_float32":
            # The 1 GiB image and its float64 render buffer (2 GiB) fit under 4 GiB: the
            # image may also be computed (about 30 s on one core).
            add(
                Case(
                    name,
                    call,
                    ("MemoryError", "ok"),
                    timeout=120,
                    slow=True,
                    note="fits under the 4 GiB limit: computing it is correct too",
                )
            )
            continue
        add(Case(name, call, MEMORY, timeout=60))

    # -- crashes: corrupt CSR input ---------------------------------------------------
    csr = "import scipy.sparse as sp\nA = sp.csr_matrix(base().astype(np.float64))\n"
    add(
        Case(
            "nmf_csr_indices_out_of_range",
            "A.indices[3] = 10**6\nmc.spectral.NMF(1).fit_transform(A)",
            VALUE,
            match=r"(?i)ind",
            setup=csr,
        )
    )
    add(
        Case(
            "nmf_csr_indptr_out_of_range",
            "A.indptr[5] = A.nnz + 10**6\nmc.spectral.NMF(1).fit_transform(A)",
            VALUE,
            match=r"(?i)ind",
            setup=csr,
        )
    )

    # -- crashes: absurd thread counts -> clear error or a capped, working setting -----
    for label, n in (("1e6", "10**6"), ("600", "600")):
        add(
            Case(
                f"set_num_threads_{label}",
                f"mc.set_num_threads({n})\n"
                "result = mc.gp.polynomial_kernel(np.random.default_rng(0).random((500, 64)))\n"
                "result = (result, mc.get_num_threads())",
                ("ValueError", "ok"),
                match=r"\bn\b",
            )
        )

    # -- threads sharing one NMF stream ----------------------------------------------
    add(
        Case(
            "nmf_partial_fit_two_threads",
            "in_threads([lambda b=b: [nmf.partial_fit(b) for _ in range(3)] for b in blocks])\n"
            "assert nmf.n_samples_seen_ == 7000, nmf.n_samples_seen_\n"
            "result = nmf.components_",
            ("ok", "RuntimeError", "ValueError"),
            setup=THREADS + "rng = np.random.default_rng(0)\n"
            "blocks = [rng.poisson(5, (1000, 256)).astype(np.float64) for _ in range(2)]\n"
            "nmf = mc.spectral.NMF(4, batch_iter=50, random_state=0)\n"
            "nmf.partial_fit(blocks[0])\n",
            timeout=60,
            note="two threads, three blocks each, after a first partial_fit",
        )
    )
    add(
        Case(
            "nmf_first_partial_fit_four_threads",
            "in_threads([lambda b=b: nmf.partial_fit(b) for b in blocks])\n"
            "assert nmf.n_samples_seen_ == 2000, f'n_samples_seen_={nmf.n_samples_seen_}'\n"
            "result = nmf.components_",
            ("ok", "RuntimeError", "ValueError"),
            setup=THREADS + "rng = np.random.default_rng(0)\n"
            "blocks = [rng.poisson(5, (500, 256)).astype(np.float64) for _ in range(4)]\n"
            "nmf = mc.spectral.NMF(4, batch_iter=50, random_state=0)\n",
            timeout=60,
        )
    )

    # -- Ctrl-C: KeyboardInterrupt within a second of SIGINT --------------------------
    add(
        Case(
            "ctrl_c_nmf_inner_sweeps",
            "mc.spectral.NMF(2, loss='frobenius', inner_sweeps=10**9, random_state=0).fit(X)",
            ("KeyboardInterrupt", "ValueError"),
            match="inner_sweeps",
            setup="X = base()",
            interrupt=True,
            note="refusing inner_sweeps=10**9 up front (ValueError) is accepted too",
        )
    )
    add(
        Case(
            "ctrl_c_posterior_sampling",
            "mc.nmr.structure_posterior(pred, 0.3, exp, assignment='marginalize', "
            "method='sampling', n_samples=10**8)",
            ("KeyboardInterrupt", "ValueError"),
            match="n_samples",
            setup=POSTERIOR,
            interrupt=True,
            note="refusing n_samples=10**8 up front (ValueError) is accepted too",
        )
    )
    add(
        Case(
            "ctrl_c_posterior_exact_enumeration",
            "mc.nmr.structure_posterior(pred, 0.3, exp, assignment='marginalize', "
            "method='exact', max_permutations=float('inf'))",
            CTRL_C,
            setup="rng = np.random.default_rng(0)\n"
            "pred = rng.normal(30.0, 2.0, (2, 14))\n"
            "exp = 31.0 - pred[0] + rng.normal(0.0, 0.2, 14)\n",
            interrupt=True,
            note="max_permutations=inf lets an enumeration of 14! permutations run",
        )
    )
    add(
        Case(
            "ctrl_c_haadf_12000",
            f"mc.imaging.simulate_haadf({HAADF}, shape=(12000, 12000))",
            CTRL_C,
            interrupt=True,
        )
    )
    add(
        Case(
            "ctrl_c_polynomial_kernel_blas",
            "mc.gp.polynomial_kernel(X, Y, zeta=2)",
            CTRL_C,
            setup="rng = np.random.default_rng(0)\n"
            "X = rng.random((16000, 2000), dtype=np.float32)\n"
            "Y = rng.random((16000, 2000), dtype=np.float32)",
            interrupt=True,
            note="rectangular, > 2**24 multiply-adds: the BLAS route",
        )
    )
    add(
        Case(
            "ctrl_c_cbed_big",
            "mc.imaging.simulate_cbed('fcc', (1, 0, 0), 3.6, shape=(6144, 6144), "
            "reciprocal_pixel_size=0.004, convergence_mrad=10.0)",
            CTRL_C,
            interrupt=True,
        )
    )

    # -- hangs on tiny inputs: refuse up front or finish quickly ------------------------
    add(
        Case(
            "segment_max_regions_1e6",
            f"result = mc.imaging.segment(limg(), max_regions=10**6, {SMALL_LCM}).labels",
            ("ValueError", "ok"),
            match="max_regions",
        )
    )
    add(
        Case(
            "pca_n_iter_1e9",
            "result = mc.spectral.PCA(2, n_iter=10**9, random_state=0).fit(base()).components_",
            ("ValueError", "ok"),
            match="n_iter",
        )
    )
    add(
        Case(
            "nmf_broadcast_1e9_rows",
            "mc.spectral.NMF(2).fit_transform(np.broadcast_to(np.arange(1.0, 9.0), (10**9, 8)))",
            ("ValueError", "MemoryError"),
        )
    )

    # -- silent wrong results: EDX model parameters -----------------------------------
    for name, kw, arg in [
        ("edx_crystal_um_negative", "crystal_um=-1", "crystal_um"),
        ("edx_window_negative_thickness", "window=[('Si3N4', 3.44, -0.1)]", "window"),
        ("edx_dead_layer_nan", "dead_layer_um=float('nan')", "dead_layer_um"),
    ]:
        add(Case(name, f"result = mc.spectral.EDXModel({EDX}, {kw}).G", VALUE, match=arg))
    add(
        Case(
            "edx_n_background_400",
            f"result = mc.spectral.EDXModel({EDX}, n_background=400).G",
            ("ValueError", "ok"),
            match="n_background",
        )
    )

    # -- silent wrong results: PCA ----------------------------------------------------
    add(
        Case(
            "pca_partial_fit_1e300",
            "pca = mc.spectral.PCA(2, random_state=0).partial_fit(base() * 1e300)\n"
            "result = pca.components_",
            ("ValueError", "ok"),
            match="X",
        )
    )
    add(
        Case(
            "pca_n_oversamples_2_5",
            "mc.spectral.PCA(2, n_oversamples=2.5, random_state=0).fit(base())",
            VALUE,
            match="n_oversamples",
        )
    )

    # -- silent wrong results: imaging ------------------------------------------------
    add(
        Case(
            "classifier_nan_windows",
            "mc.imaging.CrystalClassifier.default().predict_windows("
            "np.full((2, 64, 64), np.nan, np.float32))",
            VALUE,
            match="windows",
        )
    )
    for name, edit in [
        ("lattice_vectors_nan_pixel", "img[10, 10] = np.nan"),
        ("lattice_vectors_inf_pixel", "img[10, 10] = np.inf"),
    ]:
        add(
            Case(
                name,
                f"img = limg()\n{edit}\nresult = mc.imaging.lattice_vectors(img)",
                ("ValueError", "ok"),
                match="image",
            )
        )
    for name, scale in [
        ("lattice_vectors_scaled_1e300", "1e300"),
        ("lattice_vectors_scaled_1e-300", "1e-300"),
    ]:
        add(
            Case(
                name,
                f"result = mc.imaging.lattice_vectors(limg() * {scale})\n"
                "ref = mc.imaging.lattice_vectors(limg())\n"
                "assert np.allclose(np.abs(result), np.abs(ref), atol=1e-6), (result, ref)",
                ("ok", "ValueError"),
                match="image",
            )
        )
    add(
        Case(
            "misorientation_tolerance_negative",
            "mc.imaging.misorientation_deg(np.eye(2), np.eye(2), tolerance=-1)",
            VALUE,
            match="tolerance",
        )
    )
    add(
        Case(
            "segment_min_silhouette_nan",
            f"mc.imaging.segment(limg(), min_silhouette=float('nan'), {SMALL_LCM})",
            VALUE,
            match="min_silhouette",
        )
    )
    for name, kw, arg in [
        ("haadf_atomic_number_29_7", "atomic_number=29.7", "atomic_number"),
        ("haadf_shape_non_integral", "shape=(64.5, 64)", "shape"),
        ("haadf_origin_three_values", "shape=(64, 64), origin=(1, 2, 3)", "origin"),
        ("haadf_drift_one_value", "shape=(64, 64), drift=(1.0,)", "drift"),
        ("haadf_thermal_sigma_1e300", "shape=(64, 64), thermal_sigma=1e300", "thermal_sigma"),
    ]:
        if "shape" not in kw:
            kw = "shape=(64, 64), " + kw
        add(Case(name, f"mc.imaging.simulate_haadf({HAADF}, {kw})", VALUE, match=arg))

    # -- silent wrong results: SOAP ---------------------------------------------------
    soap = "import ase.build\nframes = [ase.build.molecule('H2O')]\n"
    soap_args = "cutoff=4.0, max_radial=4, max_angular=3, species=['H', 'O']"
    for name, kw, arg in [
        ("soap_atomic_width_1e-300", "atomic_width=1e-300", "atomic_width"),
        ("soap_center_weight_1e300", "center_weight=1e300", "center_weight"),
    ]:
        add(
            Case(
                name,
                f"result = mc.atoms.SOAP({soap_args}, {kw}).compute(frames)",
                ("ValueError", "ok"),
                match=arg,
                setup=soap,
            )
        )
    add(
        Case(
            "soap_max_radial_22_to_24",
            "result = []\n"
            "for n in (22, 23, 24):\n"
            "    soap = mc.atoms.SOAP(cutoff=4.0, max_radial=n, max_angular=2, "
            "species=['H', 'O'])\n"
            "    try:\n"
            "        result.append(soap.compute(frames))\n"
            "    except ValueError as err:\n"
            "        raise AssertionError(f'max_radial={n}: accepted by SOAP(), "
            "refused by compute(): {err}') from None",
            ("ok", "ValueError"),
            match="max_radial",
            setup=soap,
            note="refused by the constructor, or computed",
        )
    )

    # -- silent wrong results: GP -----------------------------------------------------
    add(
        Case(
            "polynomial_kernel_overflow_float64",
            "mc.gp.polynomial_kernel(X * 1e200, zeta=3, normalize=False)",
            VALUE,
            setup=GP_DATA,
            note="(X . Y)**3 overflows float64: no finite answer, so a clear error",
        )
    )
    add(
        Case(
            "polynomial_kernel_overflow_float32",
            "mc.gp.polynomial_kernel(X.astype(np.float32) * np.float32(1e30), zeta=3, "
            "normalize=False)",
            VALUE,
            setup=GP_DATA,
        )
    )
    add(
        Case(
            "farthest_point_sampling_nan",
            "X[3, 2] = np.nan\nmc.gp.farthest_point_sampling(X, 5)",
            VALUE,
            match="X",
            setup=GP_DATA,
        )
    )

    # -- silent wrong results: NMR ----------------------------------------------------
    add(
        Case(
            "shielding_to_shift_reference_nan",
            "mc.nmr.shielding_to_shift([30.0], float('nan'))",
            VALUE,
            match="reference",
        )
    )
    for name, kw, arg in [
        (
            "posterior_max_permutations_nan",
            "method='exact', max_permutations=float('nan')",
            "max_permutations",
        ),
        (
            "posterior_max_permutations_negative",
            "method='exact', max_permutations=-1",
            "max_permutations",
        ),
        (
            "posterior_exact_group_size_negative",
            "method='bethe', exact_group_size=-1",
            "exact_group_size",
        ),
        ("posterior_n_samples_2_5", "method='sampling', n_samples=2.5", "n_samples"),
    ]:
        add(
            Case(
                name,
                f"mc.nmr.structure_posterior(pred, 0.3, exp, assignment='marginalize', {kw})",
                VALUE,
                match=arg,
                setup=POSTERIOR,
            )
        )
    add(
        Case(
            "posterior_predicted_std_nan",
            "mc.nmr.structure_posterior(pred, float('nan'), exp)",
            VALUE,
            match="predicted_std",
            setup=POSTERIOR,
        )
    )
    add(
        Case(
            "posterior_predicted_std_1e300",
            "result = mc.nmr.structure_posterior(pred, 1e300, exp)\n"
            "assert np.allclose(result, 1 / 3), result",
            ("ok",),
            setup=POSTERIOR,
            note="predictions that carry no information: a flat posterior",
        )
    )
    add(
        Case(
            "posterior_offset_prior_std_1e-300",
            "result = mc.nmr.structure_posterior(pred, 0.3, exp, offset_prior=(0.0, 1e-300))",
            ("ValueError", "ok"),
            match="offset_prior",
            setup=POSTERIOR,
        )
    )

    # -- silent wrong results: distributed, PhysicsNMF --------------------------------
    add(
        Case(
            "distributed_lcm_chunks_0",
            f"matchar.distributed.local_correlation_map(limg(), {SMALL_LCM}, chunks=0)",
            VALUE,
            match="chunks",
            setup="import matchar.distributed",
        )
    )
    add(
        Case(
            "physics_nmf_nearly_empty_map",
            "est = mc.spectral.PhysicsNMF(model, 2, max_iter=20, random_state=0)\n"
            "maps = est.fit_transform(X)\n"
            "result = (maps, est.components_, est.W_, est.composition_, est.element_maps_,\n"
            "          est.quantification())",
            ("ok", "ValueError"),
            match="X",
            setup="model = mc.spectral.EDXModel(['Cu', 'Zn'], (0.2, 0.02, 500))\n"
            "X = np.zeros((8, 8, 500), np.uint16)\n"
            "X[0, 0, 100] = 1\nX[3, 5, 200] = 2\n",
            note="two counts in 64 pixels",
        )
    )

    # -- unclear errors: integers >= 2**31 name the argument --------------------------
    for name, call, arg in [
        ("lcm_window_2p31", "mc.imaging.local_correlation_map(limg(), window=2**31)", "window"),
        (
            "lcm_n_shifts_2p32_plus_5",
            "mc.imaging.local_correlation_map(limg(), n_shifts=2**32 + 5)",
            "n_shifts",
        ),
        (
            "polynomial_kernel_zeta_2p63",
            "mc.gp.polynomial_kernel(np.ones((4, 3)), zeta=2**63)",
            "zeta",
        ),
        ("set_num_threads_2p31", "mc.set_num_threads(2**31)", r"\bn\b"),
        (
            "nmf_batch_iter_1e12",
            "mc.spectral.NMF(2, batch_iter=10**12).partial_fit(base())",
            "batch_iter",
        ),
    ]:
        add(Case(name, call, VALUE, match=arg))

    # -- unclear errors: complex and huge values --------------------------------------
    refs = "refs = np.abs(np.random.default_rng(0).normal(size=(200, 2))) + 0.1\n"
    add(
        Case(
            "reference_model_complex",
            "result = mc.spectral.ReferenceModel(refs + 0j, (100.0, 1.0, 200)).G",
            (*CLEAR, "ok"),
            match="references",
            setup=refs,
        )
    )
    add(
        Case(
            "reference_model_1e308",
            "m = mc.spectral.ReferenceModel(refs / refs.max() * 1e308, (100.0, 1.0, 200))\n"
            "X = np.random.default_rng(1).poisson(m.G[:, :2] @ [50.0, 50.0] * 1e-300 + 1.0, "
            "(6, 6, 200))\n"
            "est = mc.spectral.PhysicsNMF(m, 1, max_iter=10, random_state=0)\n"
            "result = (m.G, est.fit_transform(X), est.components_)",
            ("ValueError", "ok"),
            match="references",
            setup=refs,
        )
    )
    add(
        Case(
            "sparse_gpr_complex_y",
            "gpr = mc.gp.SparseGPR(n_sparse=10).fit(X, y + 0j)\n"
            "result = gpr.predict(X)\n"
            "assert not np.iscomplexobj(result)",
            (*CLEAR, "ok"),
            match=r"\by\b",
            setup=GP_DATA,
        )
    )
    add(
        Case(
            "lcm_fft_scaled_1e300",
            f"result = mc.imaging.local_correlation_map(limg() * 1e300, {SMALL_LCM}, "
            "method='fft')[0]\n"
            f"ref = mc.imaging.local_correlation_map(limg(), {SMALL_LCM}, method='fft')[0]\n"
            "assert np.allclose(result, ref, atol=1e-5)",
            ("ok", "ValueError"),
            match="image",
        )
    )
    add(
        Case(
            "lcm_scaled_1e-300",
            f"result = mc.imaging.local_correlation_map(limg() * 1e-300, {SMALL_LCM})[0]\n"
            f"ref = mc.imaging.local_correlation_map(limg(), {SMALL_LCM})[0]\n"
            "assert np.allclose(result, ref, atol=1e-5)",
            ("ok", "ValueError"),
            match="image",
            reject="constant",
            note="a lattice scaled by 1e-300 is not a constant image",
        )
    )
    add(
        Case(
            "classifier_predict_scaled_1e300",
            "result = clf.predict(img * 1e300, 0.12)",
            ("ok", "ValueError"),
            match="image",
            setup=CLASSIFIER_IMAGE,
        )
    )
    add(
        Case(
            "classify_map_scaled_1e300",
            "result = mc.imaging.classify_map(img * 1e300, 0.12)",
            ("ok", "ValueError"),
            match="image",
            setup=CLASSIFIER_IMAGE,
        )
    )

    # -- unclear errors: bad sizes and objects ----------------------------------------
    for n in (-1, 0):
        add(
            Case(
                f"classify_map_batch_size_{n}",
                f"mc.imaging.classify_map(img, 0.12, batch_size={n})",
                VALUE,
                match="batch_size",
                setup=CLASSIFIER_IMAGE,
            )
        )
    add(
        Case(
            "classifier_garbage_onnx",
            "mc.imaging.CrystalClassifier(onnx)",
            FILE_ERROR,
            match="garbage.onnx",
            setup="import shutil, tempfile\nfrom pathlib import Path\n"
            "import matchar.imaging._classifier as m\n"
            "tmp = Path(tempfile.mkdtemp())\n"
            "shipped = Path(m.__file__).parent / 'models' / 'crystal_classifier.json'\n"
            "shutil.copy(shipped, tmp / 'garbage.json')\n"
            "onnx = tmp / 'garbage.onnx'\n"
            "onnx.write_bytes(np.random.default_rng(0).bytes(5000))\n",
        )
    )
    add(
        Case(
            "shift_model_garbage_npz",
            "mc.nmr.ShiftModel.load(path)",
            FILE_ERROR,
            match="garbage.npz",
            setup="import tempfile\nfrom pathlib import Path\n"
            "path = Path(tempfile.mkdtemp()) / 'garbage.npz'\n"
            "path.write_bytes(np.random.default_rng(0).bytes(5000))\n",
        )
    )
    add(
        Case(
            "sparse_gpr_kernel_not_callable",
            "mc.gp.SparseGPR(kernel=3, n_sparse=10).fit(X, y)",
            CLEAR,
            match="kernel",
            setup=GP_DATA,
        )
    )

    # -- "not fitted" is matchar.NotFittedError everywhere ----------------------------
    for name, call, setup in [
        ("not_fitted_nmf_transform", "mc.spectral.NMF(2).transform(base())", ""),
        ("not_fitted_pca_transform", "mc.spectral.PCA(2).transform(base())", ""),
        ("not_fitted_sparse_gpr_predict", "mc.gp.SparseGPR().predict(X)", GP_DATA),
        (
            "not_fitted_segmenter_predict",
            f"mc.imaging.Segmenter(2, {SMALL_LCM}).predict(limg())",
            "",
        ),
        (
            "not_fitted_physics_nmf_quantification",
            "mc.spectral.PhysicsNMF(mc.spectral.EDXModel(['Cu'], (0.2, 0.02, 500)), 1)"
            ".quantification()",
            "",
        ),
        (
            "not_fitted_shift_model_predict",
            "mc.nmr.ShiftModel('H').predict([ase.build.molecule('H2O')])",
            "import ase.build",
        ),
    ]:
        add(Case(name, call, NOT_FITTED, setup=setup))

    # -- files: empty, random, truncated, directories -> one error naming the file ----
    for kind in ("empty", "random", "truncated", "directory"):
        add(
            Case(
                f"load_spectrum_image_{kind}",
                f"check({kind!r}, mc.io.load_spectrum_image)",
                ("ok",),
                setup=f"EXTS = {SPECTRUM_EXTS!r}\n" + BAD_FILES,
                note=f"{kind} files named {' '.join(SPECTRUM_EXTS)}; the case raises "
                "AssertionError listing the files without a clear error",
            )
        )

    # -- the command line: one line on stderr naming the file, exit code 2 ------------
    cli_cases = [
        (
            "cli_decompose_bad_files",
            "for kind in ('empty', 'random', 'truncated', 'directory'):\n"
            "    for ext in EXTS:\n"
            "        p = make(kind, ext)\n"
            "        check(p, 'decompose', p)",
        ),
        (
            "cli_shifts_empty_xyz",
            "p = tmp / 'empty.xyz'; p.write_text('')\ncheck(p, 'shifts', p)",
        ),
        (
            "cli_soap_empty_xyz",
            "p = tmp / 'empty.xyz'; p.write_text('')\ncheck(p, 'soap', p)",
        ),
        (
            "cli_rank_empty_xyz",
            "p = tmp / 'empty.xyz'; p.write_text('')\n"
            "e = tmp / 'exp.csv'; e.write_text('1.0\\n2.0\\n')\n"
            "check(p, 'rank', p, '--experimental', e)",
        ),
        (
            "cli_segment_corrupt_png",
            "p = tmp / 'corrupt.png'\n"
            "p.write_bytes(b'\\x89PNG\\r\\n\\x1a\\n' + np.random.default_rng(0).bytes(500))\n"
            "check(p, 'segment', p)",
        ),
    ]
    for name, code in cli_cases:
        setup = CLI
        if name == "cli_decompose_bad_files":
            setup += f"EXTS = {SPECTRUM_EXTS!r}\n" + BAD_FILES.replace("def check(", "def _(")
        add(Case(name, code, ("ok",), setup=setup))
    return c


CASES: list[Case] = _cases()
BY_NAME: dict[str, Case] = {case.name: case for case in CASES}
assert len(BY_NAME) == len(CASES), "case names must be unique"
