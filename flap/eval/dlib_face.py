"""Identity that works offline: dlib's HOG face detector and 128-d face-recognition ResNet.

``identity_distance`` is the mean Euclidean distance between the 128-d descriptor of the largest
face in evenly sampled video frames and the descriptor of the reference portrait (dlib's
``dlib_face_recognition_resnet_model_v1``: distances below 0.6 mean "same person" on LFW, where it
reaches 99.38 % accuracy). ``face_detected_ratio_dlib`` is the fraction of those frames in which
dlib's HOG detector finds a face: an opinion independent of MediaPipe, which the tracker uses.

The model files come from the ``face-recognition-models`` package (CC0). That package imports
``pkg_resources`` when imported, so its ``models/`` folder is located with
:func:`importlib.util.find_spec` without importing it. Install both with ``pip install -e ".[eval]"``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DlibUnavailable",
    "SAME_PERSON_THRESHOLD",
    "models_dir",
    "DlibFace",
    "dlib_face",
    "sample_indices",
    "face_descriptor",
    "reference_descriptor",
    "identity_distance",
    "video_identity",
]

#: dlib's same-person threshold on the L2 distance of two descriptors
SAME_PERSON_THRESHOLD = 0.6
_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
_SHAPE_5 = "shape_predictor_5_face_landmarks.dat"


class DlibUnavailable(ImportError):
    """dlib or the face-recognition model files are not installed (message says how to install them)."""


def models_dir() -> Path:
    """The ``models/`` folder of the ``face_recognition_models`` package, found without importing it.

    Raises:
        DlibUnavailable: the package is not installed or lacks the model files.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DlibUnavailable(
            "identity: the package face-recognition-models is not installed; pip install -e '.[eval]'"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    for name in (_RECOGNITION, _SHAPE_5):
        if not (folder / name).is_file():
            raise DlibUnavailable(f"identity: {folder / name} is missing; reinstall face-recognition-models")
    return folder


@dataclass
class DlibFace:
    """dlib's HOG face detector, 5-point shape predictor and face-recognition ResNet, loaded once."""

    detector: object
    shape_predictor: object
    recognizer: object

    def detect(self, image: np.ndarray, upsample: int | None = None) -> list:
        """Face rectangles in a ``uint8 (H, W, 3)`` RGB image, largest first.

        Args:
            upsample: times the image is doubled before detection (the HOG detector misses faces
                under ~80 px); ``None`` = once when the shorter side is under 400 px, else not.
        """
        img = _rgb(image)
        if upsample is None:
            upsample = 1 if min(img.shape[:2]) < 400 else 0
        rects = list(self.detector(img, int(upsample)))
        return sorted(rects, key=lambda r: -r.width() * r.height())

    def descriptor(self, image: np.ndarray, rect) -> np.ndarray:
        """128-d descriptor ``(128,)`` float64 of the face in ``rect`` (5-point alignment, 150 px chip)."""
        img = _rgb(image)
        shape = self.shape_predictor(img, rect)
        return np.asarray(self.recognizer.compute_face_descriptor(img, shape), np.float64)


def _rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"dlib face: expected a uint8 (H, W, 3) RGB image, got {img.dtype} {img.shape}")
    return np.ascontiguousarray(img)


@functools.lru_cache(maxsize=1)
def dlib_face() -> DlibFace:
    """The shared :class:`DlibFace` (models loaded on first use, ~0.5 s).

    Raises:
        DlibUnavailable: dlib or the model files are missing.
    """
    try:
        import dlib
    except ImportError as exc:
        raise DlibUnavailable(f"identity: dlib is not installed ({exc}); pip install -e '.[eval]'") from exc
    folder = models_dir()
    return DlibFace(
        detector=dlib.get_frontal_face_detector(),
        shape_predictor=dlib.shape_predictor(str(folder / _SHAPE_5)),
        recognizer=dlib.face_recognition_model_v1(str(folder / _RECOGNITION)),
    )


def sample_indices(num_frames: int, max_frames: int) -> np.ndarray:
    """``min(num_frames, max_frames)`` evenly spaced frame indices over ``[0, num_frames)`` (first and last included)."""
    if num_frames <= 0:
        return np.zeros(0, np.int64)
    n = num_frames if max_frames <= 0 else min(num_frames, max_frames)
    return np.unique(np.linspace(0, num_frames - 1, n).round().astype(np.int64))


def face_descriptor(image: np.ndarray, face: DlibFace | None = None) -> np.ndarray | None:
    """Descriptor ``(128,)`` of the largest face in a ``uint8 (H, W, 3)`` RGB image, or ``None`` without a face."""
    face = face or dlib_face()
    rects = face.detect(image)
    return face.descriptor(image, rects[0]) if rects else None


