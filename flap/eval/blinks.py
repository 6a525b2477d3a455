"""Blink counting from an eyelid-closure track (tracked FLAME eyelids, or the requested ones).

A blink is an excursion of the eyelid closure (0 = open, 1 = closed; mean of both eyes) above
``high``; it ends when the closure falls back below ``low`` (hysteresis, so landmark noise around
one threshold is not counted twice). The tracker's eyelids come from the eye aspect ratio divided
by the clip's open-eye value (:func:`flap.tracking.eyes.eyelids_from_landmarks`): a full blink
reaches ~0.8-1, a half-closed eye ~0.5. The same counter runs on the requested track
(:func:`flap.control.blinks.blink_track` reaches 1.0 on one frame of every blink), so requested and
detected counts are measured alike.
"""

from __future__ import annotations

import numpy as np

__all__ = ["blink_events", "count_blinks", "blink_count_error"]


def _closure(eyelids) -> np.ndarray:
    x = np.asarray(eyelids, np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise ValueError(f"blinks: expected eyelids (T,) or (T, 2), got shape {np.shape(eyelids)}")
    return x


def blink_events(eyelids, high: float = 0.5, low: float = 0.25, valid=None) -> list[tuple[int, int]]:
    """Blinks as ``[(first_frame, last_frame), ...]`` (inclusive) of an eyelid track.

    Args:
        eyelids: ``(T,)`` closure or ``(T, 2)`` per-eye closure in [0, 1] (averaged over the eyes).
        high: closure a blink must reach (it starts at the first frame ``>= high``).
        low: the blink ends at the first later frame ``< low``.
        valid: ``(T,)`` bool; invalid frames (no face) never start a blink and end an open one.

    Raises:
        ValueError: bad shape, or ``low > high``.
    """
    if low > high:
        raise ValueError(f"blink_events: low ({low}) must not exceed high ({high})")
    x = _closure(eyelids)
    ok = np.isfinite(x) if valid is None else (np.asarray(valid, bool) & np.isfinite(x))
    events, start = [], None
    for t, (v, good) in enumerate(zip(x, ok)):
        if start is None:
            if good and v >= high:
                start = t
        elif not good or v < low:
            events.append((start, t - 1))
            start = None
    if start is not None:
        events.append((start, len(x) - 1))
    return events


def count_blinks(eyelids, high: float = 0.5, low: float = 0.25, valid=None) -> int:
    """Number of blinks in an eyelid track (see :func:`blink_events`)."""
    return len(blink_events(eyelids, high, low, valid))


def blink_count_error(requested, tracked, valid=None, high: float = 0.5, low: float = 0.25) -> dict:
    """Blinks requested vs blinks found in the tracked eyelids.

    Args:
        requested: requested eyelids ``(T,)`` / ``(T, 2)``.
        tracked: tracked eyelids of the generated video ``(T',)`` / ``(T', 2)``.
        valid: ``(T',)`` bool, tracked frames with a face.

    Returns:
        ``{"blinks_requested", "blinks_detected", "blink_count_error"`` (detected − requested),
        ``"blink_count_abs_error"}``.
    """
    n_req = count_blinks(requested, high, low)
    n_det = count_blinks(tracked, high, low, valid)
    return {
        "blinks_requested": n_req,
        "blinks_detected": n_det,
        "blink_count_error": n_det - n_req,
        "blink_count_abs_error": abs(n_det - n_req),
    }
