"""Blink control: eyelid coefficients with a natural blink shape at a chosen rate (paper Sec. 4.1, Fig. 1).

A blink closes the eyelids quickly and reopens them more slowly (about 1/3 closing, 2/3
reopening), lasting ``duration_range`` seconds (default 150–300 ms, drawn per blink). The eyelids
reach 1.0 (closed) on one sampled frame of every blink, so a blink is never lost between frames.

Timing: the number of blinks over a clip of ``D`` seconds is ``rate · D / 60`` rounded up or down at
random (unbiased, so 12 per minute over 60 s gives exactly 12), and they are spread with random
jitter (seeded, reproducible) in equal slots, never closer than ``min_spacing`` seconds.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from flap.flame.coeffs import SLICES, HeadCoeffs

__all__ = ["apply_blinks", "blink_shape", "blink_track"]

CLOSE_FRACTION = 1.0 / 3.0  # fraction of the blink spent closing


def blink_shape(t: np.ndarray, duration: float) -> np.ndarray:
    """Eyelid closure of one blink at times ``t`` (seconds, 0 = fully closed) → values in [0, 1].

    Closing over ``duration / 3`` before ``t = 0`` and reopening over ``2 duration / 3`` after it,
    with smooth ``sin²`` ramps; 0 outside ``[-duration/3, 2 duration/3]``.
    """
    t = np.asarray(t, dtype=np.float64)
    close, reopen = CLOSE_FRACTION * duration, (1.0 - CLOSE_FRACTION) * duration
    u = np.where(t < 0, 1.0 + t / close, 1.0 - t / reopen)
    return np.sin(0.5 * np.pi * np.clip(u, 0.0, 1.0)) ** 2


def blink_track(
    num_frames: int,
    fps: float,
    blinks_per_minute: float,
    seed: int = 0,
    duration_range: tuple[float, float] = (0.15, 0.3),
    min_spacing: float = 0.6,
) -> np.ndarray:
    """Eyelid closure per frame ``(num_frames,)`` float64 in [0, 1] for ``blinks_per_minute`` blinks.

    Args:
        num_frames: number of frames ``T``.
        fps: frames per second (> 0).
        blinks_per_minute: mean blink rate (≥ 0; 0 gives all zeros = eyes open). Typical: 10–20.
        seed: random seed for the timing, durations and rounding of the count.
        duration_range: min and max blink duration in seconds (close + reopen).
        min_spacing: minimum time between two blinks (peak to peak) in seconds.

    Raises:
        ValueError: negative or non-finite rate, a rate needing blinks closer than ``min_spacing``,
            bad ``duration_range`` or fps.
    """
    if not (math.isfinite(blinks_per_minute) and blinks_per_minute >= 0):
        raise ValueError(f"blinks_per_minute must be a finite number >= 0, got {blinks_per_minute}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"blink_track: fps must be > 0, got {fps}")
    lo, hi = (float(x) for x in duration_range)
    if not 0 < lo <= hi:
        raise ValueError(f"blink_track: duration_range must be 0 < min <= max seconds, got {duration_range}")
    if blinks_per_minute > 60.0 / min_spacing:
        raise ValueError(
            f"blinks_per_minute = {blinks_per_minute:g} needs blinks closer than min_spacing = {min_spacing:g} s"
            f" (at most {60.0 / min_spacing:g} per minute)"
        )
    track = np.zeros(num_frames)
    duration_s = num_frames / fps
    if blinks_per_minute == 0 or num_frames == 0:
        return track
    rng = np.random.default_rng(seed)
    expected = blinks_per_minute * duration_s / 60.0
    count = int(math.floor(expected + rng.uniform()))
    if count == 0:
        return track
    slot = duration_s / count
    jitter = max(0.0, min(0.35, 0.5 * (1.0 - min_spacing / slot))) if slot > min_spacing else 0.0
    durations = rng.uniform(lo, hi, size=count)
    centres = (np.arange(count) + 0.5 + rng.uniform(-jitter, jitter, size=count)) * slot
    # Peak on a sampled frame, inside the clip when it fits; keep order and spacing.
    first, last = (
        math.ceil(CLOSE_FRACTION * hi * fps),
        num_frames - 1 - math.ceil((1 - CLOSE_FRACTION) * hi * fps),
    )
    peaks = np.rint(centres * fps)
    if first <= last:
        peaks = np.clip(peaks, first, last)
    peaks = np.clip(peaks, 0, num_frames - 1)
    times = np.arange(num_frames) / fps
    for peak, dur in zip(peaks, durations):
        track = np.maximum(track, blink_shape(times - peak / fps, dur))
    return track


def apply_blinks(coeffs: HeadCoeffs, blinks_per_minute: float, seed: int = 0, **kwargs) -> HeadCoeffs:
    """Return a copy of ``coeffs`` whose eyelids (both, ``(T, 2)``) follow :func:`blink_track`.

    ``blinks_per_minute=0`` opens the eyes on every frame. Other keyword arguments
    (``duration_range``, ``min_spacing``) go to :func:`blink_track`.
    """
    track = blink_track(coeffs.num_frames, coeffs.fps, blinks_per_minute, seed=seed, **kwargs)
    out = coeffs.clone()
    out.data[:, SLICES["eyelids"]] = torch.as_tensor(track, dtype=out.data.dtype, device=out.data.device)[
        :, None
    ]
    return out
