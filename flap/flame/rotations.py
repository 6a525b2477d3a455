"""Rotation conversions used everywhere in FLAP, each written exactly once.

Conventions
-----------
* **Axis-angle** (FLAME's convention): a 3-vector whose direction is the rotation axis and whose
  norm is the angle in radians.
* **Pitch / yaw / roll** in **degrees**, about the FLAME x (right), y (up) and z (towards the
  viewer) axes. The matrix is ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (extrinsic x, then y, then z).
  Positive pitch tilts the chin down (a nod), positive yaw turns the face to the subject's own left
  (the viewer's right), positive roll tilts the head towards the subject's right shoulder (the
  right-hand rule about each axis). Yaw is the middle angle, so conversions back to
  degrees return pitch, roll in (-180, 180] and yaw in [-90, 90].
* **6D rotation** (Zhou et al., "On the Continuity of Rotation Representations", CVPR 2019): the
  first two **columns** of the rotation matrix, concatenated ``[R[:, 0], R[:, 1]]``; the inverse
  is Gram-Schmidt orthonormalisation. The identity is ``[1, 0, 0, 0, 1, 0]``.

All functions take and return ``torch.Tensor`` with arbitrary leading batch dimensions ``(...)``
and keep the input dtype and device; use float64 for round trips at 1e-6 degree precision.
They are built on ``roma`` (no pytorch3d needed).
"""

from __future__ import annotations

import roma
import torch

__all__ = [
    "EULER_CONVENTION",
    "axis_angle_to_degrees",
    "axis_angle_to_matrix",
    "degrees_to_axis_angle",
    "degrees_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_degrees",
    "matrix_to_rotation_6d",
    "rotation_6d_to_matrix",
    "compose_axis_angle",
    "identity_rotation_6d",
]

#: roma / scipy convention string: lowercase = extrinsic axes, applied x (pitch), y (yaw), z (roll).
EULER_CONVENTION = "xyz"


def _as_tensor(x, dtype=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if dtype is None else x.to(dtype)
    return torch.as_tensor(x, dtype=dtype or torch.float64)


def degrees_to_matrix(pyr_deg: torch.Tensor) -> torch.Tensor:
    """Pitch / yaw / roll in degrees ``(..., 3)`` to rotation matrices ``(..., 3, 3)``.

    ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (see module docstring).

    Raises:
        ValueError: if the last dimension is not 3.
    """
    pyr_deg = _as_tensor(pyr_deg)
    if pyr_deg.shape[-1] != 3:
        raise ValueError(f"expected (..., 3) pitch/yaw/roll degrees, got shape {tuple(pyr_deg.shape)}")
    lead = pyr_deg.shape[:-1]
    mat = roma.euler_to_rotmat(EULER_CONVENTION, pyr_deg.reshape(-1, 3), degrees=True)
    return mat.reshape(*lead, 3, 3).to(pyr_deg.dtype)


def matrix_to_degrees(mat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to pitch / yaw / roll in degrees ``(..., 3)``.

    Inverse of :func:`degrees_to_matrix`; yaw is returned in [-90, 90], pitch and roll in
    (-180, 180].
    """
    mat = _as_tensor(mat)
    if mat.shape[-2:] != (3, 3):
        raise ValueError(f"expected (..., 3, 3) rotation matrices, got shape {tuple(mat.shape)}")
    lead = mat.shape[:-2]
    angles = roma.rotmat_to_euler(EULER_CONVENTION, mat.reshape(-1, 3, 3), degrees=True)
    if isinstance(angles, (list, tuple)):
        angles = torch.stack(list(angles), dim=-1)
    return angles.reshape(*lead, 3).to(mat.dtype)


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle (radians) ``(..., 3)`` to rotation matrices ``(..., 3, 3)`` (Rodrigues)."""
    rotvec = _as_tensor(rotvec)
    if rotvec.shape[-1] != 3:
        raise ValueError(f"expected (..., 3) axis-angle, got shape {tuple(rotvec.shape)}")
    return roma.rotvec_to_rotmat(rotvec)


def matrix_to_axis_angle(mat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to axis-angle (radians) ``(..., 3)``, angle in [0, π]."""
    mat = _as_tensor(mat)
    if mat.shape[-2:] != (3, 3):
        raise ValueError(f"expected (..., 3, 3) rotation matrices, got shape {tuple(mat.shape)}")
    return roma.rotmat_to_rotvec(mat)


def degrees_to_axis_angle(pyr_deg: torch.Tensor) -> torch.Tensor:
    """Pitch / yaw / roll in degrees ``(..., 3)`` to FLAME axis-angle in radians ``(..., 3)``."""
    return matrix_to_axis_angle(degrees_to_matrix(pyr_deg))


def axis_angle_to_degrees(rotvec: torch.Tensor) -> torch.Tensor:
    """FLAME axis-angle in radians ``(..., 3)`` to pitch / yaw / roll in degrees ``(..., 3)``."""
    return matrix_to_degrees(axis_angle_to_matrix(rotvec))


def matrix_to_rotation_6d(mat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to the 6D representation ``(..., 6)``.

    The first two columns, ``[R[:, 0], R[:, 1]]`` (Zhou et al. 2019, Eq. 14). Note that
    pytorch3d's ``matrix_to_rotation_6d`` takes the first two *rows* instead.
    """
    mat = _as_tensor(mat)
    if mat.shape[-2:] != (3, 3):
        raise ValueError(f"expected (..., 3, 3) rotation matrices, got shape {tuple(mat.shape)}")
    return torch.cat([mat[..., :, 0], mat[..., :, 1]], dim=-1)


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """6D rotation ``(..., 6)`` to rotation matrices ``(..., 3, 3)`` by Gram-Schmidt (Zhou et al. 2019).

    Any 6-vector whose two halves are not parallel maps to a valid rotation.
    """
    d6 = _as_tensor(d6)
    if d6.shape[-1] != 6:
        raise ValueError(f"expected (..., 6) 6D rotations, got shape {tuple(d6.shape)}")
    cols = torch.stack([d6[..., :3], d6[..., 3:]], dim=-1)  # (..., 3, 2)
    return roma.special_gramschmidt(cols)


def identity_rotation_6d(*lead: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """The identity rotation in 6D form, ``(*lead, 6)`` = ``[1, 0, 0, 0, 1, 0]``."""
    eye = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=dtype, device=device)
    return eye.expand(*lead, 6).clone()


def compose_axis_angle(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Rotation ``second`` applied after ``first``: ``R = R(second) @ R(first)``, both axis-angle.

    Composition is on SO(3), never by adding angles. Shapes broadcast: ``(..., 3)``.
    """
    return matrix_to_axis_angle(axis_angle_to_matrix(second) @ axis_angle_to_matrix(first))
