"""Chemical-shielding prediction: SOAP power spectra -> sparse GP regression.

Kept as one module because it is one model: :class:`ShiftModel` is about 600 of its
lines (fit, cross-validation, calibration, compression, prediction and the save/load file
format share its state and its format version), and the conversions and the chemiscope
loader after it are the helpers its users call next to it.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from .._threads import serialized, threads
from .._validation import check_choice, check_fitted, check_float, check_int
from ..atoms import SOAP
from ..gp import MultiPolynomialKernel, PolynomialKernel, SparseGPR
from ..gp._calibration import _CALIBRATION_METHODS

_FORMAT = "matchar.ShiftModel/1"

#: Default SOAP hyper-parameters of a ShiftModel: two cutoffs (Å), 10 radial x l <= 8
#: angular functions, neighbour densities scaled by ``1 / (1 + (r / 2.5 Å)^6)`` (chosen
#: on validation structures of CSD-1000R, docs/nmr.md).
DEFAULT_SOAP: dict[str, Any] = {
    "cutoff": (3.0, 5.0),
    "max_radial": 10,
    "max_angular": 8,
    "atomic_width": 0.3,
    "smoothing": 0.5,
    "radial_scaling": (2.5, 1.0, 6.0),
}

#: Default ``regularizer`` per atomic number (GP noise relative to the spread of the
#: training shieldings), chosen on validation structures of CSD-1000R (docs/nmr.md);
#: other elements use :data:`DEFAULT_REGULARIZER_OTHER`.
DEFAULT_REGULARIZER: dict[int, float] = {1: 0.035, 6: 0.03, 7: 0.05, 8: 0.05}
DEFAULT_REGULARIZER_OTHER = 0.05

#: With ``n_sparse=None`` every training environment is a sparse point (the full GP)
#: up to this many; above it, this many are chosen by farthest-point sampling.
FULL_GP_LIMIT = 25_000
#: Default sparse points of the committee (the first of the selection).
DEFAULT_SPARSE_COMMITTEE = 3000


def _atomic_number(element: str | int) -> int:
    ase_data = require("ase.data", feature="ShiftModel")
    atomic_numbers, chemical_symbols = ase_data.atomic_numbers, ase_data.chemical_symbols
    if isinstance(element, str) and element in atomic_numbers:
        return int(atomic_numbers[element])
    if isinstance(element, (int, np.integer)) and 0 < int(element) < len(chemical_symbols):
        return int(element)
    raise ValueError(f"element must be a chemical symbol or atomic number, got {element!r}")


class ShiftModel:
    """Predict the isotropic chemical shielding (ppm) of one element from its environment.

    The descriptor is the SOAP power spectrum (:class:`matchar.atoms.SOAP`), at one or
    several cutoffs, of every atom of ``element``; the regression is a sparse GP
    (:class:`matchar.gp.SparseGPR`) on the normalised polynomial kernel (a weighted sum
    over cutoffs), with a committee of models on subsamples whose spread is calibrated
    on held-out structures (Musil et al. 2019). Predictions are GIPAW-like shieldings
    σ in ppm; convert them to shifts with :func:`shielding_to_shift`.

    Parameters
    ----------
    element : str or int
        The nucleus predicted, e.g. ``"H"`` or ``6``.
    species : sequence of str or int, default ("H", "C", "N", "O")
        Species the SOAP descriptor knows; frames with other species raise ValueError.
    soap : dict, optional
        SOAP hyper-parameters (``cutoff`` may be a tuple: one block per cutoff);
        default :data:`DEFAULT_SOAP`.
    cutoff_weights : sequence of float, optional
        Kernel weight of each cutoff block (default equal).
    zeta : int, default 2
        Kernel exponent.
    n_sparse : int, optional
        Sparse points (capped at the number of training environments). Default: every
        training environment (the full GP; its mean costs no more to predict once
        :meth:`compress`-ed) up to :data:`FULL_GP_LIMIT` (25,000), else that many.
    selection : {"fps", "cur", "random"}, default "fps"
    regularizer : float, optional
        GP noise relative to the spread of the training shieldings (the GP is fitted on
        standardised targets); default per element, :data:`DEFAULT_REGULARIZER`.
    n_committee : int, default 8
        Committee size for the uncertainty (0: the GP's own variance).
    n_sparse_committee : int, optional
        Sparse points of the committee (the first ones of the selection); default 3000
        (:data:`DEFAULT_SPARSE_COMMITTEE`, or all if fewer). With a large ``n_sparse``
        (up to every training environment, the full GP) the mean is more accurate while
        the committee's spread stays cheap to evaluate; :meth:`save` then stores the
        :meth:`compress`-ed mean and only the committee's sparse environments.
    subsample : float, default 0.5
        Fraction of training environments each committee member sees.
    validation_fraction : float, default 0.1
        Fraction of the training *structures* held out to calibrate the uncertainty
        (with ``calibration_folds=0``).
    calibration_folds : int, optional
        k >= 2: k-fold cross-validation over the structures — each fold's model predicts
        the structures it did not see, the calibration is fitted on the pooled errors and
        committee spreads of *every* training structure, and the final GP is fitted on
        all structures (k + 1 fits; a calibration on ten times the data, and no
        structure withheld from the mean). 0: calibrate on the held-out
        ``validation_fraction`` and fit the GP on the other structures (one fit).
        Default: 5 (or the number of structures, if fewer).
    calibration : {"band", "coverage", "affine", "musil", "ml"}, default "band"
        How the committee spread is calibrated (see :meth:`matchar.gp.SparseGPR.calibrate`):
        "band" and "coverage" make the fractions of held-out errors within 1σ and 2σ
        closest to the Gaussian 68.3 % and 95.4 % — the largest deviation in units of the
        bands ± 0.05 / ± 0.03 ("band") or of the binomial spreads ("coverage") — which the
        likelihood fits ("affine", "musil") miss on the heavy-tailed ¹³C errors of
        CSD-1000R (docs/nmr.md).
    random_state : int, default 0

    Example
    -------
    >>> import ase.build, matchar as mc
    >>> model = mc.nmr.ShiftModel.pretrained("H")
    >>> sigma, std = model.predict([ase.build.molecule("CH4")], return_std=True)
    >>> sigma.shape, std.shape   # ppm, one value per H atom
    ((4,), (4,))
    """

    def __init__(
        self,
        element: str | int,
        species: Sequence[str | int] = ("H", "C", "N", "O"),
        soap: dict[str, Any] | None = None,
        cutoff_weights: Sequence[float] | None = None,
        zeta: int = 2,
        n_sparse: int | None = None,
        selection: str = "fps",
        regularizer: float | None = None,
        n_committee: int = 8,
        subsample: float = 0.5,
        validation_fraction: float = 0.1,
        calibration: str = "band",
        random_state: int = 0,
        n_sparse_committee: int | None = None,
        calibration_folds: int | None = None,
    ) -> None:
        self.element = element
        self.z_ = _atomic_number(element)
        self.species = [_atomic_number(s) for s in species]
        if self.z_ not in self.species:
            raise ValueError(f"element {element!r} must be one of species {list(species)!r}")
        self.soap_params = dict(DEFAULT_SOAP if soap is None else soap)
        self.cutoff_weights = None if cutoff_weights is None else list(cutoff_weights)
        self.zeta = zeta
        self.n_sparse = n_sparse
        self.selection = selection
        self.regularizer = regularizer
        self.n_committee = n_committee
        self.n_sparse_committee = n_sparse_committee
        self.subsample = subsample
        self.validation_fraction = validation_fraction
        self.calibration_folds = calibration_folds
        self.calibration = calibration
        self.random_state = random_state
        self.soap_ = SOAP(**self.soap_params, species=self.species, dtype=np.float32)

    # -- descriptors ---------------------------------------------------------------------
    def _cutoffs(self) -> list[float]:
        c = self.soap_params["cutoff"]
        return [float(x) for x in c] if isinstance(c, (list, tuple)) else [float(c)]

    def _kernel(self, n_features: int) -> Any:
        cutoffs = self._cutoffs()
        if len(cutoffs) == 1:
            return PolynomialKernel(zeta=self.zeta)
        return MultiPolynomialKernel(
            [n_features // len(cutoffs)] * len(cutoffs), weights=self.cutoff_weights, zeta=self.zeta
        )

    def features(self, frames: Any) -> np.ndarray:
        """SOAP features (n_atoms_of_element, n_features), float32, frame then atom order."""
        return self._features(frames)

    def _features(self, frames: Any, return_samples: bool = False) -> Any:
        """:meth:`features`, and with ``return_samples`` the (n, 3) SOAP samples too."""
        frames = _as_frames(frames)
        present = any((f.numbers == self.z_).any() for f in frames)
        if not present:
            raise ValueError(f"no atom of element {self.element!r} in the frames")
        return self.soap_.compute(frames, centers=[self.z_], return_samples=return_samples)

    # -- training ------------------------------------------------------------------------
    def _check_params(self) -> None:
        """The training parameters, before any SOAP feature is computed."""
        check_int(self.zeta, "zeta", low=1)
        check_int(self.n_sparse, "n_sparse", low=1, allow_none=True)
        check_choice(self.selection, "selection", ("fps", "cur", "random"))
        check_float(self.regularizer, "regularizer", low=0.0, low_open=True, allow_none=True)
        nc = check_int(self.n_committee, "n_committee", low=0, high=10_000)
        if nc == 1:
            raise ValueError(f"n_committee must be 0 or >= 2, got {self.n_committee!r}")
        check_int(self.n_sparse_committee, "n_sparse_committee", low=1, allow_none=True)
        check_float(self.subsample, "subsample", low=0.0, high=1.0, low_open=True)
        check_float(
            self.validation_fraction, "validation_fraction", low=0.0, high=1.0, high_open=True
        )
        folds = check_int(self.calibration_folds, "calibration_folds", low=0, allow_none=True)
        if folds == 1:
            raise ValueError("calibration_folds must be 0 or >= 2, got 1")
        check_choice(self.calibration, "calibration", _CALIBRATION_METHODS)

    def _folds(self, n_frames: int) -> int:
        """The number of calibration folds for ``n_frames`` training structures."""
        if self.calibration_folds is None:
            return min(5, n_frames) if n_frames >= 2 else 0
        return int(self.calibration_folds)

    def _split(self, frames: Any, shieldings: Sequence[Any], folds: int | None = None):
        """(frames, per-frame targets of the element, training and validation structure
        indices) as :meth:`fit` uses them (``random_state``, ``validation_fraction``;
        no validation structure with cross-validated calibration)."""
        frames = _as_frames(frames)
        folds = self._folds(len(frames)) if folds is None else folds
        if len(shieldings) != len(frames):
            raise ValueError(
                f"shieldings must hold one array per frame ({len(frames)}), got {len(shieldings)}"
            )
        targets = []
        for k, (f, s) in enumerate(zip(frames, shieldings)):
            s = np.asarray(s, dtype=np.float64)
            if s.shape != (len(f),):
                raise ValueError(
                    f"shieldings[{k}] must have one value per atom ({len(f)}), got shape {s.shape}"
                )
            t = s[f.numbers == self.z_]
            if not np.isfinite(t).all():
                raise ValueError(f"shieldings[{k}] holds NaN/inf for atoms of {self.element!r}")
            targets.append(t)
        rng = np.random.default_rng(self.random_state)
        n_val = 0 if folds else round(self.validation_fraction * len(frames))
        if self.n_committee and n_val < 1 and not folds:
            raise ValueError("validation_fraction leaves no structure to calibrate on")
        order = rng.permutation(len(frames))
        return frames, targets, np.sort(order[n_val:]), np.sort(order[:n_val])

    @serialized
    def recalibrate(
        self, frames: Any, shieldings: Sequence[Any], method: str | None = None
    ) -> ShiftModel:
        """Refit only the uncertainty calibration, on the structures :meth:`fit` held out.

        Pass the same ``frames`` and ``shieldings`` as to :meth:`fit` (and keep
        ``random_state`` and ``validation_fraction``): the held-out structures are drawn
        the same way, so the result equals a :meth:`fit` with ``calibration=method``,
        without refitting the GP. A model fitted with ``calibration_folds`` refits from
        its saved cross-validation errors and spreads (``frames`` and ``shieldings`` are
        then not used).

        Parameters
        ----------
        frames, shieldings
            As for :meth:`fit`.
        method : {"band", "coverage", "affine", "musil", "ml"}, optional
            Default: ``self.calibration``; stored as ``self.calibration``.

        Returns
        -------
        self

        Example
        -------
        ``train_frames`` and ``train_shieldings`` stand for the reference set the model was
        fitted on (not part of matchar, so the example is not run):

        >>> model = model.recalibrate(train_frames, train_shieldings, "coverage")  # doctest: +SKIP
        """
        check_fitted(self, "gpr_")
        if not self.gpr_.n_committee:
            raise ValueError("recalibrate() needs a committee model (n_committee >= 2)")
        method = self.calibration if method is None else method
        folds = self.__dict__.get("calibration_folds_", self.calibration_folds or 0)
        if folds:  # the cross-validated errors and spreads are kept
            if not hasattr(self, "cv_errors_"):
                raise ValueError("this model keeps no cross-validation errors: fit it again")
            self.gpr_.calibrate_errors(self.cv_errors_, self.cv_std_, method)
            self.calibration = method
            return self
        # raises: val empty (committee)
        frames, targets, _, val = self._split(frames, shieldings, folds=0)
        self._calibrate(frames, targets, val, method)
        self.calibration = method
        return self

    def _calibrate(self, frames, targets, val, method: str) -> None:
        """Fit the GP's uncertainty calibration on the held-out structures ``val``."""
        Xv = self.features([frames[i] for i in val])
        self.gpr_.calibrate(Xv, np.concatenate([targets[i] for i in val]), method=method)

    @serialized
    def fit(self, frames: Any, shieldings: Sequence[Any]) -> ShiftModel:
        """Train on structures and their per-atom shieldings.

        Parameters
        ----------
        frames : sequence of ase.Atoms
            Training structures.
        shieldings : sequence of array_like
            One array per frame with a shielding (ppm) for *every* atom of the frame;
            only the atoms of ``element`` are used (others may be NaN).

        Returns
        -------
        self
        """
        self._check_params()
        frames = _as_frames(frames)
        k = self._folds(len(frames))
        frames, targets, train, val = self._split(frames, shieldings, folds=k)
        if k and not 2 <= k <= len(frames):
            raise ValueError(
                f"calibration_folds must be 0 or between 2 and the number of structures "
                f"({len(frames)}), got {k!r}"
            )

        train_frames = [frames[i] for i in train]
        X, samples = self._features(train_frames, return_samples=True)
        y = np.concatenate([targets[i] for i in train])
        for name in ("cv_errors_", "cv_std_"):
            self.__dict__.pop(name, None)
        if k and self.n_committee:
            self._cross_validate(X, y, samples[:, 0], k)
        self.gpr_ = self._new_gpr(X).fit(X, y)
        if k and self.n_committee:
            self.gpr_.calibrate_errors(self.cv_errors_, self.cv_std_, self.calibration)
        if len(val):
            self._calibrate(frames, targets, val, self.calibration)
        # What save() stores: every sparse environment, or the committee's only (the mean
        # of such a model is saved in its compressed form).
        g = self.gpr_
        n_env = g.n_committee_sparse_ if g.n_committee else len(g.sparse_indices_)
        self.sparse_environments_ = _environments(
            train_frames, samples[g.sparse_indices_[:n_env], :2], max(self._cutoffs())
        )
        self.n_train_environments_ = len(X)
        self.n_sparse_mean_ = len(g.X_sparse_)
        self.calibration_folds_ = k if self.n_committee else 0
        return self

    def _new_gpr(self, X: np.ndarray) -> SparseGPR:
        reg = self.regularizer
        if reg is None:
            reg = DEFAULT_REGULARIZER.get(self.z_, DEFAULT_REGULARIZER_OTHER)
        n_sparse = FULL_GP_LIMIT if self.n_sparse is None else int(self.n_sparse)
        committee = self.n_sparse_committee
        return SparseGPR(
            kernel=self._kernel(X.shape[1]),
            n_sparse=min(n_sparse, len(X)),
            selection=self.selection,
            regularizer=reg,
            n_committee=self.n_committee,
            subsample=self.subsample,
            random_state=self.random_state,
            normalize_y=True,
            n_sparse_committee=DEFAULT_SPARSE_COMMITTEE if committee is None else committee,
        )

    def _cross_validate(self, X: np.ndarray, y: np.ndarray, structure: np.ndarray, k: int) -> None:
        """``cv_errors_``/``cv_std_`` (n,): every environment predicted by the model of the
        fold that did not see its structure (mean error, uncalibrated committee spread)."""
        from tqdm.auto import tqdm

        n_struct = int(structure.max()) + 1
        fold = np.empty(n_struct, dtype=np.int64)
        fold[np.random.default_rng(self.random_state).permutation(n_struct)] = (
            np.arange(n_struct) % k
        )
        errors, std = np.empty(len(X)), np.empty(len(X))
        for f in tqdm(range(k), desc="calibration folds", unit="fold"):
            out = fold[structure] == f
            g = self._new_gpr(X[~out]).fit(X[~out], y[~out])
            errors[out] = g.predict(X[out]) - y[out]
            std[out] = g._committee_predictions(X[out]).std(axis=0, ddof=1)
            del g  # before the next fold's kernel matrix is made
        self.cv_errors_, self.cv_std_ = errors, std

    # -- prediction ----------------------------------------------------------------------
    @serialized
    def predict(
        self, frames: Any, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Shieldings (ppm) of every atom of ``element``, frame order then atom order.

        Parameters
        ----------
        frames : ase.Atoms or sequence of ase.Atoms
        return_std : bool, default False
            Also return the calibrated standard deviation (ppm).

        Returns
        -------
        mean : numpy.ndarray, shape (n_atoms_of_element,)
        std : numpy.ndarray, shape (n_atoms_of_element,), only with ``return_std``
        """
        check_fitted(self, "gpr_")
        X = self.features(frames)
        if not return_std and len(X) <= _SMALL_CALL_ROWS and self._compressed():
            # One small structure: the compressed mean is a ~10 ms GEMM, too short to
            # amortise waking NumPy's BLAS pool, whose spinning threads then slow the
            # OpenMP SOAP of the next call on a 2-core machine (docs/benchmarks.md).
            with threads(1):
                return self.gpr_.predict(X)
        return self.gpr_.predict(X, return_std=return_std)

    def _compressed(self) -> bool:
        return self.gpr_.__dict__.get("mean_basis_") is not None

    @serialized
    def compress(self, tol: float | None = 0.01, committee: bool = False) -> ShiftModel:
        """Make the mean prediction cheap: the low-rank form of :meth:`SparseGPR.compress`.

        The mean then costs one small GEMM per SOAP block instead of the kernel against
        every sparse point; the ranks are chosen so that it stays within ``tol`` ppm of
        the exact mean on every sparse environment (``gpr_.mean_error_sparse_``; the
        worst case over all inputs is ``gpr_.mean_error_bound_``). Saved and loaded with
        the model; the shipped models are compressed. With ``committee=True`` the
        committee members are compressed too, so the standard deviation (``return_std``)
        stops costing a kernel evaluation against the committee's sparse points (the
        calibrated std then stays within ``tol`` ppm on them); this part is not saved:
        call it again after loading (:func:`predict_trajectory` does, on a copy).

        Parameters
        ----------
        tol : float or None, default 0.01
            Bound on the change of the mean (and of the std with ``committee``), ppm
            (None: 1e-3 of the training spread).
        committee : bool, default False

        Returns
        -------
        self

        Example
        -------
        >>> import matchar as mc
        >>> model = mc.nmr.ShiftModel.pretrained("H")
        >>> model.gpr_.mean_error_sparse_ <= 0.01
        True
        """
        check_fitted(self, "gpr_")
        self.gpr_.compress(tol, committee=committee)
        return self

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the model to one portable, compact ``.npz`` file (no pickle).

        The sparse points are stored as their atomic environments — the centre and every
        atom within the cutoff, positions relative to the centre in Å (float64) — not as
        SOAP vectors: that is ~20× smaller, and :meth:`load` recomputes their features
        with matchar's SOAP (checked against a stored sample of the original features).

        A model whose committee uses fewer sparse points than its mean (the default
        full GP) is :meth:`compress`-ed first, with the default tolerance (1e-3 of the
        training spread), unless it already is.

        Parameters
        ----------
        path : str or pathlib.Path
        """
        check_fitted(self, "gpr_")
        if not self.gpr_.n_committee:
            raise ValueError("only ShiftModels with a committee (n_committee >= 2) can be saved")
        g = self.gpr_
        n_env = len(self.sparse_environments_)
        if n_env < len(g.X_sparse_) and g.__dict__.get("mean_basis_") is None:
            self.compress(None)  # only the committee's environments are stored
        config = {
            "format": _FORMAT,
            "element": int(self.z_),
            "species": self.species,
            "soap": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in self.soap_params.items()
            },
            "cutoff_weights": self.cutoff_weights,
            "zeta": self.zeta,
            "regularizer": float(getattr(g, "regularizer_", g.regularizer)),
            "y_scale": float(g.y_scale_),
            "n_committee": int(g.n_committee),
            "alpha": float(g.alpha_),
            "beta": float(g.beta_),
            "calibration": self.calibration,
            "n_train_environments": int(self.n_train_environments_),
            # a loaded full-GP model holds only the committee's points: keep the count
            "n_sparse_mean": int(self.__dict__.get("n_sparse_mean_", len(g.X_sparse_))),
            "calibration_folds": int(self.__dict__.get("calibration_folds_", 0)),
        }
        extra = {}
        if config["calibration_folds"] and hasattr(self, "cv_errors_"):  # for recalibrate()
            extra["cv_errors"] = np.asarray(self.cv_errors_, dtype=np.float64)
            extra["cv_std"] = np.asarray(self.cv_std_, dtype=np.float64)
        if n_env == len(g.X_sparse_) and g.weights_ is not None:  # the exact mean is stored
            extra["weights"] = np.asarray(g.weights_, dtype=np.float64)
        if g.__dict__.get("mean_basis_") is not None:
            config["mean_error_bound"] = float(g.mean_error_bound_)
            config["mean_error_sparse"] = float(g.mean_error_sparse_)
            for b, (V, lam) in enumerate(zip(g.mean_basis_, g.mean_eigenvalues_)):
                extra[f"mean_basis_{b}"] = V
                extra[f"mean_eigenvalues_{b}"] = lam
        with open(path, "wb") as fh:
            np.savez_compressed(
                fh,
                **extra,
                config=np.frombuffer(json.dumps(config).encode(), dtype=np.uint8),
                env_offsets=np.cumsum([0] + [len(a) for a in self.sparse_environments_]),
                env_numbers=np.concatenate([a.numbers for a in self.sparse_environments_]).astype(
                    np.uint8
                ),
                env_positions=np.concatenate([a.positions for a in self.sparse_environments_]),
                features_check=g.X_sparse_[:_N_CHECK].astype(np.float64),
                y_mean=np.float64(g.y_mean_),
                committee_weights=np.asarray(g.committee_weights_, dtype=np.float64),
                committee_y_mean=np.asarray(g.committee_y_mean_, dtype=np.float64),
            )

    @classmethod
    def load(cls, path: Any) -> ShiftModel:
        """Read a model written by :meth:`save`.

        Parameters
        ----------
        path : str, pathlib.Path or file object

        Returns
        -------
        ShiftModel

        Raises
        ------
        OSError
            A file that cannot be opened (e.g. FileNotFoundError).
        ValueError
            A file that is not a ShiftModel written by :meth:`save` (naming the file).
        """
        where = str(getattr(path, "name", path))
        try:
            return cls._load(path)
        except Exception as err:  # a missing key, a broken zip, JSON, array: not a model
            if isinstance(err, (OSError, MemoryError)) or str(err).startswith(repr(where)):
                raise
            raise ValueError(
                f"{where!r} is not a readable matchar ShiftModel file (.npz written by "
                f"ShiftModel.save): {type(err).__name__}: {err}"
            ) from err

    @classmethod
    def _load(cls, path: Any) -> ShiftModel:
        where = str(getattr(path, "name", path))
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files") or "config" not in data.files:
                raise ValueError(f"{where!r} is not a matchar ShiftModel file (no config)")
            config = json.loads(bytes(data["config"]).decode())
            if not isinstance(config, dict) or config.get("format") != _FORMAT:
                raise ValueError(f"{where!r} is not a matchar ShiftModel file")
            offsets = data["env_offsets"]
            numbers = data["env_numbers"]
            positions = data["env_positions"]
            check = data["features_check"]
            weights = data["weights"] if "weights" in data.files else None
            cv = (data["cv_errors"], data["cv_std"]) if "cv_errors" in data.files else None
            y_mean = float(data["y_mean"])
            c_weights = data["committee_weights"]
            c_y_mean = data["committee_y_mean"]
            n_blocks = sum(1 for k in data.files if k.startswith("mean_basis_"))
            basis = [data[f"mean_basis_{b}"] for b in range(n_blocks)]
            eigenvalues = [data[f"mean_eigenvalues_{b}"] for b in range(n_blocks)]
        soap = dict(config["soap"])
        if isinstance(soap["cutoff"], list):
            soap["cutoff"] = tuple(soap["cutoff"])
        model = cls(
            config["element"],
            species=config["species"],
            soap=soap,
            cutoff_weights=config["cutoff_weights"],
            zeta=config["zeta"],
            regularizer=config["regularizer"],
            n_committee=config["n_committee"],
            calibration=config.get("calibration", "affine"),
            calibration_folds=config.get("calibration_folds", 0),
        )
        model.calibration_folds_ = int(model.calibration_folds)
        if cv is not None:
            model.cv_errors_, model.cv_std_ = cv
        model.sparse_environments_ = [
            _cluster(numbers[a:b], positions[a:b]) for a, b in zip(offsets[:-1], offsets[1:])
        ]
        X_sparse = model.soap_.compute_atoms(
            model.sparse_environments_, [[k, 0] for k in range(len(offsets) - 1)]
        )
        if not np.allclose(X_sparse[: len(check)], check, rtol=1e-5, atol=1e-7):
            raise ValueError(
                f"{where!r}: the SOAP features recomputed from the stored environments differ "
                "from the ones the model was trained with (a different SOAP convention?)"
            )
        g = SparseGPR(
            kernel=model._kernel(X_sparse.shape[1]),
            n_sparse=len(X_sparse),
            regularizer=config["regularizer"],
            n_committee=config["n_committee"],
        )
        g.X_sparse_ = X_sparse
        g.n_features_in_ = X_sparse.shape[1]
        g.weights_, g.y_mean_ = weights, y_mean
        g.n_committee_sparse_ = len(X_sparse)
        g.committee_weights_, g.committee_y_mean_ = c_weights, c_y_mean
        g.y_scale_ = config["y_scale"]
        g.normalize_y = True
        g.alpha_ = config["alpha"]
        g.beta_ = config.get("beta", 0.0)
        if basis:
            g.mean_basis_, g.mean_eigenvalues_ = basis, eigenvalues
            g.mean_error_bound_ = float(config["mean_error_bound"])
            g.mean_error_sparse_ = float(config["mean_error_sparse"])
        model.gpr_ = g
        model.n_train_environments_ = config["n_train_environments"]
        model.n_sparse_mean_ = int(config.get("n_sparse_mean", len(X_sparse)))
        return model

    @classmethod
    def pretrained(cls, element: str) -> ShiftModel:
        """The model shipped with matchar for ``element`` (trained on CSD-1000R, offline).

        Parameters
        ----------
        element : str
            A chemical symbol with a shipped model (see :func:`available_pretrained`).

        Returns
        -------
        ShiftModel
        """
        chemical_symbols = require("ase.data", feature="ShiftModel.pretrained").chemical_symbols
        symbol = chemical_symbols[_atomic_number(element)]
        name = f"{symbol}.npz"
        files = resources.files("matchar.nmr") / "models"
        if not (files / name).is_file():
            raise ValueError(
                f"no pretrained model for {element!r}; available: {available_pretrained()}"
            )
        with (files / name).open("rb") as fh:
            return cls.load(fh)

    def __repr__(self) -> str:
        return f"ShiftModel(element={self.element!r}, soap={self.soap_params!r})"


