"""NMF / PCA on dask arrays under dask.distributed: equal to the in-memory path."""

from __future__ import annotations

import os

import numpy as np
import pytest
from spectral_reference import phase_cube

import matchar as mc

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
import dask  # noqa: E402


@pytest.fixture
def client(dask_client):
    """The session's 2-process LocalCluster (tests/conftest.py), current for this test."""
    with dask_client.as_current():
        yield dask_client


@pytest.fixture(scope="module")
def cube():
    return phase_cube(seed=5, side=24, n_channels=64)[0]  # (24, 24, 64) uint16


def test_nmf_kl_dask_equals_in_memory(client, cube):
    # Chunks split the energy axis too: they are rechunked to whole spectra.
    X = da.from_array(cube, chunks=(7, 24, 40))
    kw = dict(random_state=0, max_iter=8, tol=0, dtype="float64", eval_every=4)
    ref = mc.spectral.NMF(3, **kw)
    maps_ref = ref.fit_transform(cube)
    est = mc.spectral.NMF(3, **kw)
    maps = est.fit_transform(X)
    assert isinstance(maps, da.Array) and maps.shape == (24, 24, 3)
    np.testing.assert_allclose(est.components_, ref.components_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(maps.compute(), maps_ref, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(est.loss_history_, ref.loss_history_, rtol=1e-9)
    np.testing.assert_allclose(est.residual_map_, ref.residual_map_, rtol=1e-8)
    assert est.n_iter_ == ref.n_iter_ == 8
    # transform of dask data with the fitted components
    np.testing.assert_allclose(
        est.transform(X[:5]).compute(), ref.transform(cube[:5]), rtol=1e-7, atol=1e-12
    )


def test_nmf_frobenius_masks_float32_dask(client, cube):
    X2 = cube.reshape(-1, 64)
    X = da.from_array(X2, chunks=(100, 64))
    pm = np.zeros(X2.shape[0], bool)
    pm[[3, 200, 401]] = True
    cm = np.zeros(64, bool)
    cm[:2] = True
    kw = dict(loss="frobenius", init="random", random_state=1, max_iter=6, tol=0)
    ref = mc.spectral.NMF(2, **kw)
    maps_ref = ref.fit_transform(X2, pixel_mask=pm, channel_mask=cm)
    est = mc.spectral.NMF(2, **kw)
    maps = est.fit_transform(X, pixel_mask=pm, channel_mask=cm).compute()
    assert maps.dtype == np.float32
    np.testing.assert_allclose(est.components_, ref.components_, rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(maps, maps_ref, rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(est.loss_history_[-1], ref.loss_history_[-1], rtol=1e-4)


def test_pca_dask_equals_in_memory(client, cube):
    X = da.from_array(cube, chunks=(5, 24, 64))
    ref = mc.spectral.PCA(3, random_state=0, dtype="float64")
    scores_ref = ref.fit_transform(cube)
    est = mc.spectral.PCA(3, random_state=0, dtype="float64")
    scores = est.fit_transform(X)
    assert isinstance(scores, da.Array)
    np.testing.assert_allclose(est.components_, ref.components_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(est.explained_variance_ratio_, ref.explained_variance_ratio_)
    np.testing.assert_allclose(scores.compute(), scores_ref, rtol=1e-8, atol=1e-9)
    np.testing.assert_array_equal(est.image_, ref.image_)


def test_dask_bad_values_raise_value_error(client, cube):
    bad = cube.astype(np.float32)
    bad[20, 3, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mc.spectral.NMF(2, max_iter=3).fit(da.from_array(bad, chunks=(6, 24, 64)))
    with pytest.raises(ValueError, match="2-D"):
        mc.spectral.NMF(2).fit(da.zeros((4,), chunks=2))


def _load(block: np.ndarray, marker: str | None, always: bool) -> np.ndarray:
    """A chunk loader that kills its worker process (once, or every time)."""
    if always or (marker is not None and not os.path.exists(marker)):
        if marker is not None:
            open(marker, "w").close()
        os._exit(1)
    return block


def _killer_array(cube, marker, always):
    X2 = cube.reshape(-1, 64)
    parts = [
        da.from_delayed(
            dask.delayed(_load)(X2[i : i + 192], marker if i == 192 else None, always and i == 192),
            shape=(192, 64),
            dtype=X2.dtype,
        )
        for i in range(0, 576, 192)
    ]
    return da.concatenate(parts)


def test_lost_worker_is_recovered_or_fails_clearly(client, cube, tmp_path):
    """~5-10 s: the nanny restarts each killed worker process (3 deaths in all)."""
    kw = dict(init="random", random_state=0, max_iter=2, tol=0, dtype="float64")
    ref = mc.spectral.NMF(2, **kw).fit(cube.reshape(-1, 64))
    # Dies once: the scheduler reruns the chunk on a restarted worker; the result is right.
    est = mc.spectral.NMF(2, **kw).fit(_killer_array(cube, str(tmp_path / "m"), False))
    np.testing.assert_allclose(est.components_, ref.components_, rtol=1e-8, atol=1e-12)
    # Dies every time: a clear error, and the estimator gets no result.
    est = mc.spectral.NMF(2, **kw)
    with pytest.raises(RuntimeError, match="dask computation failed"):
        est.fit(_killer_array(cube, str(tmp_path / "m2"), True))
    assert not hasattr(est, "components_")
    client.wait_for_workers(2, timeout=60)


def test_lazy_hyperspy_signal_uses_the_dask_path(client, cube):
    hs = pytest.importorskip("hyperspy.api")
    s = hs.signals.Signal1D(cube).as_lazy()
    s.data = s.data.rechunk((8, 24, 64))
    kw = dict(init="random", random_state=0, max_iter=4, tol=0, dtype="float64")
    maps = mc.spectral.NMF(2, **kw).fit_transform(s)
    ref = mc.spectral.NMF(2, **kw).fit_transform(cube)
    assert isinstance(maps, da.Array) and maps.shape == (24, 24, 2)
    np.testing.assert_allclose(maps.compute(), ref, rtol=1e-8, atol=1e-12)


@pytest.fixture(scope="module")
def edx_cube():
    model = mc.spectral.EDXModel(["Fe", "Ni", "O"], (0.2, 0.02, 300))
    W = np.array([[0.7, 0.0], [0.3, 0.4], [0.0, 0.6], [1.0, 1.0], [0.5, 0.5]])
    maps = np.random.default_rng(0).dirichlet([1, 1], (14, 13)) * 300
    X = np.random.default_rng(1).poisson(maps @ (model.G @ W).T).astype(np.uint16)
    return model, X


@pytest.mark.parametrize(
    "kw",
    [
        dict(simplex="W", init="random"),
        dict(simplex="H", sparsity=0.5, init="nmf", init_iter=5),
        dict(simplex=None, init="kmeans", init_iter=5),  # kmeans -> nmf on dask
        dict(simplex="W", smoothness=0.3, init="random"),
        dict(simplex="H", smoothness=2.0, sparsity=0.2, init="nmf", init_iter=5),
    ],
)
def test_physics_nmf_dask_equals_in_memory(client, edx_cube, kw):
    model, X = edx_cube
    init = kw.pop("init")
    # refine=False: the equality of the iterations is tested here (the refinement's fit
    # on the two summed spectra is compared in test_physics_nmf_defaults.py)
    base = dict(random_state=0, max_iter=12, tol=0, eval_every=4, dtype="float64", **kw)
    base["refine"] = False
    dask_init = "nmf" if init == "kmeans" else init
    ref = mc.spectral.PhysicsNMF(model, 2, init=dask_init, **base)
    maps_ref = ref.fit_transform(X)
    est = mc.spectral.PhysicsNMF(model, 2, init=init, **base)
    maps = est.fit_transform(da.from_array(X, chunks=(5, 13, 300)))
    assert isinstance(maps, da.Array) and maps.shape == (14, 13, 2)
    assert est.init_used_ == dask_init
    np.testing.assert_allclose(maps.compute(), maps_ref, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(est.W_, ref.W_, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(est.components_, ref.components_, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(est.composition_, ref.composition_, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(est.loss_history_, ref.loss_history_, rtol=1e-9)
    np.testing.assert_array_equal(est.loss_iterations_, ref.loss_iterations_)
    np.testing.assert_allclose(est.residual_map_, ref.residual_map_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(est.element_maps_.compute(), ref.element_maps_, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("chunks", [(1, 13, 300), (3, 5, 300), (14, 13, 300)])
def test_physics_nmf_dask_smoothness_any_chunking(client, edx_cube, chunks):
    # chunks of one image row, chunks that split rows (the pixel axis is flattened), one
    # chunk: the Laplacian reads the neighbours across every chunk border.
    model, X = edx_cube
    base = dict(random_state=0, max_iter=6, tol=0, eval_every=2, dtype="float64")
    ref = mc.spectral.PhysicsNMF(model, 2, smoothness=1.0, init="random", **base)
    maps_ref = ref.fit_transform(X)
    est = mc.spectral.PhysicsNMF(model, 2, smoothness=1.0, init="random", **base)
    maps = est.fit_transform(da.from_array(X, chunks=chunks)).compute()
    np.testing.assert_allclose(maps, maps_ref, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(est.loss_history_, ref.loss_history_, rtol=1e-9)
    # the 1-D (pixels, channels) layout: a chain of neighbours
    flat = X.reshape(-1, X.shape[-1])
    ref1 = mc.spectral.PhysicsNMF(model, 2, smoothness=1.0, init="random", **base)
    est1 = mc.spectral.PhysicsNMF(model, 2, smoothness=1.0, init="random", **base)
    np.testing.assert_allclose(
        est1.fit_transform(da.from_array(flat, chunks=(50, 300))).compute(),
        ref1.fit_transform(flat),
        rtol=1e-7,
        atol=1e-9,
    )
    np.testing.assert_allclose(est1.loss_history_, ref1.loss_history_, rtol=1e-9)


def test_misaligned_chunk_is_validated_and_copied_once():
    """A chunk unpickled at an odd address is aligned (and validated) once per chunk
    object, not on every iteration; the copy goes when the chunk goes."""
    import gc

    from matchar.spectral import _dask

    ref = np.arange(6 * 5, dtype=np.uint16).reshape(6, 5)
    raw = bytearray(ref.nbytes + 1)
    x = np.frombuffer(raw, dtype=np.uint16, offset=1, count=ref.size).reshape(6, 5)
    x[...] = ref
    assert not x.flags.aligned
    first = _dask._chunk_matrix(x)
    assert first.flags.aligned and first is not x
    np.testing.assert_array_equal(first, ref)
    assert _dask._chunk_matrix(x) is first  # cached
    aligned = ref.copy()
    assert _dask._chunk_matrix(aligned) is aligned  # aligned chunks are used in place
    n = len(_dask._CHECKED)
    del x, first
    gc.collect()
    assert len(_dask._CHECKED) == n - 1
    bad = np.ones((3, 4), dtype=np.float32)
    bad[1, 2] = np.inf
    for _ in range(2):  # bad values are never cached as checked
        with pytest.raises(ValueError, match="inf"):
            _dask._chunk_matrix(bad)


def test_nmf_frobenius_inner_sweeps_dask_equals_in_memory(client, cube):
    """inner_sweeps on dask: W sweeps in the chunk tasks, H sweeps in the reduction."""
    X2 = cube.reshape(-1, 64)
    kw = dict(loss="frobenius", init="random", random_state=2, max_iter=5, tol=0, dtype="float64")
    for sweeps in (1, 3):
        ref = mc.spectral.NMF(2, inner_sweeps=sweeps, eval_every=2, **kw)
        maps_ref = ref.fit_transform(X2)
        est = mc.spectral.NMF(2, inner_sweeps=sweeps, eval_every=2, **kw)
        maps = est.fit_transform(da.from_array(X2, chunks=(150, 64))).compute()
        np.testing.assert_allclose(est.components_, ref.components_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(maps, maps_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(est.loss_history_, ref.loss_history_, rtol=1e-9)
        np.testing.assert_array_equal(est.loss_iterations_, ref.loss_iterations_)


def _threads_seen() -> int:
    import matchar as mc_

    return mc_.get_num_threads()


def _budget_in_a_task(_):
    """In a worker task thread whose OpenMP setting is not the worker's budget (as when
    OpenMP read OMP_NUM_THREADS before the nanny set it): (decorated, plain) counts."""
    import matchar as mc_
    from matchar._threads import task_threads

    before = mc_.get_num_threads()
    mc_.set_num_threads(3)
    try:
        return task_threads(_threads_seen)(), _threads_seen()
    finally:
        mc_.set_num_threads(before)


def test_tasks_use_the_workers_thread_budget(client):
    """Inside dask.distributed tasks matchar's kernels use the worker's OMP_NUM_THREADS
    (1 on the test cluster) whatever the task thread's OpenMP setting; outside a worker
    the decorator changes nothing."""
    from matchar._threads import task_threads

    assert client.gather(client.map(_budget_in_a_task, range(4), pure=False)) == [(1, 3)] * 4
    with mc.threads(2):
        assert task_threads(_threads_seen)() == 2


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
def test_nmf_reduction_task_path_equals_in_memory(client, cube, monkeypatch, loss):
    """Many chunks or large maps: one reduction task per iteration instead of every chunk
    task reducing the previous statistics itself; the same result."""
    from matchar.spectral import _dask

    monkeypatch.setattr(_dask, "_DIRECT_CHUNKS", 0)
    X2 = cube.reshape(-1, 64)
    kw = dict(loss=loss, init="random", random_state=3, max_iter=6, tol=0, dtype="float64")
    ref = mc.spectral.NMF(2, eval_every=4, **kw)
    maps_ref = ref.fit_transform(X2)
    est = mc.spectral.NMF(2, eval_every=4, **kw)
    maps = est.fit_transform(da.from_array(X2, chunks=(100, 64))).compute()
    np.testing.assert_allclose(est.components_, ref.components_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(maps, maps_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(est.loss_history_, ref.loss_history_, rtol=1e-9)


def test_in_memory_cube_travels_to_the_workers_once(client, cube, monkeypatch):
    # da.from_array of a NumPy cube embeds the data in the graph: without care, every
    # iteration's graph carries the whole cube to the scheduler. The fit scatters the
    # chunks once; no graph of the fit then holds more than a few kB.
    import warnings

    from matchar.spectral import _dask

    monkeypatch.setattr(_dask, "_EMBEDDED_BYTES", 1024)  # the test cube is 72 kB
    X = da.from_array(cube, chunks=(12, 24, 64)).reshape(-1, 64)
    assert _dask._embedded_bytes(X) == cube.nbytes
    R = _dask._resident(X)
    assert _dask._embedded_bytes(R) == 0 and R.chunks == X.chunks
    np.testing.assert_array_equal(R.compute(), cube.reshape(-1, 64))
    kw = dict(random_state=0, max_iter=6, tol=0, dtype="float64", eval_every=3)
    ref = mc.spectral.NMF(3, **kw).fit(cube)
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "16kB"}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = mc.spectral.NMF(3, **kw).fit(da.from_array(cube, chunks=(12, 24, 64)))
    assert not [w for w in caught if "large graph" in str(w.message)]
    np.testing.assert_allclose(est.components_, ref.components_, rtol=1e-8, atol=1e-12)
    # without the scatter the same fit sends the cube with its graphs
    monkeypatch.setattr(_dask, "_EMBEDDED_BYTES", 2**40)
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "16kB"}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mc.spectral.NMF(3, **kw).fit(da.from_array(cube, chunks=(12, 24, 64)))
    assert [w for w in caught if "large graph" in str(w.message)]


async def _exit_soon():
    os._exit(1)


def _counting(monkeypatch, cls, name):
    calls = []
    original = getattr(cls, name)

    def wrapped(self, *args, **kwargs):
        calls.append(name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, wrapped)
    return calls


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
def test_nmf_on_chunks_held_by_the_workers_runs_in_actors(client, cube, monkeypatch, loss):
    """Chunks already in the workers' memory (persisted): each worker's chunks and maps
    stay in one actor, the client reduces the statistics. Same iterations as in memory;
    the maps outlive the actors; the masks apply."""
    import gc

    from matchar.spectral import _dask

    steps = _counting(monkeypatch, _dask.ChunkActors, "update")
    X2 = cube.reshape(-1, 64)
    pm = np.ones(X2.shape[0], bool)
    pm[[5, 300, 401]] = False
    cm = np.ones(64, bool)
    cm[[0, 63]] = False
    # three uneven chunks over two workers: one worker's actor holds two chunks
    X = client.persist(da.from_array(X2, chunks=((200, 301, 75), (64,))))
    distributed.wait(X)
    kw = dict(loss=loss, init="random", random_state=2, max_iter=7, tol=0, dtype="float64")
    ref = mc.spectral.NMF(3, eval_every=3, **kw)
    maps_ref = ref.fit_transform(X2, pixel_mask=pm, channel_mask=cm)
    est = mc.spectral.NMF(3, eval_every=3, **kw)
    maps = est.fit_transform(X, pixel_mask=pm, channel_mask=cm)
    assert steps == ["update"] * 7
    gc.collect()  # the fit's actors are gone; the maps were copied out of them
    np.testing.assert_allclose(est.components_, ref.components_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(maps.compute(), maps_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(est.loss_history_, ref.loss_history_, rtol=1e-9)
    np.testing.assert_array_equal(est.loss_iterations_, ref.loss_iterations_)


def test_actor_path_equals_the_task_path_float32(client, cube, monkeypatch):
    # Both paths run the same chunk passes and sum the statistics in chunk order.
    from matchar.spectral import _dask

    X = client.persist(da.from_array(cube, chunks=(9, 24, 64)))
    distributed.wait(X)
    kw = dict(init="nndsvda", max_iter=6, tol=0, dtype="float32")
    steps = _counting(monkeypatch, _dask.ChunkActors, "update")
    est = mc.spectral.NMF(2, **kw)
    maps = est.fit_transform(X).compute()
    assert len(steps) == 6
    monkeypatch.setattr(_dask, "_ACTORS", False)
    ref = mc.spectral.NMF(2, **kw)
    maps_ref = ref.fit_transform(X).compute()
    assert len(steps) == 6 and maps.dtype == maps_ref.dtype == np.float32
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(est.components_, ref.components_, rtol=8 * eps)
    # A map entry is its start times 6 ratios of sums of positive terms. The
    # components above may differ by 8 eps (rounded in another order on a worker),
    # and each ratio carries that difference plus its own rounding, a few eps: the
    # relative errors add over the 6 iterations, so 6 x (8 + 2) eps bounds them.
    np.testing.assert_allclose(maps, maps_ref, rtol=60 * eps, atol=1e-30)
    np.testing.assert_allclose(est.residual_map_, ref.residual_map_, rtol=1e-5)


def test_actor_path_bad_chunk_and_lost_worker(client, cube):
    from matchar.spectral import _dask

    bad = cube.reshape(-1, 64).astype(np.float32)
    bad[400, 3] = -1.0
    Xb = client.persist(da.from_array(bad, chunks=(288, 64)))
    with pytest.raises(ValueError, match="negative"):
        mc.spectral.NMF(2, init="random", max_iter=3).fit(Xb)
    # a worker that holds an actor dies between two iterations: a clear error
    X = client.persist(da.from_array(cube.reshape(-1, 64), chunks=(288, 64)))
    distributed.wait(X)
    data = _dask.DaskSpectrumMatrix(X)
    rng = np.random.default_rng(0)
    W = data.factor_from_array(rng.random((576, 2)))
    H = rng.random((2, 64))
    _, W1, H1 = data.update("kl", W, H, None, None, True, True)
    assert isinstance(W1, _dask._ActorFactor)
    client.run(_exit_soon, workers=[W1.session.addresses[0]], wait=False)
    with pytest.raises(RuntimeError, match="dask computation failed"):
        for _ in range(50):  # the worker's death reaches the client within a few calls
            _, W1, H1 = data.update("kl", W1, H1, None, None, True, True)
    client.wait_for_workers(2, timeout=60)


@pytest.mark.parametrize("center", [True, False])
def test_pca_on_chunks_held_by_the_workers_runs_in_actors(client, cube, monkeypatch, center):
    from matchar.spectral import _dask

    grams = _counting(monkeypatch, _dask.ChunkActors, "gram")
    sums = _counting(monkeypatch, _dask.ChunkActors, "weighted_sums")
    X = client.persist(da.from_array(cube, chunks=(7, 24, 64)))  # 4 uneven chunks
    distributed.wait(X)
    kw = dict(random_state=0, dtype="float64", center=center)
    ref = mc.spectral.PCA(3, **kw)
    scores_ref = ref.fit_transform(cube)
    est = mc.spectral.PCA(3, **kw)
    scores = est.fit_transform(X)
    assert grams and sums
    np.testing.assert_allclose(est.components_, ref.components_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(est.explained_variance_, ref.explained_variance_, rtol=1e-9)
    np.testing.assert_allclose(scores.compute(), scores_ref, rtol=1e-8, atol=1e-9)


def test_ctrl_c_stops_an_nmf_fit_in_actors(ctrl_c):
    """Ctrl-C while the client waits for the actors' iteration: KeyboardInterrupt."""
    ctrl_c(
        """
        import numpy as np, dask.array as da, distributed, matchar as mc
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        )
        client = distributed.Client(cluster)
        cube = np.random.default_rng(0).poisson(5.0, (4000, 256)).astype(np.uint16)
        X = client.persist(da.from_array(cube, chunks=(2000, 256)))
        distributed.wait(X)
        from matchar.spectral import _dask
        calls = []
        update = _dask.ChunkActors.update
        _dask.ChunkActors.update = lambda self, *a: calls.append(1) or update(self, *a)
        mc.spectral.NMF(3, init="random", max_iter=2, tol=0).fit(X)
        assert calls == [1, 1], "the fit did not run in actors"
        """,
        "mc.spectral.NMF(3, init='random', max_iter=10**6, tol=0).fit(X)",
        wait=2.0,
    )
