"""Faces in images: one :class:`NoFaceError`, quiet MediaPipe, face boxes and square face crops.

MediaPipe 0.10.14 writes C++ log lines (TFLite "XNNPACK delegate", absl "InitializeLog", "feedback
manager") straight to file descriptor 2 when a graph is built and first run, and protobuf emits a
deprecation warning on every call; ``TF_CPP_MIN_LOG_LEVEL`` / ``GLOG_minloglevel`` do not silence
them. :func:`quiet_native_stderr` redirects the descriptor around those two moments, so the
command-line tools print only their own lines.

Face boxes (:class:`MediaPipeFaceDetector`) become square head boxes (:func:`head_box`) that are cut
and resized (:func:`crop_frames`): the training crop of paper Sec. 5.1, also used for portraits.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator

import cv2
import numpy as np

from flap.errors import InputError

__all__ = [
    "NoFaceError",
    "MediaPipeFaceDetector",
    "crop_frames",
    "detect_face",
    "detect_faces",
    "head_box",
    "import_mediapipe",
    "quiet_mediapipe_call",
    "quiet_native_stderr",
]

#: protobuf deprecation notice raised inside mediapipe 0.10.14 on every call
PROTOBUF_NOTICE = r"SymbolDatabase\.GetPrototype\(\) is deprecated"


class NoFaceError(InputError):
    """No face was found in the input (an image, or any frame of a video); the message names the file."""


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Send file descriptor 2 (what C/C++ libraries write to) to ``/dev/null`` inside the block.

    Python's own ``sys.stderr`` is flushed first; an exception raised inside still propagates (it is
    printed, if at all, after the descriptor is restored).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_mediapipe():
    """``import mediapipe`` with its Python-side log levels lowered (native logs: see the module docstring)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import mediapipe

    return mediapipe


def quiet_mediapipe_call(fn, *args, native: bool = False, **kwargs):
    """``fn(*args, **kwargs)`` without protobuf's deprecation warning; ``native=True`` also silences
    descriptor 2 (for building a graph and its first call)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PROTOBUF_NOTICE)
        if not native:
            return fn(*args, **kwargs)
        with quiet_native_stderr():
            return fn(*args, **kwargs)


class MediaPipeFaceDetector:
    """Largest face box of a frame with MediaPipe Face Detection (model files ship in the wheel).

    Args:
        model_selection: 0 = short range (faces within ~2 m), 1 = full range.
        min_confidence: detection score threshold in [0, 1].

    Call with an RGB ``uint8 (H, W, 3)`` frame; returns ``(x0, y0, w, h)`` in pixels or ``None``.
    Building the graph and the calls up to the first detection are silenced (:func:`quiet_native_stderr`).
    """

    def __init__(self, model_selection: int = 1, min_confidence: float = 0.5):
        mp = import_mediapipe()
        self._det = quiet_mediapipe_call(
            mp.solutions.face_detection.FaceDetection, native=True,
            model_selection=model_selection, min_detection_confidence=min_confidence,
        )
        self._found = False

    def __call__(self, frame: np.ndarray):
        boxes = self.detect_all(frame)
        return boxes[0] if boxes else None

    def detect_all(self, frame: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Every face box ``(x0, y0, w, h)`` in pixels, largest first (empty list: no face)."""
        h, w = frame.shape[:2]
        result = quiet_mediapipe_call(self._det.process, np.ascontiguousarray(frame), native=not self._found)
        if not result.detections:
            return []
        self._found = True  # native logs come from lazy set-up, until the first detection
        boxes = [d.location_data.relative_bounding_box for d in result.detections]
        boxes = sorted(boxes, key=lambda r: r.width * r.height, reverse=True)
        return [(b.xmin * w, b.ymin * h, b.width * w, b.height * h) for b in boxes]

    def close(self) -> None:
        """Release the MediaPipe graph."""
        self._det.close()


def detect_faces(image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """MediaPipe face boxes ``(x0, y0, w, h)`` px of an RGB image, largest first: the full-range model,
    else the short-range one (close-ups); an empty list when neither finds a face."""
    for model_selection in (1, 0):
        detector = MediaPipeFaceDetector(model_selection=model_selection)
        try:
            faces = detector.detect_all(image)
        finally:
            detector.close()
        if faces:
            return faces
    return []


def detect_face(image: np.ndarray):
    """Largest face box ``(x0, y0, w, h)`` of :func:`detect_faces`, ``None`` when there is none."""
    faces = detect_faces(image)
    return faces[0] if faces else None


def head_box(face_box, scale: float = 1.8, shift_up: float = 0.1) -> tuple[float, float, float]:
    """Square head box from a face box.

    Args:
        face_box: ``(x0, y0, w, h)`` in pixels (a detector's face rectangle).
        scale: side of the square / ``max(w, h)`` (> 1 to include hair, chin and some background).
        shift_up: move the centre up by this fraction of the face height (foreheads are cut by
            face detectors).

    Returns:
        ``(cx, cy, side)`` in pixels.
    """
    x0, y0, w, h = (float(v) for v in face_box)
    return (x0 + w / 2, y0 + h / 2 - shift_up * h, scale * max(w, h))


def crop_frames(frames: np.ndarray, track: np.ndarray, size: int) -> np.ndarray:
    """Cut the square ``(cx, cy, side)`` of every frame and resize it to ``size × size``.

    Parts of the square outside the image are filled by replicating the border.

    Args:
        frames: ``uint8 (T, H, W, 3)``.
        track: ``(T, 3)`` boxes in pixels (no NaN).
        size: output side in pixels.

    Returns:
        ``uint8 (T, size, size, 3)``.

    Raises:
        ValueError: ``frames`` and ``track`` differ in length.
    """
    if len(frames) != len(track):
        raise ValueError(f"crop_frames: {len(frames)} frames but {len(track)} boxes")
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, (frame, (cx, cy, side)) in enumerate(zip(frames, track)):
        n = max(1, int(round(side)))  # cut at native resolution, then resize (area filter)
        m = np.array([[1.0, 0, n / 2 - cx], [0, 1.0, n / 2 - cy]], dtype=np.float64)
        square = cv2.warpAffine(frame, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        interp = cv2.INTER_AREA if n > size else cv2.INTER_CUBIC
        out[i] = cv2.resize(square, (size, size), interpolation=interp)
    return out
