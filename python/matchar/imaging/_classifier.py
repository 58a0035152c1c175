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

This module holds the classifier itself (loading, inference, whole-image prediction);
its parts live beside it: ``_classifier_checks`` (inputs, resampling, warnings),
``_lattice_prior`` (a known lattice constant), ``_classifier_maps`` (sliding-window maps)
and ``_classifier_results`` (the returned objects and their plots). Every name is
importable from here as before.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .._deprecation import renamed_parameters
from .._optional import require
from .._threads import get_num_threads
from .._validation import check_int
from ._classifier_checks import _MODALITIES as _MODALITIES
from ._classifier_checks import (
    CBED_MAX_INTENSITY,
    CBED_PIXEL_SIZE_LIMITS,
    CBED_PIXEL_SIZE_WARN,
    HAADF_SAFE_PEAK,
    PIXEL_SIZE_LIMITS,
    PIXEL_SIZE_WARN,
    _calibration,
    _check_image,
    _check_modality,
    _check_pattern,
    _check_windows,
    _refuse_constant,
    _resample,
    _warn,
    shows_lattice,
)
from ._classifier_checks import _network_windows as _network_windows
from ._classifier_checks import _pad_windows as _pad_windows
from ._classifier_maps import cbed_map, classify_map, grid_windows, haadf_map
from ._classifier_results import CrystalMap, CrystalPrediction, _label
from ._features import (
    MODEL_PIXEL_SIZE,
    MODEL_WINDOW,
    cbed_center,
    cbed_features,
    fft_features,
    polar_features,
    real_features,
)
from ._lattice_prior import (
    _MISFIT,
    LATTICE_TOLERANCE,
    _apply_lattice_prior,
    _given_text,
    _lattice_prior,
    _prior_deviation,
    warn_prior,
)
from ._lattice_prior import _lattice_range as _lattice_range
from ._lookalike import lookalike_groups, mutual_information, split_lookalikes
from ._refine import power_spectra, refine_lattice, reflection_table

#: The HAADF networks' inputs, by the model JSON's "features".
_HAADF_FEATURES = {"polar": polar_features, "fft": fft_features, "real": real_features}

# The ``X as X`` imports above re-export private names that scripts and tests import
# from here (they moved to the modules beside this one).
__all__ = [
    "CBED_MAX_INTENSITY",
    "CBED_PIXEL_SIZE_LIMITS",
    "CBED_PIXEL_SIZE_WARN",
    "HAADF_SAFE_PEAK",
    "LATTICE_TOLERANCE",
    "PIXEL_SIZE_LIMITS",
    "PIXEL_SIZE_WARN",
    "CrystalClassifier",
    "CrystalMap",
    "CrystalPrediction",
    "classify_map",
]

