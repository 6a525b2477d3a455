"""Per-clip head-motion statistics (paper Sec. 4.3: stage 1 uses the clips with the most head motion)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flap.flame.coeffs import HeadCoeffs

__all__ = ["head_motion_variance", "box_motion_variance", "top_fraction"]


def head_motion_variance(coeffs: HeadCoeffs, frames: Sequence[int] | None = None) -> float:
    """Head-motion variance of a clip: sum over pitch, yaw, roll of the temporal variance, in degrees².

    Args:
        coeffs: tracked FLAME coefficients ``(T, 120)``; the pose is ``global_rot`` (axis-angle rad),
            converted with the project's rotation helpers.
        frames: frame indices to use (default: all).

    Returns:
        ``sum_k var_t(angle_k)`` in degrees² (0 for fewer than 2 frames).
    """
    pyr = np.asarray(coeffs.pose_degrees(), dtype=np.float64)
    if frames is not None:
        pyr = pyr[np.asarray(frames, dtype=np.int64)]
    return float(pyr.var(axis=0).sum()) if len(pyr) > 1 else 0.0


def box_motion_variance(track: np.ndarray) -> float:
    """Fallback motion statistic when no FLAME track exists: variance of the crop box.

    Args:
        track: ``(T, 3)`` ``(cx, cy, side)`` in pixels (the raw, unsmoothed detections; NaN allowed).

    Returns:
        ``var(cx) + var(cy)`` divided by the mean side squared (unitless, crop sides²).
    """
    track = np.asarray(track, dtype=np.float64)
    track = track[~np.isnan(track).any(axis=1)]
    if len(track) < 2:
        return 0.0
    return float((track[:, 0].var() + track[:, 1].var()) / track[:, 2].mean() ** 2)


def top_fraction(values: dict[str, float], fraction: float) -> list[str]:
    """Keys of the ``ceil(fraction · n)`` largest values (at least one when ``values`` is not empty).

    Raises:
        ValueError: ``fraction`` not in (0, 1].
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"top_fraction: fraction must be in (0, 1], got {fraction}")
    if not values:
        return []
    n = max(1, int(np.ceil(fraction * len(values) - 1e-9)))
    return [k for k, _ in sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]
