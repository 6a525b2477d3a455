"""Stable square face crop for dataset preparation (paper Sec. 5.1, "face-centred crops").

A MediaPipe face box is found in every frame, turned into a square head box (centre ``(cx, cy)``
and side ``s`` in pixels), smoothed over time so the crop does not jitter, and used to cut and
resize every frame. Pure functions on numpy arrays; the detector is injected so tests can stub it.
The detector, :func:`head_box` and :func:`crop_frames` live in :mod:`flap.tracking.faces`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter1d

from flap.tracking.faces import MediaPipeFaceDetector, crop_frames, head_box

__all__ = ["MediaPipeFaceDetector", "detect_face_boxes", "head_box", "smooth_track", "crop_frames"]

#: ``detector(frame uint8 (H, W, 3) RGB) -> (x0, y0, w, h)`` in pixels, or ``None`` when no face.
FaceDetector = Callable[[np.ndarray], "tuple[float, float, float, float] | None"]


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
