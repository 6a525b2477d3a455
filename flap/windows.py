"""Temporal windows of long videos (paper Sec. 4.2, long-video inference).

The DenoisingNet runs on windows of ``window`` frames that overlap by ``overlap`` frames; at every
DDIM step the ε predictions of all windows are blended with :func:`window_weights`, linear ramps
across each overlap (a cross-fade), so memory is that of one window whatever the length.
"""

from __future__ import annotations

import math

import torch

__all__ = ["temporal_windows", "window_weights"]


def temporal_windows(num_frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Half-open frame ranges ``[(start, end), ...]`` covering ``num_frames`` with overlapping windows.

    Windows have ``window`` frames (fewer only when the video is shorter), consecutive windows
    overlap by at least ``overlap`` frames, and the last one ends at ``num_frames``.

    Raises:
        ValueError: ``window < 1`` or ``overlap`` not in ``[0, window)``.
    """
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"temporal_windows: need window >= 1 and 0 <= overlap < window, got {window}, {overlap}")
    if num_frames <= window:
        return [(0, num_frames)]
    stride = window - overlap
    n = math.ceil((num_frames - window) / stride) + 1
    starts = [min(i * stride, num_frames - window) for i in range(n)]
    return [(s, s + window) for s in starts]


def window_weights(length: int, overlap: int, first: bool, last: bool) -> torch.Tensor:
    """``(length,)`` blending weights of one window: linear ramps over ``overlap`` frames at inner edges.

    Weights are in ``(0, 1]``; the ramp of a window and its neighbour's sum to a constant across
    an overlap, so the blend is a cross-fade.
    """
    w = torch.ones(length, dtype=torch.float64)
    if overlap > 0:
        ramp = (torch.arange(overlap, dtype=torch.float64) + 1) / (overlap + 1)
        n = min(overlap, length)
        if not first:
            w[:n] = torch.minimum(w[:n], ramp[:n])
        if not last:
            w[length - n:] = torch.minimum(w[length - n:], ramp[:n].flip(0))
    return w
