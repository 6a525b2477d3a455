"""Tracking a generated video for evaluation: FLAME coefficients + landmarks, cached per file.

The evaluation re-uses the project's FLAME tracker (:mod:`flap.tracking`); this module only adapts
its result to what the metrics need (:class:`TrackedVideo`) and caches it by file path, size and
modification time, so that evaluating several requests against the same video tracks it once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flap.flame.coeffs import HeadCoeffs

__all__ = ["TrackedVideo", "as_tracked_video", "track_for_eval", "landmark_boxes", "clear_tracking_cache"]


@dataclass
class TrackedVideo:
    """What the metrics need from the tracker.

    Attributes:
        coeffs: tracked :class:`HeadCoeffs` ``(T, 120)`` at the video's fps.
        lmk68: ``(T, 68, 2)`` iBUG-68 landmarks in pixels (x right, y down; NaN where missing).
        valid: ``(T,)`` bool, frames where a face was found.
        size: ``(H, W)`` frame size in pixels.
    """

    coeffs: HeadCoeffs
    lmk68: np.ndarray
    valid: np.ndarray
    size: tuple[int, int]

    def __post_init__(self):
        t = len(self.coeffs)
        self.lmk68 = np.asarray(self.lmk68, np.float64)
        self.valid = np.asarray(self.valid, bool).ravel()
        if self.lmk68.shape != (t, 68, 2) or self.valid.shape != (t,):
            raise ValueError(
                f"TrackedVideo: expected lmk68 ({t}, 68, 2) and valid ({t},) for {t} frames of coefficients, "
                f"got {self.lmk68.shape} and {self.valid.shape}"
            )


def _first_attr(obj, names):
    for n in names:
        if isinstance(obj, dict) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    return None


def as_tracked_video(result, fps: float | None = None) -> TrackedVideo:
    """Adapt a tracker result to :class:`TrackedVideo`.

    Accepts a :class:`TrackedVideo`, or any object/dict with ``coeffs`` (a :class:`HeadCoeffs` or a
    ``(T, 120)`` array) and landmarks as ``lmk68`` / ``landmarks`` (``(T, 68, 2)``) or a nested
    ``landmarks.lmk68`` (:class:`flap.tracking.landmarks.LandmarkTrack`), with ``valid`` and ``size``
    taken from the result or its landmark track.

    Raises:
        ValueError: a required field is missing (the message lists what was found).
    """
    if isinstance(result, TrackedVideo):
        return result
    coeffs = _first_attr(result, ("coeffs", "head_coeffs"))
    lm = _first_attr(result, ("lmk68", "landmarks", "track", "landmark_track"))
    lm_track = lm if lm is not None and not isinstance(lm, np.ndarray) and hasattr(lm, "lmk68") else None
    lmk68 = lm_track.lmk68 if lm_track is not None else lm
    valid = _first_attr(result, ("valid",))
    size = _first_attr(result, ("size", "frame_size"))
    if lm_track is not None:
        valid = lm_track.valid if valid is None else valid
        size = lm_track.size if size is None else size
        fps = fps or getattr(lm_track, "fps", None)
    if coeffs is None or lmk68 is None:
        found = (
            sorted(result)
            if isinstance(result, dict)
            else sorted(k for k in dir(result) if not k.startswith("_"))
        )
        raise ValueError(f"as_tracked_video: tracker result needs `coeffs` and landmarks; found {found}")
    if not isinstance(coeffs, HeadCoeffs):
        coeffs = HeadCoeffs(np.asarray(coeffs), fps or 25.0)
    lmk68 = np.asarray(lmk68, np.float64)
    if valid is None:
        valid = np.isfinite(lmk68).all(axis=(1, 2))
    if size is None:
        finite = lmk68[np.isfinite(lmk68).all(-1)]
        size = (
            (int(np.ceil(finite[:, 1].max())) + 1, int(np.ceil(finite[:, 0].max())) + 1)
            if len(finite)
            else (0, 0)
        )
    return TrackedVideo(coeffs, lmk68, np.asarray(valid, bool), (int(size[0]), int(size[1])))


_CACHE: dict[tuple, TrackedVideo] = {}


def clear_tracking_cache() -> None:
    """Forget every cached tracking result."""
    _CACHE.clear()


def track_for_eval(path: str | os.PathLike, tracker: Callable, **kwargs) -> TrackedVideo:
    """Track ``path`` with ``tracker(path, **kwargs)`` and adapt the result, cached in this process.

    The cache key is (resolved path, size, mtime, kwargs), so a rewritten file is tracked again.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"track_for_eval: no such video: {p}")
    st = p.stat()
    key = (
        str(p.resolve()),
        st.st_size,
        st.st_mtime_ns,
        getattr(tracker, "__qualname__", repr(tracker)),
        repr(sorted(kwargs.items())),
    )
    if key not in _CACHE:
        _CACHE[key] = as_tracked_video(tracker(p, **kwargs))
    return _CACHE[key]


def landmark_boxes(lmk68: np.ndarray, valid: np.ndarray | None = None, forehead: float = 0.25) -> np.ndarray:
    """Per-frame face boxes ``(T, 4)`` ``(x0, y0, x1, y1)`` pixels from iBUG-68 landmarks.

    The landmark box is raised by ``forehead`` × its height at the top (the 68 points stop at the
    brows, face detectors include the forehead). Missing frames take the nearest valid box.

    Raises:
        ValueError: no valid frame.
    """
    lm = np.asarray(lmk68, np.float64)
    ok = (
        np.isfinite(lm).all(axis=(1, 2))
        if valid is None
        else (np.asarray(valid, bool) & np.isfinite(lm).all(axis=(1, 2)))
    )
    if not ok.any():
        raise ValueError("landmark_boxes: no frame with landmarks")
    boxes = np.full((len(lm), 4), np.nan)
    x0, y0 = lm[ok, :, 0].min(1), lm[ok, :, 1].min(1)
    x1, y1 = lm[ok, :, 0].max(1), lm[ok, :, 1].max(1)
    boxes[ok] = np.stack([x0, y0 - forehead * (y1 - y0), x1, y1], axis=1)
    idx = np.flatnonzero(ok)
    nearest = idx[np.abs(np.arange(len(lm))[:, None] - idx[None, :]).argmin(1)]
    return boxes[nearest]