def reference_descriptor(reference: str | os.PathLike | np.ndarray, face: DlibFace | None = None) -> np.ndarray:
    """Descriptor ``(128,)`` of the largest face of the reference portrait (path or RGB array).

    When dlib's HOG detector finds no face (it misses some expressive or tilted faces), it tries
    once more on the image doubled in size, then takes MediaPipe's face box: the descriptor only
    needs a rectangle to align the face in.

    Raises:
        FileNotFoundError / ValueError: unreadable image (names the file).
        ValueError: neither detector finds a face in it (names the file).
    """
    from flap.portrait import load_portrait
    from flap.tracking.faces import detect_face

    face = face or dlib_face()
    name = str(reference) if isinstance(reference, str | os.PathLike) else "reference image"
    image = load_portrait(reference)
    desc = face_descriptor(image, face)
    if desc is None:
        rects = face.detect(image, upsample=(1 if min(image.shape[:2]) < 400 else 0) + 1)
        desc = face.descriptor(image, rects[0]) if rects else None
    if desc is None:
        box = detect_face(image)
        if box is None:
            raise ValueError(f"identity: neither dlib nor MediaPipe finds a face in the reference {name}")
        import dlib

        x0, y0, w, h = (int(round(v)) for v in box)
        desc = face.descriptor(image, dlib.rectangle(x0, y0, x0 + w, y0 + h))
    return desc


def identity_distance(frames, reference, max_frames: int = 16, face: DlibFace | None = None) -> dict:
    """Identity distance of a video to a reference portrait, and dlib's face-detection rate.

    Args:
        frames: ``uint8 (T, H, W, 3)`` RGB frames (or a sequence of such frames).
        reference: the reference portrait (path or RGB array) or its ``(128,)`` descriptor.
        max_frames: at most this many evenly spaced frames are used (``<= 0``: all).

    Returns:
        ``{"identity_distance"`` (mean L2 distance over the sampled frames with a face, ``nan``
        when none; below 0.6 = same person for dlib), ``"identity_distance_max"``,
        ``"identity_same_person_ratio"`` (frames under 0.6 among those with a face),
        ``"face_detected_ratio_dlib"`` (sampled frames with a face), ``"frames_sampled"}``.

    Raises:
        DlibUnavailable: dlib or its models are not installed. ValueError: no face in the reference.
    """
    face = face or dlib_face()
    ref = np.asarray(reference, np.float64) if _is_descriptor(reference) else reference_descriptor(reference, face)
    idx = sample_indices(len(frames), max_frames)
    dists = []
    for i in idx:
        desc = face_descriptor(frames[int(i)], face)
        if desc is not None:
            dists.append(float(np.linalg.norm(desc - ref)))
    d = np.asarray(dists)
    return {
        "identity_distance": float(d.mean()) if len(d) else float("nan"),
        "identity_distance_max": float(d.max()) if len(d) else float("nan"),
        "identity_same_person_ratio": float((d < SAME_PERSON_THRESHOLD).mean()) if len(d) else float("nan"),
        "face_detected_ratio_dlib": float(len(d) / len(idx)) if len(idx) else float("nan"),
        "frames_sampled": len(idx),
    }


def _is_descriptor(x) -> bool:
    return isinstance(x, np.ndarray) and x.shape == (128,) and x.dtype != np.uint8


def video_identity(frames, reference=None, cfg=None) -> dict:
    """The dlib entries of ``flap.evaluate``'s per-video results (config ``metrics.identity_dlib``).

    Args:
        frames: ``uint8 (T, H, W, 3)`` RGB frames of the video.
        reference: the reference portrait, or ``None`` (then only the face rate is measured).
        cfg: ``{"enabled": bool, "max_frames": int}``.

    Returns:
        ``{"identity_distance", "face_detected_ratio_dlib", "identity_dlib": {...}}``; without a
        reference or without dlib installed, what could not be measured is listed under
        ``"skipped"`` with the reason (``{}`` when disabled).

    Raises:
        ValueError: no face in the reference image (names it).
    """
    cfg = dict(cfg or {})
    if not cfg.get("enabled", True):
        return {}
    n = int(cfg.get("max_frames", 16))
    try:
        face = dlib_face()
        if reference is None:
            idx = sample_indices(len(frames), n)
            ratio = float(np.mean([bool(face.detect(frames[int(i)])) for i in idx])) if len(idx) else float("nan")
            skipped = {"identity_distance": {"key": "reference", "reason": "no reference image given"}}
            return {"face_detected_ratio_dlib": ratio, "skipped": skipped}
        out = identity_distance(frames, reference, max_frames=n, face=face)
    except DlibUnavailable as exc:
        return {"skipped": {"identity_distance": {"key": "pip install -e '.[eval]'", "reason": str(exc)}}}
    return {
        "identity_distance": out["identity_distance"],
        "face_detected_ratio_dlib": out["face_detected_ratio_dlib"],
        "identity_dlib": out,
    }
