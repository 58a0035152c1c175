"""Crystal identification from HAADF images and CBED patterns: compact CNNs run with
onnxruntime.

The network (trained by ``scripts/train_crystal_classifier.py`` on windows from
:func:`matchar.imaging.simulate_haadf`) reads the log-magnitude FFT of a 16 Å window at
0.25 Å per pixel and predicts the (prototype, zone axis) class, the lattice constant and
the in-plane rotation. Its uncertainty is the mutual information between the prediction
and 16 Monte-Carlo samples: a small deep ensemble of 4 heads, trained independently on a
shared convolutional trunk, each under 4 fixed dropout masks. A second network
(``scripts/train_cbed_classifier.py``, patterns from :func:`matchar.imaging.simulate_cbed`)
reads a calibrated CBED pattern in polar coordinates around the direct beam.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.ndimage

from .._arrays import as_array
from .._optional import require
from .._threads import get_num_threads
from .._validation import check_int
from ._correlation import finite_rescaled
from ._features import (
    CBED_RADII,
    MODEL_PIXEL_SIZE,
    MODEL_WINDOW,
    cbed_center,
    cbed_features,
    fft_features,
    polar_features,
)
from ._refine import (
    LATTICE_SIGNIFICANCE,
    first_order_peak,
    plausible_spacings,
    power_spectra,
    refine_lattice,
    reflection_table,
)

_MODELS = Path(__file__).resolve().parent / "models"

#: Pixel sizes (Å) outside this range give a warning; outside PIXEL_SIZE_LIMITS an error.
PIXEL_SIZE_WARN = (0.06, 0.4)
PIXEL_SIZE_LIMITS = (0.02, 1.0)
#: CBED calibrations (1/Å per pixel): a warning outside the first range (around the
#: trained 0.03-0.045), an error outside the second (disks unresolved, or a pattern
#: reaching too little of reciprocal space to hold several reflections).
CBED_PIXEL_SIZE_WARN = (0.015, 0.06)
CBED_PIXEL_SIZE_LIMITS = (0.003, 0.2)
_MODALITIES = ("haadf", "cbed")
#: HAADF images and windows whose largest |value| is outside this range are scaled
#: exactly by a power of two first: the windows are standardized in float32, where their
#: squares would overflow (or the 1e-6 guard against flat windows would dominate).
HAADF_SAFE_PEAK = (2.0**-10, 2.0**40)
#: CBED patterns are read on an absolute scale (units of the incident beam): values
#: beyond this overflow the float32 features.
CBED_MAX_INTENSITY = 1e30


def _label(prototype: str, zone_axis: tuple[int, ...]) -> str:
    return f"{prototype}[{''.join(str(v) for v in zone_axis)}]"


@dataclass(frozen=True)
class CrystalPrediction:
    """Prediction for one image (all its windows pooled).

    Attributes
    ----------
    prototype : str
        "fcc", "bcc", "hcp" or "diamond".
    zone_axis : tuple of int
        Zone axis (hcp: four-index Miller-Bravais).
    probabilities : numpy.ndarray, shape (n_classes,), float64
        Class probabilities (mean over the Monte-Carlo samples), in the order of
        ``CrystalClassifier.classes``.
    lattice_constant : float
        Lattice constant a in Å (hcp: basal a) for the predicted class.
    rotation : float
        In-plane rotation in degrees, in [0, 360 / n) with n the zone axis's rotational
        symmetry order (see :func:`matchar.imaging.simulate_haadf`).
    uncertainty : float
        Mutual information (nats) between the class and the Monte-Carlo sample (ensemble
        head and dropout mask); 0 = the samples agree, up to log(n_classes).
    """

    prototype: str
    zone_axis: tuple[int, ...]
    probabilities: np.ndarray
    lattice_constant: float
    rotation: float
    uncertainty: float

    def plot(self, ax: Any = None, classes: Any = None) -> Any:
        """Bar chart of the class probabilities, the predicted class highlighted.

        Parameters
        ----------
        ax : matplotlib Axes, optional
        classes : sequence of str, optional
            Class labels (default: ``CrystalClassifier.default().classes``).

        Returns
        -------
        matplotlib Axes
        """
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(6, 3))
        names = list(CrystalClassifier.default().classes if classes is None else classes)
        p = np.asarray(self.probabilities, dtype=np.float64)
        if len(names) != p.size:
            raise ValueError(f"classes must have {p.size} entries, got {len(names)}")
        best = int(np.argmax(p))
        colors = ["C1" if i == best else "C0" for i in range(p.size)]
        ax.bar(np.arange(p.size), p, color=colors)
        ax.set_xticks(np.arange(p.size))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("probability")
        ax.set_title(
            f"{_label(self.prototype, self.zone_axis)}, a = {self.lattice_constant:.2f} Å, "
            f"rotation {self.rotation:.1f}°, MI {self.uncertainty:.3f}",
            fontsize=9,
        )
        return ax


@dataclass(frozen=True)
class CrystalMap:
    """Sliding-window classification maps on the window grid (H', W').

    Attributes
    ----------
    prototype : numpy.ndarray, shape (H', W'), object (str)
    zone_axis : numpy.ndarray, shape (H', W'), object (tuple of int)
    class_index : numpy.ndarray, shape (H', W'), int64
        Index into ``classes``.
    probabilities : numpy.ndarray, shape (H', W', n_classes), float32
    lattice_constant : numpy.ndarray, shape (H', W'), float32, Å
    rotation : numpy.ndarray, shape (H', W'), float32, degrees
    uncertainty : numpy.ndarray, shape (H', W'), float32
        Mutual information (nats).
    centers : numpy.ndarray, shape (H', W', 2), float64
        Window centres (row, col) in pixels of the input image.
    classes : tuple of str
        Class labels such as "fcc[110]".
    window, stride : int
        Window side and step in input-image pixels.
    """

    prototype: np.ndarray
    zone_axis: np.ndarray
    class_index: np.ndarray
    probabilities: np.ndarray
    lattice_constant: np.ndarray
    rotation: np.ndarray
    uncertainty: np.ndarray
    centers: np.ndarray
    classes: tuple[str, ...]
    window: int
    stride: int

    def plot(self, image: Any = None, fig: Any = None, pixel_size: float | None = None) -> Any:
        """The class map (with the image when given), the lattice-constant map and the
        uncertainty (mutual information) map, on the window grid.

        Parameters
        ----------
        image : array_like, shape (H, W), optional
            The classified image, drawn first.
        fig : matplotlib Figure, optional
        pixel_size : float, optional
            Å per pixel of the classified image: scale bars on every panel (the maps'
            cells are ``stride`` image pixels); without it, axes in pixels.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from .._plotting import (
            add_colorbar,
            class_colorbar,
            class_colormap,
            constrained,
            new_figure,
            set_title,
            style_map_axes,
        )

        panels = 3 if image is None else 4
        fig = new_figure((4.4 * panels, 4.2)) if fig is None else constrained(fig)
        axes = fig.subplots(1, panels)
        grid_ps = None if pixel_size is None else float(pixel_size) * self.stride
        width = self.class_index.shape[1]
        i = 0
        if image is not None:
            img = np.asarray(image)
            im = axes[0].imshow(img, cmap="gray")
            add_colorbar(fig, im, axes[0], "intensity (a.u.)")
            style_map_axes(axes[0], pixel_size, img.shape[1])
            set_title(axes[0], "image")
            i = 1
        cmap, norm = class_colormap(len(self.classes), "tab20")
        axes[i].imshow(self.class_index, cmap=cmap, norm=norm, interpolation="nearest")
        class_colorbar(fig, axes[i], self.classes, cmap="tab20")
        set_title(axes[i], "class")
        im = axes[i + 1].imshow(self.lattice_constant, cmap="viridis")
        add_colorbar(fig, im, axes[i + 1], "lattice constant (Å)")
        set_title(axes[i + 1], "lattice constant")
        im = axes[i + 2].imshow(self.uncertainty, cmap="magma")
        add_colorbar(fig, im, axes[i + 2], "mutual information (nats)")
        set_title(axes[i + 2], "uncertainty")
        for a in axes[i:]:
            style_map_axes(a, grid_ps, width)
        return fig