#: Rows (atoms of the element) up to which ``predict`` runs the compressed mean's GEMM on
#: one BLAS thread.
_SMALL_CALL_ROWS = 128


def available_pretrained() -> list[str]:
    """Chemical symbols of the shielding models shipped with matchar."""
    files = resources.files("matchar.nmr") / "models"
    if not files.is_dir():
        return []
    return sorted(p.name[:-4] for p in files.iterdir() if p.name.endswith(".npz"))


def shielding_to_shift(shielding: Any, reference: float, slope: float = -1.0) -> np.ndarray:
    """Convert shieldings σ (ppm) to chemical shifts δ (ppm): ``δ = reference + slope·σ``.

    With the ideal slope −1, ``reference`` is the shielding of the reference compound
    (e.g. ≈ 30.8 ppm for ¹H or ≈ 170 ppm for ¹³C against TMS with GIPAW/PBE); a fitted
    linear calibration against experiment gives both ``slope`` and ``reference``.

    Parameters
    ----------
    shielding : array_like
        Shieldings in ppm (finite).
    reference : float
        Intercept in ppm (finite).
    slope : float, default -1.0
        Finite.

    Returns
    -------
    numpy.ndarray
        Shifts in ppm, same shape as ``shielding``.

    Example
    -------
    >>> shielding_to_shift([25.0, 30.0], reference=31.0).tolist()
    [6.0, 1.0]
    """
    reference = check_float(reference, "reference")
    slope = check_float(slope, "slope")
    return _finite_result(lambda: reference + slope * _real(shielding, "shielding"), "shift")


