"""Per-frame head-pose overrides on :class:`~flap.flame.HeadCoeffs` (paper Sec. 4.1, Fig. 1, Sec. 5.6.1).

Three modes decide how the user's pitch / yaw / roll (degrees, about x / y / z, see
:mod:`flap.flame.rotations`) meet the pose already in the coefficients (audio-generated or tracked):

* ``"replace"``: the chosen frames get the user's angles. Angles left as ``None`` keep the
  frame's current value of that angle (so ``yaw=30`` alone turns the head and keeps its pitch and
  roll).
* ``"overlay"``: the user's rotation is composed with the existing one on SO(3),
  ``R = R_user @ R_source`` (never by adding Euler angles), so the subtle speech nods stay. ``None``
  angles are 0; a zero overlay is the identity.
* ``"fixed"``: one constant pose (three scalars) on the chosen frames (default: all). ``None``
  angles are 0.

All conversions go through :mod:`flap.flame.rotations`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from flap.flame.coeffs import SLICES, HeadCoeffs
from flap.flame.rotations import (
    axis_angle_to_degrees,
    axis_angle_to_matrix,
    degrees_to_axis_angle,
    degrees_to_matrix,
    matrix_to_axis_angle,
)

__all__ = ["POSE_MODES", "apply_pose", "apply_pose_track", "scale_rotation"]

#: Valid pose modes.
POSE_MODES = ("replace", "overlay", "fixed")

AngleArg = float | Sequence[float] | np.ndarray | torch.Tensor | None


def _frame_index(frames, num_frames: int) -> np.ndarray:
    """Chosen frames as an int array: ``None`` = all, a ``slice``, an int, a bool mask or indices."""
    if frames is None:
        return np.arange(num_frames)
    if isinstance(frames, slice):
        return np.arange(num_frames)[frames]
    idx = np.asarray(frames.cpu() if isinstance(frames, torch.Tensor) else frames)
    if idx.dtype == bool:
        if idx.shape != (num_frames,):
            raise ValueError(f"frames: boolean mask must have shape ({num_frames},), got {idx.shape}")
        return np.flatnonzero(idx)
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"frames: expected None, a slice, ints or a boolean mask, got dtype {idx.dtype}")
    idx = idx.reshape(-1)
    if idx.size and (idx.min() < -num_frames or idx.max() >= num_frames):
        raise ValueError(
            f"frames: indices must be in [-{num_frames}, {num_frames}), got {idx.min()}..{idx.max()}"
        )
    return idx % num_frames


def _angle_column(value: AngleArg, n: int, name: str) -> np.ndarray | None:
    """One angle as ``(n,)`` float64 degrees: a scalar is broadcast, an array must have ``n`` values."""
    if value is None:
        return None
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    arr = arr.reshape(-1)
    if arr.shape != (n,):
        raise ValueError(
            f"{name}: expected a scalar or {n} per-frame values (one per chosen frame), got {arr.size}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return arr


def apply_pose(
    coeffs: HeadCoeffs,
    pitch: AngleArg = None,
    yaw: AngleArg = None,
    roll: AngleArg = None,
    frames=None,
    mode: str = "replace",
) -> HeadCoeffs:
    """Return a copy of ``coeffs`` with the head pose of ``frames`` set or overlaid (see module docs).

    Args:
        coeffs: source coefficients ``(T, 120)``; not modified.
        pitch, yaw, roll: degrees (x nod, y turn, z tilt), each a scalar (broadcast) or an array
            with one value per chosen frame, or ``None`` (see the modes for its meaning).
        frames: which frames to edit: ``None`` (all), a ``slice``, an int, int indices or a
            ``(T,)`` boolean mask.
        mode: ``"replace"``, ``"overlay"`` (``R = R_user @ R_source`` on SO(3)) or ``"fixed"``
            (scalars only: one constant pose).

    Returns:
        A new :class:`HeadCoeffs` (same fps, dtype); only ``global_rot`` differs.

    Raises:
        ValueError: unknown mode, an array angle in ``fixed`` mode, per-frame arrays whose length
            does not match the chosen frames, non-finite angles or bad frame indices.
    """
    if mode not in POSE_MODES:
        raise ValueError(f"apply_pose: mode must be one of {POSE_MODES}, got {mode!r}")
    out = coeffs.clone()
    idx = _frame_index(frames, coeffs.num_frames)
    n = len(idx)
    if mode == "fixed":
        for name, value in (("pitch", pitch), ("yaw", yaw), ("roll", roll)):
            if value is not None and np.asarray(value).size != 1:
                raise ValueError(
                    f"apply_pose: mode 'fixed' takes one constant {name}, got {np.asarray(value).size} values"
                )
    cols = [
        _angle_column(v, n, f"apply_pose: {k}") for k, v in (("pitch", pitch), ("yaw", yaw), ("roll", roll))
    ]
    if n == 0:
        return out
    if mode == "replace" and any(c is None for c in cols):
        rows = torch.as_tensor(idx, dtype=torch.long, device=coeffs.data.device)
        current = axis_angle_to_degrees(coeffs.global_rot[rows].double()).cpu().numpy()
        cols = [current[:, i] if c is None else c for i, c in enumerate(cols)]
    pyr = np.stack([np.zeros(n) if c is None else c for c in cols], axis=1)
    return _write_pose(out, idx, pyr, overlay=mode == "overlay")


def _write_pose(out: HeadCoeffs, idx: np.ndarray, pyr_deg: np.ndarray, overlay: bool) -> HeadCoeffs:
    """Write ``(n, 3)`` degrees into ``out.global_rot[idx]`` (composed with the current pose if ``overlay``)."""
    device = out.data.device
    rows = torch.as_tensor(idx, dtype=torch.long, device=device)
    user = torch.as_tensor(pyr_deg, dtype=torch.float64, device=device)
    if overlay:
        source = axis_angle_to_matrix(out.global_rot[rows].double())
        rot = matrix_to_axis_angle(degrees_to_matrix(user) @ source)
    else:
        rot = degrees_to_axis_angle(user)
    out.data[rows, SLICES["global_rot"]] = rot.to(out.data)
    return out


def apply_pose_track(coeffs: HeadCoeffs, pyr_deg, mode: str = "replace", start_frame: int = 0) -> HeadCoeffs:
    """Apply a per-frame pose track ``(N, 3)`` pitch/yaw/roll degrees from ``start_frame`` on.

    Frames past the end of ``coeffs`` are cut; frames not covered keep their pose. ``mode`` is as
    in :func:`apply_pose` (for ``"fixed"`` pass the constant pose as ``(3,)`` or a track whose rows
    are all equal). Returns a new :class:`HeadCoeffs`.

    Raises:
        ValueError: track not ``(N, 3)``/``(3,)``, unknown mode, non-finite values.
    """
    track = np.asarray(
        pyr_deg.detach().cpu() if isinstance(pyr_deg, torch.Tensor) else pyr_deg, dtype=np.float64
    )
    if track.ndim == 1 and track.shape == (3,):
        track = track[None].repeat(coeffs.num_frames - start_frame, axis=0)
    if track.ndim != 2 or track.shape[1] != 3:
        raise ValueError(f"apply_pose_track: expected (N, 3) pitch/yaw/roll degrees, got shape {track.shape}")
    if mode not in POSE_MODES:
        raise ValueError(f"apply_pose_track: mode must be one of {POSE_MODES}, got {mode!r}")
    if not np.isfinite(track).all():
        raise ValueError("apply_pose_track: track contains NaN or inf")
    if mode == "fixed" and len(track) and not np.allclose(track, track[:1]):
        raise ValueError("apply_pose_track: mode 'fixed' needs one constant pose, got a varying track")
    out = coeffs.clone()
    idx = np.arange(start_frame, min(coeffs.num_frames, start_frame + len(track)))
    if not len(idx):
        return out
    return _write_pose(out, idx, track[: len(idx)], overlay=mode == "overlay")


def scale_rotation(rotvec: torch.Tensor, scale: float) -> torch.Tensor:
    """Scale axis-angle rotations ``(..., 3)`` (radians) by ``scale``: same axis, angle × ``scale``.

    This is the geodesic from the identity on SO(3) (``scale=0`` gives the identity, ``1`` the
    input), used to damp or exaggerate head or jaw motion. Valid for angles below π.
    """
    return rotvec * scale