def _check_modality(modality: str) -> str:
    if modality not in _MODALITIES:
        raise ValueError(f"modality must be 'haadf' or 'cbed', got {modality!r}")
    return modality


def _check_pattern(pattern, pixel_size: float, ndim: int = 2) -> tuple[np.ndarray, float]:
    """Validate CBED pattern(s) (last two axes) and the calibration in 1/Å per pixel."""
    name = "pattern" if ndim == 2 else "patterns"
    img = as_array(pattern, name, ndim=ndim)
    if not np.all(np.isfinite(img)):
        raise ValueError(f"{name} contains NaN or inf pixels")
    peak = float(np.abs(img).max()) if img.size else 0.0
    if peak > CBED_MAX_INTENSITY:
        raise ValueError(
            f"{name} holds values up to {peak:.3g}: CBED intensities are in units of the "
            f"incident beam (the direct disk about 1) and must stay below "
            f"{CBED_MAX_INTENSITY:g} (the features are computed in float32)"
        )
    try:
        ps = float(pixel_size)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"pixel_size must be a number (1/Å per pixel for CBED), got {pixel_size!r}"
        ) from exc
    if not (math.isfinite(ps) and ps > 0):
        raise ValueError(f"pixel_size must be a finite number > 0 (1/Å per pixel), got {ps!r}")
    lo, hi = CBED_PIXEL_SIZE_LIMITS
    if not lo <= ps <= hi:
        raise ValueError(
            f"pixel_size={ps} 1/Å per pixel is far outside the range the CBED classifier "
            f"supports ({lo}-{hi}; CBED calibrations are reciprocal: 1/Å per pixel, "
            "g = 1/d; trained at 0.03-0.045)"
        )
    h, w = img.shape[-2:]
    half = 0.5 * min(h, w) * ps
    if half < 0.6:
        raise ValueError(
            f"{name} of shape {img.shape[-2:]} at pixel_size={ps} reaches only {half:.2f} 1/Å "
            "from the centre: at least 0.6 1/Å (a few reflections) is needed"
        )
    wlo, whi = CBED_PIXEL_SIZE_WARN
    if not wlo <= ps <= whi or half < 0.8 * CBED_RADII[-1]:
        warnings.warn(
            f"pixel_size={ps} 1/Å per pixel with a {h}x{w} pattern (reaching {half:.2f} 1/Å) "
            f"is outside what the CBED classifier was trained on (0.03-0.045 1/Å per pixel, "
            f"patterns reaching {CBED_RADII[-1]} 1/Å): predictions may be unreliable",
            UserWarning,
            stacklevel=3,
        )
    return img, ps


def _check_image(image, pixel_size: float, modality: str) -> tuple[np.ndarray, float]:
    if _check_modality(modality) == "cbed":
        return _check_pattern(image, pixel_size)
    img = finite_rescaled(as_array(image, "image", ndim=2), "image", HAADF_SAFE_PEAK)
    try:
        ps = float(pixel_size)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"pixel_size must be a number (Å per pixel), got {pixel_size!r}") from exc
    if not (math.isfinite(ps) and ps > 0):
        raise ValueError(f"pixel_size must be a finite number > 0 (Å per pixel), got {ps!r}")
    lo, hi = PIXEL_SIZE_LIMITS
    if not lo <= ps <= hi:
        raise ValueError(
            f"pixel_size={ps} Å is far outside the range the classifier supports "
            f"({lo}-{hi} Å; trained at {MODEL_PIXEL_SIZE} Å with columns 0.9-4.4 Å apart): "
            "atomic columns would be unresolved or the window would hold under a unit cell"
        )
    wlo, whi = PIXEL_SIZE_WARN
    if not wlo <= ps <= whi:
        warnings.warn(
            f"pixel_size={ps} Å is outside {wlo}-{whi} Å: the image is resampled to "
            f"{MODEL_PIXEL_SIZE} Å per pixel and predictions may be unreliable",
            UserWarning,
            stacklevel=3,
        )
    return img, ps


def _resample(img: np.ndarray, pixel_size: float) -> np.ndarray:
    """Resample to the model pixel size (linear; Gaussian anti-aliasing when shrinking)."""
    zoom = pixel_size / MODEL_PIXEL_SIZE
    x = np.asarray(img, dtype=np.float32)
    if abs(zoom - 1.0) < 1e-6:
        return x.copy()
    if zoom < 1.0:
        # anti-aliasing before shrinking: sigma (input pixels) grows with the shrink factor
        x = scipy.ndimage.gaussian_filter(x, sigma=0.5 * math.sqrt(1.0 / zoom - 1.0))
    return scipy.ndimage.zoom(x, zoom, order=1, prefilter=False, grid_mode=False)


#: Default relative tolerance of a known lattice constant (``lattice_tolerance``).
LATTICE_TOLERANCE = 0.05