def shift_to_shielding(shift: Any, reference: float, slope: float = -1.0) -> np.ndarray:
    """Inverse of :func:`shielding_to_shift`: ``σ = (δ - reference) / slope``."""
    reference = check_float(reference, "reference")
    slope = check_float(slope, "slope")
    if slope == 0:
        raise ValueError("slope must be non-zero")
    return _finite_result(lambda: (_real(shift, "shift") - reference) / slope, "shielding")


def _real(values: Any, name: str) -> np.ndarray:
    """float64 array of ``values``; ValueError for complex, object or string values and
    for NaN or infinite entries (a conversion would only carry them on)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = np.argwhere(bad)[0]
        where = f" at index {tuple(int(i) for i in first)}" if arr.ndim else ""
        raise ValueError(f"{name} must be finite: {int(bad.sum())} NaN or infinite value(s){where}")
    return arr


def _finite_result(compute: Any, name: str) -> np.ndarray:
    """compute() with float overflow reported as one clear ValueError, not inf."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = compute()
    if not np.all(np.isfinite(out)):
        raise ValueError(f"the {name} overflows float64: reference or slope too large")
    return out


def load_chemiscope(path: str | Path, prop: str = "CS_total") -> tuple[list[Any], list[np.ndarray]]:
    """Read structures and one per-atom property from a chemiscope JSON(.gz) file.

    Parameters
    ----------
    path : str or pathlib.Path
        A chemiscope dataset, e.g. CSD-1000R.json.gz (periodic cells as 9 numbers).
    prop : str, default "CS_total"
        Name of a per-atom property.

    Returns
    -------
    frames : list of ase.Atoms
    values : list of numpy.ndarray
        One (n_atoms,) array per frame.
    """
    ase = require("ase", feature="load_chemiscope")

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        data = json.load(fh)
    if prop not in data.get("properties", {}):
        raise ValueError(f"{path}: no property {prop!r}; has {sorted(data.get('properties', {}))}")
    values = np.asarray(data["properties"][prop]["values"], dtype=np.float64)
    frames, out, start = [], [], 0
    for s in data["structures"]:
        pos = np.stack([s["x"], s["y"], s["z"]], axis=1)
        cell = np.asarray(s.get("cell", np.zeros(9)), dtype=np.float64).reshape(3, 3)
        periodic = bool(np.abs(cell).sum() > 0)
        frames.append(ase.Atoms(s["names"], positions=pos, cell=cell, pbc=periodic))
        out.append(values[start : start + len(pos)])
        start += len(pos)
    if start != len(values):
        raise ValueError(f"{path}: {prop!r} is not a per-atom property")
    return frames, out