_MODELS = Path(__file__).resolve().parent / "models"


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
        elif kind not in _HAADF_FEATURES:
            raise ValueError(f"unknown features {kind!r}")
        self._featurize = _HAADF_FEATURES.get(kind)
        #: Temperature of the class probabilities (softmax(logits / T) per Monte-Carlo
        #: sample), fitted on multislice images by
        #: ``scripts/evaluate_crystal_multislice.py --write-temperature``; 1 = as trained.
        self.temperature = float(metadata.get("temperature", 1.0))
        if not (math.isfinite(self.temperature) and 0.05 <= self.temperature <= 20.0):
            raise ValueError(f"'temperature' must be in [0.05, 20], got {self.temperature}")
        #: HAADF, image alone (no ``lattice_constant``): each look-alike group's mean
        #: probability split among its members by the training prior at the column
        #: spacing read (matchar.imaging._lookalike); False keeps the network's own split.
        #: The uncertainty is then the mutual information of the network's own samples
        #: with each group merged into one class: the heads' disagreement over a split
        #: the prior replaces is not reported as uncertainty.
        #: A given lattice constant reweights the network's split instead (it may lie
        #: outside the training range, e.g. Si at 5.43 Å). CBED keeps the network's
        #: split: the disk intensities tell look-alikes apart beyond the geometry.
        self.lookalike_prior: bool = False
        self._lookalike_groups: list = []
        if self.modality == "haadf" and "lattice_constant_range" in metadata:
            lo, hi = (float(v) for v in metadata["lattice_constant_range"])
            if not (0 < lo < hi):
                raise ValueError("'lattice_constant_range' must be (min, max) in Å, 0 < min < max")
            self._a_range = (lo, hi)
            self._lookalike_groups = lookalike_groups(self._protos, list(self._zones))
            self.lookalike_prior = bool(self._lookalike_groups)

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

    @renamed_parameters(pixel_size="reciprocal_pixel_size")
    def predict_patterns(
        self,
        patterns,
        reciprocal_pixel_size: float,
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
        reciprocal_pixel_size : float
            Calibration in 1/Å per pixel. Was ``pixel_size``, deprecated.
        batch_size : int
            Patterns per onnxruntime call, >= 1.
        lattice_constant, lattice_tolerance
            What you know of the lattice constant (Å) and its relative tolerance: see
            :meth:`predict`.

        Returns
        -------
        dict
            ``class`` (N,) int, ``probabilities`` (N, C), ``lattice_constant`` (N,) Å,
            ``rotation_deg`` (N,) degrees (also under ``rotation``, a deprecated key),
            ``uncertainty`` (N,) nats, ``center`` (N, 2)
            direct-beam (x, y) in pixels.

        Examples
        --------
        >>> import numpy as np, matchar as mc
        >>> p = mc.imaging.simulate_cbed("bcc", (1, 1, 0), 3.2, shape=(128, 128),
        ...                              reciprocal_pixel_size=0.035, dose=5000, seed=0)
        >>> clf = mc.imaging.CrystalClassifier.default("cbed")
        >>> clf.predict_patterns(p[None], 0.035)["probabilities"].shape
        (1, 12)
        """
        clf = self._for("cbed")
        batch_size = check_int(batch_size, "batch_size", low=1)
        x, ps = _check_pattern(patterns, reciprocal_pixel_size, ndim=3)
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
        if prior is not None:  # what the user knows decides between look-alikes
            pm, misfit = _apply_lattice_prior(pm, out["log_a"], prior, warn_misfit)
        mean = pm.mean(axis=1)
        split = prior is None and self.lookalike_prior and bool(self._lookalike_groups)
        # the network's own disagreement; where the training prior (not the network)
        # splits each look-alike group, only its disagreement over the groups counts
        mi = mutual_information(pm, self._lookalike_groups if split else ())
        if split:
            mean = split_lookalikes(
                mean, out["log_a"].mean(axis=1), self._lookalike_groups, self._a_range
            )
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
            "rotation_deg": rot,
            "rotation": rot,  # deprecated key, the same array: goes in the next release
            "uncertainty": mi,
        }
        if not warn_misfit:
            summary["misfit"] = misfit
        return summary

    # -- public API --------------------------------------------------------------
    def predict(
        self,
        image,
        pixel_size: float | None = None,
        *,
        modality: str = "haadf",
        reciprocal_pixel_size: float | None = None,
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
            Å per pixel of a HAADF ``image``.
        modality : {"haadf", "cbed"}
            Image or diffraction pattern; each is classified by the network trained on it
            (:meth:`default` of that modality).
        reciprocal_pixel_size : float
            For CBED (and only CBED), the calibration in 1/Å per pixel (g = 1/d; at
            300 keV, 1 mrad = 0.0508 1/Å). Passing it as ``pixel_size`` with
            ``modality="cbed"`` is deprecated.
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
        >>> img = mc.imaging.simulate_haadf("bcc", (1, 1, 1), 3.3, rotation_deg=20.0,
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
        calibration = _calibration(pixel_size, reciprocal_pixel_size, modality, "predict")
        img, ps = _check_image(image, calibration, modality)
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
                rotation_deg=float(s["rotation_deg"][0]),
                uncertainty=float(s["uncertainty"][0]),
            )
        if self.modality != "haadf":
            return self._for("haadf").predict(img, ps, **prior_kw)
        prior = self._prior(lattice_constant, lattice_tolerance)
        r = _resample(img, ps)
        windows = self._grid_windows(r, img.shape, MODEL_WINDOW, MODEL_WINDOW // 2, ps)[0]
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
        if shows_lattice(self, spec, img.shape, ps, "the image", s["probabilities"][0], image=img):
            g, sep = self._reflections()
            am, found, off = refine_lattice(
                spec, img.shape, ps, g[[k]], sep[[k]], s["lattice_constant"][:1],
                s["rotation_deg"][:1], return_misfit=True,
            )  # fmt: skip
            a, measured = float(am[0]), bool(found[0] >= 2)
            if prior is not None and (off[0] or not measured):
                # The class the prior favours does not fit the image's peaks (they sit off
                # its lattice, or too few of them are there) while the image shows a
                # lattice: the prior is wrong for this image (pixel size or material).
                # Report the class the image shows when it fits, with its measured lattice
                # constant, and warn.
                s0 = self._summarize(pooled, None)
                k0 = int(s0["class"][0])
                if k0 != k:
                    am0, found0, off0 = refine_lattice(
                        spec, img.shape, ps, g[[k0]], sep[[k0]], s0["lattice_constant"][:1],
                        s0["rotation_deg"][:1], return_misfit=True,
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
                warn_prior(
                    self._protos,
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
            rotation_deg=float(s["rotation_deg"][0]),
            uncertainty=float(s["uncertainty"][0]),
        )

    def _reflections(self) -> tuple[np.ndarray, np.ndarray]:
        """Reflections (C, M) and smallest separations (C,) of the classes, in 1/a."""
        return reflection_table(tuple(zip(self._protos, self._zones)))

    @staticmethod
    def _grid_windows(r: np.ndarray, shape, wm: int, sm: int, pixel_size: float | None = None):
        """Windows of side wm every sm pixels of the resampled image r."""
        return grid_windows(r, shape, wm, sm, pixel_size)

    def classify_map(
        self,
        image,
        pixel_size: float | None = None,
        window: int | None = None,
        stride: int | None = None,
        *,
        modality: str = "haadf",
        reciprocal_pixel_size: float | None = None,
        batch_size: int = 2048,
        lattice_constant: Any = None,
        lattice_tolerance: float = LATTICE_TOLERANCE,
    ) -> CrystalMap:
        """Classify every window of a sliding grid (see :func:`classify_map`)."""
        prior_kw = dict(lattice_constant=lattice_constant, lattice_tolerance=lattice_tolerance)
        calibration = _calibration(pixel_size, reciprocal_pixel_size, modality, "classify_map")
        batch_size = check_int(batch_size, "batch_size", low=1)
        if modality == "cbed":
            return cbed_map(self, image, calibration, window, stride, batch_size, **prior_kw)
        if self.modality != "haadf":
            return self._for("haadf").classify_map(
                image, calibration, window, stride, batch_size=batch_size, **prior_kw
            )
        img, ps = _check_image(image, calibration, modality)
        return haadf_map(
            self, img, ps, window, stride, batch_size, lattice_constant, lattice_tolerance
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