def _lattice_range(value: Any, name: str) -> tuple[float, float]:
    """(lo, hi) in Å from a number or a (lo, hi) pair, validated."""
    shape = () if isinstance(value, (bool, str, bytes)) else np.shape(value)
    if isinstance(value, (bool, str, bytes)) or shape not in ((), (2,)):
        raise TypeError(f"{name} must be a number or a (min, max) pair in Å, got {value!r}")
    try:
        lo, hi = (float(value), float(value)) if shape == () else map(float, value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must hold numbers (Å), got {value!r}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(f"{name} must be finite and > 0 Å, with min <= max, got {value!r}")
    return lo, hi


def _lattice_prior(
    lattice_constant: Any, tolerance: float, prototypes: list[str]
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Per-class bounds (log Å) of a known lattice constant, or None without one.

    Classes of prototypes that a dict leaves out get empty bounds (NaN): excluded.
    """
    if lattice_constant is None:
        return None
    try:
        tol = float(tolerance)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"lattice_tolerance must be a number, got {tolerance!r}") from exc
    if not (math.isfinite(tol) and 0 < tol <= 1):
        raise ValueError(f"lattice_tolerance must be in (0, 1] (relative), got {tolerance!r}")
    n = len(prototypes)
    lo, hi = np.full(n, np.nan), np.full(n, np.nan)
    if isinstance(lattice_constant, dict):
        unknown = sorted(set(map(str, lattice_constant)) - set(prototypes))
        if unknown or not lattice_constant:
            raise ValueError(
                f"lattice_constant keys must be prototypes among {sorted(set(prototypes))}, "
                f"got {sorted(map(str, lattice_constant))}"
            )
        for c, proto in enumerate(prototypes):
            if proto in lattice_constant:
                lo[c], hi[c] = _lattice_range(
                    lattice_constant[proto], f"lattice_constant[{proto!r}]"
                )
    else:
        lo[:], hi[:] = _lattice_range(lattice_constant, "lattice_constant")
    return np.log(lo), np.log(hi), tol


_MISFIT = (
    "no class's predicted lattice constant is within 3 × lattice_tolerance of lattice_constant"
)


def _apply_lattice_prior(
    probs_mc: np.ndarray,
    log_a: np.ndarray,
    prior: tuple[np.ndarray, np.ndarray, float],
    warn: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, T, C) reweighted by how well each class's predicted
    lattice constant fits the known one: ``p_c exp(-d_c² / (2 tol²))``, ``d_c`` the
    distance of ``log a_c`` from the known log range (0 inside), then renormalised.
    Also returns the (N,) mask of the rows that no class fits within 3 tolerances (a
    warning names how many when ``warn``)."""
    llo, lhi, tol = prior

    def log_weight(la: np.ndarray) -> np.ndarray:  # NaN bounds (excluded classes): -inf
        d = np.maximum(llo - la, 0.0) + np.maximum(la - lhi, 0.0)
        return np.where(np.isnan(llo), -np.inf, -0.5 * np.square(d / tol))

    la = np.asarray(log_a, dtype=np.float64)
    logw = log_weight(la)
    misfit = log_weight(la.mean(axis=1)).max(axis=-1) < -4.5  # no class within 3 tol
    if warn and misfit.any():
        warnings.warn(
            f"for {int(misfit.sum())} of {len(misfit)} windows/patterns {_MISFIT}; they get "
            "the class that fits it best",
            UserWarning,
            stacklevel=4,
        )
    lp = np.log(np.clip(probs_mc, 1e-30, None)) + logw
    lp -= lp.max(axis=-1, keepdims=True)
    p = np.exp(lp)
    return p / p.sum(axis=-1, keepdims=True), misfit


def _given_text(lattice_constant: Any, prototype: str | None) -> str:
    """The known lattice constant as the user gave it, for messages ("2.87 Å")."""

    def one(v: Any) -> str:
        lo, hi = _lattice_range(v, "lattice_constant")
        return f"{lo:.3g} Å" if lo == hi else f"{lo:.3g}-{hi:.3g} Å"

    if not isinstance(lattice_constant, dict):
        return one(lattice_constant)
    if prototype is not None and prototype in lattice_constant:
        return f"{prototype} {one(lattice_constant[prototype])}"
    return ", ".join(f"{k} {one(v)}" for k, v in lattice_constant.items())


def _prior_deviation(
    a: np.ndarray, k: np.ndarray, prior: tuple[np.ndarray, np.ndarray, float]
) -> np.ndarray:
    """Relative distance of lattice constants ``a`` (Å) from the known range of their
    class ``k`` (0 inside; NaN for classes the prior excludes)."""
    lo, hi = np.exp(prior[0][k]), np.exp(prior[1][k])
    return np.maximum(lo - a, 0.0) / lo + np.maximum(a - hi, 0.0) / hi


class CrystalClassifier:
    """HAADF (or CBED) crystal classifier (ONNX network run with onnxruntime).

    Parameters
    ----------
    model_path : str or Path
        The ``.onnx`` file.
    metadata_path : str or Path or None
        Its JSON metadata; None = the same name with ``.json``.

    Examples
    --------
    >>> import matchar as mc
    >>> clf = mc.imaging.CrystalClassifier.default()
    >>> img = mc.imaging.simulate_haadf("fcc", (1, 1, 0), 4.0, shape=(128, 128),
    ...                                 pixel_size=0.15, dose=1000, seed=1)
    >>> clf.predict(img, pixel_size=0.15).prototype
    'fcc'
    """

    def __init__(self, model_path, metadata_path=None) -> None:
        ort = require("onnxruntime", "imaging", "CrystalClassifier")

        model_path = Path(model_path)
        metadata_path = (
            model_path.with_suffix(".json") if metadata_path is None else Path(metadata_path)
        )
        if not model_path.is_file():
            raise FileNotFoundError(f"classifier model {str(model_path)!r} does not exist")
        try:
            text = metadata_path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise FileNotFoundError(
                f"the metadata of classifier model {str(model_path)!r} could not be read from "
                f"{str(metadata_path)!r} (the JSON file written next to the .onnx by the "
                f"training script): {exc}"
            ) from exc
        try:
            self._read_metadata(json.loads(text))
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(
                f"{str(metadata_path)!r} is not the metadata of a matchar crystal classifier: "
                f"{detail}"
            ) from exc
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = get_num_threads()
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's own exception types (InvalidProtobuf, Fail)
            raise ValueError(
                f"{str(model_path)!r} could not be loaded as an ONNX model: {exc}"
            ) from exc
        inputs = [i.name for i in self._session.get_inputs()]
        n_out = len(self._session.get_outputs())
        if inputs != ["features"] or n_out != 3:
            raise ValueError(
                f"{str(model_path)!r} is not a matchar crystal classifier: it takes inputs "
                f"{inputs} and gives {n_out} outputs (expected the input 'features' and 3 "
                "outputs: probabilities, log lattice constants, rotations)"
            )

    def _read_metadata(self, metadata: Any) -> None:
        """Set the classes and the features from the model's metadata (raises KeyError,
        TypeError or ValueError when it is not a classifier's metadata)."""
        if not isinstance(metadata, dict):
            raise TypeError(f"a JSON object is expected, got {type(metadata).__name__}")
        self.metadata = metadata
        classes = metadata["classes"]
        if not isinstance(classes, list) or not classes:
            raise ValueError("'classes' must be a non-empty list")
        self._protos = [str(c["prototype"]) for c in classes]
        self._zones = [tuple(int(v) for v in c["zone_axis"]) for c in classes]
        self.classes: tuple[str, ...] = tuple(
            _label(p, z) for p, z in zip(self._protos, self._zones)
        )
        self.symmetry_order = np.asarray(metadata["symmetry_order"], dtype=np.int64)
        if self.symmetry_order.shape != (len(classes),) or (self.symmetry_order < 1).any():
            raise ValueError(
                f"'symmetry_order' must hold one integer >= 1 per class ({len(classes)})"
            )
        #: "haadf" or "cbed": what the network was trained on.
        self.modality: str = metadata.get("modality", "haadf")
        kind = metadata.get("features", "fft")
        if self.modality == "cbed":
            if kind != "cbed_polar":
                raise ValueError(f"unknown CBED features {kind!r}")
        elif self.modality != "haadf":
            raise ValueError(f"unknown modality {self.modality!r}")
        elif (
            float(metadata["pixel_size"]) != MODEL_PIXEL_SIZE
            or int(metadata["window"]) != MODEL_WINDOW
        ):
            raise ValueError("pixel size/window do not match this matchar")
        elif kind not in ("fft", "polar"):
            raise ValueError(f"unknown features {kind!r}")
        self._featurize = polar_features if kind == "polar" else fft_features
        #: Temperature of the class probabilities (softmax(logits / T) per Monte-Carlo
        #: sample), fitted on multislice images by
        #: ``scripts/evaluate_crystal_multislice.py --write-temperature``; 1 = as trained.
        self.temperature = float(metadata.get("temperature", 1.0))
        if not (math.isfinite(self.temperature) and 0.05 <= self.temperature <= 20.0):
            raise ValueError(f"'temperature' must be in [0.05, 20], got {self.temperature}")

    @classmethod
    def default(cls, modality: str = "haadf") -> CrystalClassifier:
        """The classifier shipped with matchar (loaded once, then cached).

        Parameters
        ----------
        modality : {"haadf", "cbed"}
            The HAADF-image network or the CBED-pattern network. Either one's
            ``predict(..., modality=...)`` hands the other modality to the other network.

        Returns
        -------
        CrystalClassifier

        Examples
        --------
        >>> import matchar as mc
        >>> len(mc.imaging.CrystalClassifier.default().classes)
        12
        >>> mc.imaging.CrystalClassifier.default("cbed").modality
        'cbed'
        """
        return _load_default(cls, _check_modality(modality))

    def _for(self, modality: str) -> CrystalClassifier:
        """This classifier when it was trained on ``modality``, else the shipped one that was."""
        return self if _check_modality(modality) == self.modality else self.default(modality)

    def _run(self, feat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p, la, r = self._session.run(None, {"features": feat})
        if self.temperature != 1.0:  # p ∝ exp(logit): p^(1/T), renormalised
            logp = np.log(np.clip(p, 1e-30, None)) / np.float32(self.temperature)
            logp -= logp.max(axis=-1, keepdims=True)
            p = np.exp(logp)
            p /= p.sum(axis=-1, keepdims=True)
        if r.ndim == 2:  # rotation head outside the dropout: one value for all samples
            r = r[:, None, :]
        return p, la, np.broadcast_to(r.reshape(r.shape[0], r.shape[1], -1, 2), (*p.shape, 2))

    def predict_patterns(
        self,
        patterns,
        pixel_size: float,
        batch_size: int = 1024,
        *,
        lattice_constant: Any = None,
        lattice_tolerance: float = LATTICE_TOLERANCE,
    ) -> dict:
        """Run the CBED network on a stack of patterns (see :meth:`predict`).

        Parameters
        ----------
        patterns : array_like, shape (N, H, W)
            CBED patterns, intensities in units of the incident beam (the direct disk
            about 1), direct beam anywhere inside (found from the centrosymmetry).
        pixel_size : float
            Calibration in 1/Å per pixel.
        batch_size : int
            Patterns per onnxruntime call, >= 1.
        lattice_constant, lattice_tolerance
            What you know of the lattice constant (Å) and its relative tolerance: see
            :meth:`predict`.

        Returns
        -------
        dict
            ``class`` (N,) int, ``probabilities`` (N, C), ``lattice_constant`` (N,) Å,
            ``rotation`` (N,) degrees, ``uncertainty`` (N,) nats, ``center`` (N, 2)
            direct-beam (x, y) in pixels.

        Examples
        --------
        >>> import numpy as np, matchar as mc
        >>> p = mc.imaging.simulate_cbed("bcc", (1, 1, 0), 3.2, shape=(128, 128),
        ...                              pixel_size=0.035, dose=5000, seed=0)
        >>> clf = mc.imaging.CrystalClassifier.default("cbed")
        >>> clf.predict_patterns(p[None], 0.035)["probabilities"].shape
        (1, 12)
        """
        clf = self._for("cbed")
        batch_size = check_int(batch_size, "batch_size", low=1)
        x, ps = _check_pattern(patterns, pixel_size, ndim=3)
        prior = clf._prior(lattice_constant, lattice_tolerance)
        n = len(x)
        centers = np.array([cbed_center(v) for v in x]).reshape(n, 2)
        outs = []
        for s in range(0, n, batch_size):
            feat = cbed_features(x[s : s + batch_size], ps, centers[s : s + batch_size])
            outs.append(clf._run(feat))
        c = len(clf.classes)
        if n == 0:
            t = int(clf.metadata["mc_samples"])
            outs = [(np.zeros((0, t, c)), np.zeros((0, t, c)), np.zeros((0, t, c, 2)))]
        out = {
            "probs_mc": np.concatenate([o[0] for o in outs]),
            "log_a": np.concatenate([o[1] for o in outs]),
            "rot": np.concatenate([o[2] for o in outs]),
        }
        summary = clf._summarize(out, prior)
        summary["center"] = centers
        return summary

    # -- the network on model-scale windows ------------------------------------------
    def predict_windows(self, windows: np.ndarray, batch_size: int = 2048) -> dict:
        """Run the network on windows already at the model's pixel scale.

        Parameters
        ----------
        windows : numpy.ndarray, shape (N, 64, 64)
            Windows at 0.25 Å per pixel (the model scale); finite values, any scale
            (each window is standardized).
        batch_size : int
            Windows per onnxruntime call, >= 1.

        Returns
        -------
        dict
            ``probs_mc`` (N, T, C) float32 (T Monte-Carlo samples), ``log_a`` (N, T, C)
            (log lattice constant per class), ``rot`` (N, T, C, 2) ((cos n phi, sin n phi)
            per class).

        Examples
        --------
        >>> import numpy as np, matchar as mc
        >>> out = mc.imaging.CrystalClassifier.default().predict_windows(np.ones((2, 64, 64)))
        >>> out["probs_mc"].shape[0]
        2
        """
        if self.modality != "haadf":
            raise ValueError("predict_windows runs the HAADF network; use predict_patterns")
        batch_size = check_int(batch_size, "batch_size", low=1)
        w = _check_windows(windows)
        n = len(w)
        probs, loga, rot = [], [], []
        threads = get_num_threads()
        for s in range(0, n, batch_size):
            p, la, r = self._run(self._featurize(w[s : s + batch_size], workers=threads))
            probs.append(p)
            loga.append(la)
            rot.append(r)
        c = len(self.classes)
        if n == 0:
            t = int(self.metadata["mc_samples"])
            return {
                "probs_mc": np.zeros((0, t, c), np.float32),
                "log_a": np.zeros((0, t, c), np.float32),
                "rot": np.zeros((0, t, c, 2), np.float32),
            }
        return {
            "probs_mc": np.concatenate(probs),
            "log_a": np.concatenate(loga),
            "rot": np.concatenate(rot),
        }

    def _prior(self, lattice_constant: Any, lattice_tolerance: float):
        return _lattice_prior(lattice_constant, lattice_tolerance, self._protos)

    def _summarize(self, out: dict, prior: Any = None, warn_misfit: bool = True) -> dict:
        pm = out["probs_mc"].astype(np.float64)  # (N, T, C)
        misfit = np.zeros(len(pm), bool)
        if prior is not None:
            pm, misfit = _apply_lattice_prior(pm, out["log_a"], prior, warn_misfit)
        mean = pm.mean(axis=1)
        ent = -np.sum(mean * np.log(np.clip(mean, 1e-12, None)), axis=-1)
        ent_t = -np.sum(pm * np.log(np.clip(pm, 1e-12, None)), axis=-1).mean(axis=1)
        mi = np.clip(ent - ent_t, 0.0, None)
        k = mean.argmax(axis=-1)
        idx = np.arange(len(k))
        a = np.exp(out["log_a"].mean(axis=1)[idx, k])
        cs = out["rot"].mean(axis=1)[idx, k]  # (N, 2)
        order = self.symmetry_order[k]
        rot = np.degrees(np.arctan2(cs[:, 1], cs[:, 0])) / order
        rot = np.mod(rot, 360.0 / order)
        summary = {
            "class": k,
            "probabilities": mean,
            "lattice_constant": a,
            "rotation": rot,
            "uncertainty": mi,
        }
        if not warn_misfit:
            summary["misfit"] = misfit
        return summary

    # -- public API --------------------------------------------------------------
    def predict(
        self,
        image,
        pixel_size: float,
        *,
        modality: str = "haadf",
        lattice_constant: Any = None,
        lattice_tolerance: float = LATTICE_TOLERANCE,
    ) -> CrystalPrediction:
        """Classify a whole image (windows of 16 Å pooled).

        Parameters
        ----------
        image : array_like, shape (H, W)
            HAADF image, H and W at least 16 Å / ``pixel_size`` (one window); or, with
            ``modality="cbed"``, one CBED pattern at a zone axis (intensities in units of
            the incident beam, as from :func:`simulate_cbed`).
        pixel_size : float
            Å per pixel of ``image``; for CBED the calibration in 1/Å per pixel (g = 1/d;
            at 300 kV, 1 mrad = 0.0508 1/Å).
        modality : {"haadf", "cbed"}
            Image or diffraction pattern; each is classified by the network trained on it
            (:meth:`default` of that modality).
        lattice_constant : float, (min, max) or dict, optional
            What you know of the lattice constant, in Å (hcp: basal a): one value, a
            range, or a dict per prototype (``{"fcc": 3.59, "bcc": 2.87}``; prototypes left
            out are excluded). Each class's probability is multiplied by
            ``exp(-d² / (2 lattice_tolerance²))``, ``d`` the relative distance of the
            lattice constant the network reads for that class from the known one (0
            within a range), and renormalised. This separates the classes whose column
            patterns coincide up to scale (fcc/bcc/diamond [100], fcc/bcc [111], fcc [211]
            / hcp [10-10]; docs/imaging_cnn.md), which no image alone can.
        lattice_tolerance : float
            Relative tolerance of ``lattice_constant`` (default 0.05).

        Returns
        -------
        CrystalPrediction

        Examples
        --------
        >>> import matchar as mc
        >>> img = mc.imaging.simulate_haadf("bcc", (1, 1, 1), 3.3, rotation=20.0,
        ...     shape=(96, 96), pixel_size=0.2, dose=2000, seed=3)
        >>> p = mc.imaging.CrystalClassifier.default().predict(img, 0.2)
        >>> p.prototype, p.zone_axis
        ('bcc', (1, 1, 1))
        >>> sq = mc.imaging.simulate_haadf("fcc", (1, 0, 0), 3.61, shape=(96, 96),
        ...     pixel_size=0.2, dose=2000, seed=3)   # Cu: a square pattern, like bcc [100]
        >>> mc.imaging.CrystalClassifier.default().predict(sq, 0.2, lattice_constant=3.61
        ...     ).prototype
        'fcc'
        """
        img, ps = _check_image(image, pixel_size, modality)
        prior_kw = dict(lattice_constant=lattice_constant, lattice_tolerance=lattice_tolerance)
        if modality == "cbed":
            s = self.predict_patterns(img[None], ps, **prior_kw)
            k = int(s["class"][0])
            clf = self._for("cbed")
            return CrystalPrediction(
                prototype=clf._protos[k],
                zone_axis=clf._zones[k],
                probabilities=s["probabilities"][0],
                lattice_constant=float(s["lattice_constant"][0]),
                rotation=float(s["rotation"][0]),
                uncertainty=float(s["uncertainty"][0]),
            )
        if self.modality != "haadf":
            return self._for("haadf").predict(img, ps, **prior_kw)
        prior = self._prior(lattice_constant, lattice_tolerance)
        r = _resample(img, ps)
        windows = self._grid_windows(r, img.shape, MODEL_WINDOW, MODEL_WINDOW // 2)[0]
        _refuse_constant(img)
        out = self.predict_windows(windows.reshape(-1, MODEL_WINDOW, MODEL_WINDOW))
        pooled = {key: v.mean(axis=0, keepdims=True) for key, v in out.items()}
        s = self._summarize(pooled, prior, warn_misfit=False)
        k = int(s["class"][0])
        a = float(s["lattice_constant"][0])
        # The lattice constant is measured on the original image, not on the resampled
        # one: no interpolation blurs or aliases its peaks, and the whole field of view
        # gives the finest frequency bins.
        spec = power_spectra(img[None], workers=get_num_threads())
        measured = False
        if self._shows_lattice(spec, img.shape, ps, "the image", s["probabilities"][0]):
            g, sep = self._reflections()
            am, found, off = refine_lattice(
                spec, img.shape, ps, g[[k]], sep[[k]], s["lattice_constant"][:1],
                s["rotation"][:1], return_misfit=True,
            )  # fmt: skip
            a, measured = float(am[0]), bool(found[0] >= 2)
            if prior is not None and off[0]:
                # The class the prior favours does not fit the image's peaks: the prior is
                # wrong for this image (pixel size or material). Report the class the image
                # shows when it fits, with its measured lattice constant, and warn.
                s0 = self._summarize(pooled, None)
                k0 = int(s0["class"][0])
                if k0 != k:
                    am0, found0, off0 = refine_lattice(
                        spec, img.shape, ps, g[[k0]], sep[[k0]], s0["lattice_constant"][:1],
                        s0["rotation"][:1], return_misfit=True,
                    )  # fmt: skip
                    if found0[0] >= 2 and not off0[0]:
                        s0["misfit"] = s["misfit"]  # no class within 3 tolerances
                        s, k, a, measured = s0, k0, float(am0[0]), True
                        if np.isnan(_prior_deviation(np.array([a]), np.array([k]), prior)[0]):
                            _warn(
                                f"the image shows {self.classes[k]} (lattice constant "
                                f"measured from the image, {a:.2f} Å), a prototype the given "
                                f"{_given_text(lattice_constant, None)} excludes; the "
                                "classes it allows do not fit the image's FFT peaks: check "
                                "the pixel size or the material"
                            )
                            prior = None
            if prior is not None:
                self._warn_prior(
                    np.array([a]), np.array([k]), np.array([measured]), s["misfit"], prior,
                    lattice_constant,
                )  # fmt: skip
        elif prior is not None and s["misfit"][0]:
            _warn(f"{_MISFIT}; the image gets the class that fits it best")
        return CrystalPrediction(
            prototype=self._protos[k],
            zone_axis=self._zones[k],
            probabilities=s["probabilities"][0],
            lattice_constant=a,
            rotation=float(s["rotation"][0]),
            uncertainty=float(s["uncertainty"][0]),
        )

    def _reflections(self) -> tuple[np.ndarray, np.ndarray]:
        """Reflections (C, M) and smallest separations (C,) of the classes, in 1/a."""
        return reflection_table(tuple(zip(self._protos, self._zones)))

    def _shows_lattice(
        self, spec: np.ndarray, shape: tuple[int, int], ps: float, what: str,
        probabilities: np.ndarray | None = None,
    ) -> bool:  # fmt: skip
        """Whether the power spectrum (1, H, W//2+1) of an image shows lattice peaks;
        warns when it does not (naming the class given ``probabilities``), or when its
        first-order spacing fits no class."""
        spacing, ratio = first_order_peak(spec, shape, ps)
        if ratio < LATTICE_SIGNIFICANCE:
            if probabilities is None:
                verdict = "the classes and lattice constants of its windows mean nothing"
            else:
                best = int(np.argmax(probabilities))
                verdict = (
                    f"the class ({self.classes[best]}, p = {probabilities[best]:.2f}) and the "
                    "lattice constant mean nothing"
                )
            _warn(
                f"{what} shows no lattice: its strongest FFT peak (at {spacing:.2f} Å) is only "
                f"{ratio:.0f} times the background, where an atomic-resolution image of a "
                f"crystal gives over {LATTICE_SIGNIFICANCE:.0f} (noise, an amorphous or "
                f"blurred region, or a pixel size far from the true one); {verdict}"
            )
            return False
        a_range = tuple(self.metadata.get("lattice_constant_range", (2.5, 5.4)))
        lo, hi = plausible_spacings(tuple(zip(self._protos, self._zones)), a_range)
        if not lo / 1.25 <= spacing <= 1.25 * hi:
            _warn(
                f"the first-order lattice peak of {what}'s FFT is at a spacing of "
                f"{spacing:.2f} Å, outside the {lo:.2f}-{hi:.2f} Å of the first-order "
                f"spacings of every class at lattice constants "
                f"{a_range[0]:g}-{a_range[1]:g} Å (what the network knows): check "
                f"pixel_size ({ps:g} Å per pixel)"
            )
        return True

    def _warn_prior(
        self, a: np.ndarray, k: np.ndarray, measured: np.ndarray, misfit: np.ndarray,
        prior: tuple[np.ndarray, np.ndarray, float], lattice_constant: Any,
    ) -> None:  # fmt: skip
        """One warning when the lattice constants reported (measured, else the network's)
        disagree with the known one beyond the tolerance, or no class fitted it."""
        tol = prior[2]
        dev = np.nan_to_num(_prior_deviation(a, k, prior), nan=0.0)
        off = dev > tol
        n = len(a)
        tail = ""
        if misfit.any():
            tail = f"; {_MISFIT}" + (
                f" for {int(misfit.sum())} of {n} windows: they get" if n > 1
                else ": the image gets"
            ) + " the class that fits it best"  # fmt: skip
        if not off.any():
            if tail:
                _warn(tail[2].upper() + tail[3:])
            return
        if n == 1:
            src = "measured from the image" if measured[0] else "read by the network"
            _warn(
                f"lattice constant {src}, {a[0]:.2f} Å, differs from the given "
                f"{_given_text(lattice_constant, self._protos[int(k[0])])} by {dev[0]:.0%} "
                f"(tolerance {tol:.0%}): check the pixel size or the material{tail}"
            )
            return
        med = int(np.argsort(dev[off])[len(dev[off]) // 2])
        src = "measured from the image" if measured[off].all() else (
            "(measured, or read by the network in windows with too few lattice peaks)"
        )  # fmt: skip
        _warn(
            f"lattice constant {src} differs from the given "
            f"{_given_text(lattice_constant, None)} by more than {tol:.0%} in "
            f"{int(off.sum())} of {n} windows (median {float(np.median(a[off])):.2f} Å, "
            f"{dev[off][med]:.0%} off): check the pixel size or the material{tail}"
        )

    @staticmethod
    def _grid_windows(r: np.ndarray, shape, wm: int, sm: int):
        """Windows of side wm every sm pixels of the resampled image r."""
        hm, wmx = r.shape
        if hm < wm or wmx < wm:
            need = math.ceil(wm * MODEL_PIXEL_SIZE * 10) / 10
            raise ValueError(
                f"image of shape {tuple(shape)} is smaller than one window ({need} Å = "
                f"{wm} pixels at {MODEL_PIXEL_SIZE} Å) in at least one direction"
            )
        ys = np.arange(0, hm - wm + 1, sm)
        xs = np.arange(0, wmx - wm + 1, sm)
        view = np.lib.stride_tricks.sliding_window_view(r, (wm, wm))
        return view[ys[:, None], xs[None, :]], ys, xs

    def classify_map(
        self,
        image,
        pixel_size: float,
        window: int | None = None,
        stride: int | None = None,
        *,
        modality: str = "haadf",
        batch_size: int = 2048,
        lattice_constant: Any = None,
        lattice_tolerance: float = LATTICE_TOLERANCE,
    ) -> CrystalMap:
        """Classify every window of a sliding grid (see :func:`classify_map`)."""
        prior_kw = dict(lattice_constant=lattice_constant, lattice_tolerance=lattice_tolerance)
        batch_size = check_int(batch_size, "batch_size", low=1)
        if _check_modality(modality) == "cbed":
            return self._cbed_map(image, pixel_size, window, stride, batch_size, **prior_kw)
        if self.modality != "haadf":
            return self._for("haadf").classify_map(
                image, pixel_size, window, stride, batch_size=batch_size, **prior_kw
            )
        img, ps = _check_image(image, pixel_size, modality)
        prior = self._prior(lattice_constant, lattice_tolerance)
        fov = MODEL_WINDOW * MODEL_PIXEL_SIZE / ps  # input pixels of one model window
        if window is None:
            window = round(fov)
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
            raise TypeError(f"window must be an int (pixels), got {type(window).__name__}")
        window = check_int(window, "window (pixels)", low=1)
        if not 0.5 * fov - 1 <= window <= fov + 1:
            raise ValueError(
                f"window={window} pixels must cover {0.5 * fov:.0f}-{fov:.0f} pixels at "
                f"pixel_size={ps} Å (8-16 Å, the network's field of view is 16 Å)"
            )
        if stride is None:
            stride = max(1, window // 4)
        stride = check_int(stride, "stride (pixels)", low=1)
        H, W = img.shape
        if H < window or W < window:
            raise ValueError(
                f"image of shape {(H, W)} is smaller than one window ({window} "
                f"pixels = {window * ps:.1f} Å)"
            )
        _refuse_constant(img)
        r = _resample(img, ps)
        scale = ps / MODEL_PIXEL_SIZE
        wm = min(MODEL_WINDOW, round(window * scale))
        rows = np.arange(0, H - window + 1, stride)
        cols = np.arange(0, W - window + 1, stride)
        y0 = np.clip(np.round(rows * scale).astype(np.int64), 0, r.shape[0] - wm)
        x0 = np.clip(np.round(cols * scale).astype(np.int64), 0, r.shape[1] - wm)
        if r.shape[0] < wm or r.shape[1] < wm:
            raise ValueError(f"image of shape {(H, W)} is smaller than one window")
        view = np.lib.stride_tricks.sliding_window_view(r, (wm, wm))
        n_r, n_c = len(rows), len(cols)
        C = len(self.classes)
        k = np.empty(n_r * n_c, np.int64)
        prob = np.empty((n_r * n_c, C), np.float32)
        lat = np.empty(n_r * n_c, np.float32)
        rot = np.empty(n_r * n_c, np.float32)
        unc = np.empty(n_r * n_c, np.float32)
        flat_y = np.repeat(y0, n_c)
        flat_x = np.tile(x0, n_r)
        measured = np.zeros(n_r * n_c, bool)
        misfit = np.zeros(n_r * n_c, bool)
        excluded = 0  # windows moved to a class the prior excludes
        spec = power_spectra(img[None], workers=get_num_threads())
        refine = self._shows_lattice(spec, img.shape, ps, "the image")
        g, sep = self._reflections()
        threads = get_num_threads()
        for s in range(0, n_r * n_c, batch_size):
            sl = slice(s, s + batch_size)
            win = view[flat_y[sl], flat_x[sl]]
            if wm < MODEL_WINDOW:
                win = _pad_windows(win)
            out = self.predict_windows(win, batch_size)
            sm = self._summarize(out, prior, warn_misfit=False)
            if refine:
                # Per window on the model-scale windows the network read: one batched
                # FFT, the same 16 Å field of view (finer bins would need larger windows).
                p = power_spectra(win, workers=threads, taper=wm == MODEL_WINDOW)
                ks = sm["class"]
                am, found, off = refine_lattice(
                    p, (MODEL_WINDOW, MODEL_WINDOW), MODEL_PIXEL_SIZE, g[ks], sep[ks],
                    sm["lattice_constant"], sm["rotation"], field=wm * MODEL_PIXEL_SIZE,
                    return_misfit=True,
                )  # fmt: skip
                sm["lattice_constant"] = am
                if prior is not None and off.any():
                    # windows whose prior-favoured class misses their peaks: the class
                    # the window shows, where it fits (see predict)
                    idx = np.flatnonzero(off)
                    s0 = self._summarize({key: v[idx] for key, v in out.items()}, None)
                    k0 = s0["class"]
                    am0, found0, off0 = refine_lattice(
                        p[idx], (MODEL_WINDOW, MODEL_WINDOW), MODEL_PIXEL_SIZE, g[k0],
                        sep[k0], s0["lattice_constant"], s0["rotation"],
                        field=wm * MODEL_PIXEL_SIZE, return_misfit=True,
                    )  # fmt: skip
                    sw = (k0 != ks[idx]) & (found0 >= 2) & ~off0
                    j = idx[sw]
                    s0["lattice_constant"] = am0
                    for key in ("class", "probabilities", "rotation", "uncertainty",
                                "lattice_constant"):  # fmt: skip
                        sm[key][j] = s0[key][sw]
                    found[j] = found0[sw]
                    excluded += int(np.isnan(_prior_deviation(am0[sw], k0[sw], prior)).sum())
                measured[sl] = found >= 2
            k[sl], prob[sl], misfit[sl] = sm["class"], sm["probabilities"], sm["misfit"]
            lat[sl], rot[sl], unc[sl] = sm["lattice_constant"], sm["rotation"], sm["uncertainty"]
        if excluded:
            _warn(
                f"{excluded} of {n_r * n_c} windows show a class of a prototype the given "
                f"{_given_text(lattice_constant, None)} excludes (with its lattice constant "
                "measured from the image): the classes it allows do not fit their FFT peaks; "
                "check the pixel size or the material"
            )
        if prior is not None:
            self._warn_prior(lat, k, measured, misfit, prior, lattice_constant)
        k = k.reshape(n_r, n_c)
        protos = np.array(self._protos, dtype=object)[k]
        zones = np.empty(len(self._zones), dtype=object)
        for i, z in enumerate(self._zones):
            zones[i] = z
        centers = np.stack(
            np.meshgrid(rows + (window - 1) / 2, cols + (window - 1) / 2, indexing="ij"), axis=-1
        ).astype(np.float64)
        return CrystalMap(
            prototype=protos,
            zone_axis=zones[k],
            class_index=k,
            probabilities=prob.reshape(n_r, n_c, C),
            lattice_constant=lat.reshape(n_r, n_c),
            rotation=rot.reshape(n_r, n_c),
            uncertainty=unc.reshape(n_r, n_c),
            centers=centers,
            classes=self.classes,
            window=window,
            stride=stride,
        )

    def _cbed_map(
        self, data, pixel_size, window, stride, batch_size, **prior_kw: Any
    ) -> CrystalMap:
        """Maps over the scan grid of a 4-D STEM data set (one CBED pattern per position)."""
        if window is not None or stride is not None:
            raise ValueError(
                "window and stride do not apply to modality='cbed': every scan position's "
                "pattern is classified (pass them as None)"
            )
        arr, ps = _check_pattern(data, pixel_size, ndim=4)
        n_r, n_c, h, w = arr.shape
        clf = self._for("cbed")
        s = clf.predict_patterns(
            arr.reshape(n_r * n_c, h, w), ps, batch_size=batch_size, **prior_kw
        )
        k = s["class"].reshape(n_r, n_c)
        zones = np.empty(len(clf._zones), dtype=object)
        for i, z in enumerate(clf._zones):
            zones[i] = z
        centers = np.stack(np.meshgrid(np.arange(n_r), np.arange(n_c), indexing="ij"), -1)
        return CrystalMap(
            prototype=np.array(clf._protos, dtype=object)[k],
            zone_axis=zones[k],
            class_index=k,
            probabilities=s["probabilities"].reshape(n_r, n_c, -1).astype(np.float32),
            lattice_constant=s["lattice_constant"].reshape(n_r, n_c).astype(np.float32),
            rotation=s["rotation"].reshape(n_r, n_c).astype(np.float32),
            uncertainty=s["uncertainty"].reshape(n_r, n_c).astype(np.float32),
            centers=centers.astype(np.float64),
            classes=clf.classes,
            window=1,
            stride=1,
        )


@functools.lru_cache(maxsize=4)
def _load_default(cls: type, modality: str) -> CrystalClassifier:
    name = {"haadf": "crystal_classifier.onnx", "cbed": "crystal_classifier_cbed.onnx"}
    path = _MODELS / name[modality]
    if not path.is_file():
        raise FileNotFoundError(
            f"the shipped {modality.upper()} classifier is missing ({path}): reinstall matchar"
        )
    return cls(path)


def _warn(message: str) -> None:
    """A UserWarning pointing at the caller of predict/classify_map."""
    warnings.warn(message, UserWarning, stacklevel=4)


def _refuse_constant(img: np.ndarray) -> None:
    if img.min() == img.max():
        raise ValueError("image is constant: a flat image shows no crystal to classify")


def _check_windows(windows: Any) -> np.ndarray:
    """Model-scale windows (N, 64, 64): finite, each scaled by a power of two into
    :data:`HAADF_SAFE_PEAK` when outside it (the features standardize every window)."""
    w = as_array(windows, "windows", ndim=3, allow_empty=True)
    if w.shape[1:] != (MODEL_WINDOW, MODEL_WINDOW):
        raise ValueError(
            f"windows must have shape (N, {MODEL_WINDOW}, {MODEL_WINDOW}), got {w.shape}"
        )
    if len(w) == 0:
        return w
    peak = np.maximum(np.abs(w.min(axis=(1, 2))), np.abs(w.max(axis=(1, 2))))
    bad = np.flatnonzero(~np.isfinite(peak))
    if len(bad):
        raise ValueError(
            f"windows contain NaN or infinite values ({len(bad)} of {len(w)} windows, the "
            f"first at index {bad[0]})"
        )
    lo, hi = HAADF_SAFE_PEAK
    out = (peak > 0) & ((peak < lo) | (peak > hi))
    if out.any():
        e = np.where(out, np.frexp(peak)[1], 0)
        w = np.ldexp(w, -e[:, None, None]).astype(w.dtype, copy=False)
    return w


def _pad_windows(win: np.ndarray) -> np.ndarray:
    """Standardize + taper windows smaller than the model's, then zero-pad them."""
    n, wm = win.shape[0], win.shape[1]
    x = win.astype(np.float32) - win.mean(axis=(1, 2), keepdims=True)
    x /= x.std(axis=(1, 2), keepdims=True) + np.float32(1e-6)
    h = np.hanning(wm + 2)[1:-1].astype(np.float32)
    x *= np.outer(h, h)
    out = np.zeros((n, MODEL_WINDOW, MODEL_WINDOW), np.float32)
    o = (MODEL_WINDOW - wm) // 2
    out[:, o : o + wm, o : o + wm] = x
    return out


def classify_map(
    image,
    pixel_size: float,
    window: int | None = None,
    stride: int | None = None,
    *,
    modality: str = "haadf",
    classifier: CrystalClassifier | None = None,
    batch_size: int = 2048,
    lattice_constant: Any = None,
    lattice_tolerance: float = LATTICE_TOLERANCE,
) -> CrystalMap:
    """Sliding-window crystal classification maps with uncertainty.

    The image is resampled to the network's 0.25 Å per pixel, cut into windows of
    ``window`` pixels every ``stride`` pixels, and each window is classified; the
    uncertainty map is the mutual information over the Monte-Carlo samples, high at
    interfaces, defects and amorphous regions.

    With ``modality="cbed"``, ``image`` is a 4-D STEM data set of shape
    (scan rows, scan cols, H, W), one CBED pattern per probe position, ``pixel_size`` its
    calibration in 1/Å per pixel, ``window`` and ``stride`` must be None, and the maps
    are on the scan grid (``centers`` holds the scan indices).

    Parameters
    ----------
    image : array_like, shape (H, W)
        HAADF image (finite values); for CBED, shape (Y, X, H, W).
    pixel_size : float
        Å per pixel of ``image`` (0.02-1.0; a warning outside 0.06-0.4); for CBED
        1/Å per pixel (0.003-0.2; a warning outside 0.015-0.06).
    window : int or None
        Window side in pixels of ``image``: from 8 Å to 16 Å worth of pixels; None = 16 Å
        (the network's field of view; smaller windows are zero-padded).
    stride : int or None
        Step between windows in pixels of ``image``; None = window // 4.
    modality : {"haadf", "cbed"}
        HAADF image or 4-D STEM stack of CBED patterns.
    classifier : CrystalClassifier or None
        None = :meth:`CrystalClassifier.default`.
    batch_size : int
        Windows per network call, >= 1 (memory: about 50 kB per window).
    lattice_constant, lattice_tolerance
        What you know of the lattice constant (Å) and its relative tolerance: see
        :meth:`CrystalClassifier.predict`.

    Returns
    -------
    CrystalMap
        Maps of shape (H', W') = ((H - window) // stride + 1, (W - window) // stride + 1).

    Examples
    --------
    >>> import matchar as mc
    >>> img = mc.imaging.simulate_haadf("hcp", (0, 0, 0, 1), 3.2, shape=(160, 160),
    ...                                 pixel_size=0.2, dose=1000, seed=0)
    >>> m = mc.imaging.classify_map(img, 0.2, stride=16)
    >>> m.uncertainty.shape, m.prototype[0, 0]
    ((6, 6), 'hcp')
    """
    clf = CrystalClassifier.default() if classifier is None else classifier
    return clf.classify_map(
        image,
        pixel_size,
        window,
        stride,
        modality=modality,
        batch_size=batch_size,
        lattice_constant=lattice_constant,
        lattice_tolerance=lattice_tolerance,
    )