_N_CHECK = 8  # sparse points whose features are stored to check a loaded model


def _cluster(numbers: np.ndarray, positions: np.ndarray) -> Any:
    ase = require("ase", feature="ShiftModel")
    return ase.Atoms(numbers=np.asarray(numbers, dtype=int), positions=positions, pbc=False)


def _environments(frames: list[Any], pairs: np.ndarray, cutoff: float) -> list[Any]:
    """Non-periodic clusters: atom 0 is the centre (frame, atom) of each pair, at the
    origin, followed by every atom (periodic images included) closer than ``cutoff``."""
    neighbor_list = require("ase.neighborlist", feature="ShiftModel").neighbor_list
    out: list[Any] = [None] * len(pairs)
    for f in np.unique(pairs[:, 0]):
        frame = frames[int(f)]
        i, j, D = neighbor_list("ijD", frame, cutoff)
        for k in np.flatnonzero(pairs[:, 0] == f):
            atom = int(pairs[k, 1])
            sel = i == atom
            numbers = np.concatenate([[frame.numbers[atom]], frame.numbers[j[sel]]])
            positions = np.concatenate([np.zeros((1, 3)), D[sel]])
            out[k] = _cluster(numbers, positions)
    return out


def _as_frames(frames: Any, feature: str = "ShiftModel") -> list[Any]:
    ase = require("ase", feature=feature)
    if isinstance(frames, ase.Atoms):
        return [frames]
    frames = list(frames)
    if not frames:
        raise ValueError("frames is empty")
    return frames
