"""Stable square face crop for dataset preparation (paper Sec. 5.1, "face-centred crops").

A MediaPipe face box is found in every frame, turned into a square head box (centre ``(cx, cy)``
and side ``s`` in pixels), smoothed over time so the crop does not jitter, and used to cut and
resize every frame. Pure functions on numpy arrays; the detector is injected so tests can stub it.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

__all__ = ["MediaPipeFaceDetector", "detect_face_boxes", "head_box", "smooth_track", "crop_frames"]

#: ``detector(frame uint8 (H, W, 3) RGB) -> (x0, y0, w, h)`` in pixels, or ``None`` when no face.
FaceDetector = Callable[[np.ndarray], "tuple[float, float, float, float] | None"]


class MediaPipeFaceDetector:
    """Largest face box of a frame with MediaPipe Face Detection (model files ship in the wheel).

    Args:
        model_selection: 0 = short range (faces within ~2 m), 1 = full range.
        min_confidence: detection score threshold in [0, 1].

    Call with an RGB ``uint8 (H, W, 3)`` frame; returns ``(x0, y0, w, h)`` in pixels or ``None``.
    """

    def __init__(self, model_selection: int = 1, min_confidence: float = 0.5):
        import mediapipe as mp

        self._det = mp.solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=min_confidence
        )

    def __call__(self, frame: np.ndarray):
        boxes = self.detect_all(frame)
        return boxes[0] if boxes else None

    def detect_all(self, frame: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Every face box ``(x0, y0, w, h)`` in pixels, largest first (empty list: no face)."""
        h, w = frame.shape[:2]
        result = self._det.process(np.ascontiguousarray(frame))
        boxes = [d.location_data.relative_bounding_box for d in result.detections or ()]
        boxes = sorted(boxes, key=lambda r: r.width * r.height, reverse=True)
        return [(b.xmin * w, b.ymin * h, b.width * w, b.height * h) for b in boxes]

    def close(self) -> None:
        """Release the MediaPipe graph."""
        self._det.close()


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


def detect_face_boxes(frames: np.ndarray, detector: FaceDetector, scale: float = 1.8) -> np.ndarray:
    """Square head box per frame.

    Args:
        frames: ``uint8 (T, H, W, 3)`` RGB.
        detector: see :data:`FaceDetector`.
        scale: see :func:`head_box`.

    Returns:
        ``float64 (T, 3)`` rows ``(cx, cy, side)`` in pixels; ``NaN`` rows where no face was found.
    """
    track = np.full((len(frames), 3), np.nan)
    for i, frame in enumerate(frames):
        box = detector(frame)
        if box is not None:
            track[i] = head_box(box, scale=scale)
    return track


def smooth_track(track: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Fill missing rows by linear interpolation and smooth a ``(T, 3)`` box track over time.

    Args:
        track: ``(T, 3)`` ``(cx, cy, side)`` pixels, ``NaN`` rows = no detection.
        sigma: Gaussian standard deviation in frames (0 = no smoothing).

    Returns:
        ``(T, 3)`` float64 without NaN.

    Raises:
        ValueError: no frame has a detection.
    """
    track = np.asarray(track, dtype=np.float64)
    ok = ~np.isnan(track).any(axis=1)
    if not ok.any():
        raise ValueError("smooth_track: no face detected in any frame")
    t = np.arange(len(track))
    filled = np.stack([np.interp(t, t[ok], track[ok, k]) for k in range(track.shape[1])], axis=1)
    if sigma > 0 and len(track) > 1:
        filled = gaussian_filter1d(filled, sigma=sigma, axis=0, mode="nearest")
    return filled


def crop_frames(frames: np.ndarray, track: np.ndarray, size: int) -> np.ndarray:
    """Cut the square ``(cx, cy, side)`` of every frame and resize it to ``size × size``.

    Parts of the square outside the image are filled by replicating the border.

    Args:
        frames: ``uint8 (T, H, W, 3)``.
        track: ``(T, 3)`` boxes in pixels (no NaN).
        size: output side in pixels.

    Returns:
        ``uint8 (T, size, size, 3)``.
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
