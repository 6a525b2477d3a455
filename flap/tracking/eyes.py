"""Eyelids and gaze from 2D landmarks: eye aspect ratio → eyelid weight, iris offset → eyeball rotation.

Both are read directly off the landmarks (no fitting), in the subject's head frame: offsets are
measured along the eye's own corner-to-corner axis, which removes in-plane head roll.

Order of the outputs follows FLAME / :class:`flap.flame.coeffs.HeadCoeffs`: **left eye first**
(the subject's left, +x, iBUG 42-47), then the right eye (iBUG 36-41).
"""

from __future__ import annotations

import numpy as np
import torch

from flap.flame.rotations import degrees_to_matrix, matrix_to_axis_angle, matrix_to_rotation_6d
from flap.tracking.landmarks import eye_aspect_ratio

__all__ = ["eyelids_from_landmarks", "gaze_degrees_from_landmarks", "gaze_to_eye_pose"]

#: iBUG (image-left corner, image-right corner) of each eye, left eye first: left eye 42 (inner) → 45
#: (outer), right eye 36 (outer) → 39 (inner).
EYE_CORNERS = np.array([[42, 45], [36, 39]], dtype=np.int64)
#: Iris offset, as a fraction of half the eye width, of a gaze turned by 90° (eyeball radius ≈ 12 mm
#: over a half eye width ≈ 15 mm); ``angle = asin(offset / GAZE_GAIN)``.
GAZE_GAIN = 0.8


def eyelids_from_landmarks(
    lmk68: np.ndarray, valid: np.ndarray | None = None, open_quantile: float = 0.9
) -> np.ndarray:
    """Eyelid blendshape weights from eye opening, ``(T, 68, 2)`` px → ``(T, 2)`` in [0, 1], left then right.

    The eye aspect ratio (:func:`flap.tracking.landmarks.eye_aspect_ratio`) is divided by its
    ``open_quantile`` over the valid frames of the clip (the person's open eye), so
    ``weight = clip((1 - EAR / EAR_open) / 0.8, 0, 1)``: 0 for a normally open eye, 1 once the
    opening falls to 20 % of it. NaN frames give NaN.
    """
    ear = eye_aspect_ratio(lmk68)[:, ::-1]  # → left, right
    ok = np.isfinite(ear).all(axis=1) if valid is None else valid & np.isfinite(ear).all(axis=1)
    if not ok.any():
        return np.full_like(ear, np.nan)
    ear_open = np.maximum(np.quantile(ear[ok], open_quantile, axis=0), 1e-3)
    return np.clip((1.0 - ear / ear_open) / 0.8, 0.0, 1.0)


def gaze_degrees_from_landmarks(
    lmk68: np.ndarray, iris: np.ndarray, valid: np.ndarray | None = None, center: bool = True
) -> np.ndarray:
    """Eyeball pitch and yaw in degrees relative to the head, ``(T, 2, 2)`` = (eye: left, right; pitch, yaw).

    For each eye the iris centre is expressed in the eye's frame (origin: middle of the corners,
    x along image-left → image-right corner, y perpendicular, down), divided by half the eye width,
    and turned into angles ``asin(offset / GAZE_GAIN)``. Positive yaw looks towards +x (the viewer's
    right), positive pitch looks down, matching :mod:`flap.flame.rotations`. With ``center`` the
    per-clip median offset over valid frames is taken as "looking ahead" (talking heads mostly
    look at the camera), which removes the person-specific resting position of the iris.

    Args:
        lmk68: ``(T, 68, 2)`` px.
        iris: ``(T, 2, 2)`` px, subject's right eye then left eye (MediaPipe order, see
            :data:`flap.tracking.landmarks.IRIS_CENTRES`).
    """
    iris_lr = iris[:, ::-1]  # → left, right
    a = lmk68[:, EYE_CORNERS[:, 0]]  # (T, 2, 2)
    b = lmk68[:, EYE_CORNERS[:, 1]]
    half = 0.5 * np.linalg.norm(b - a, axis=-1, keepdims=True)
    ex = (b - a) / np.maximum(2 * half, 1e-6)
    ey = np.stack([-ex[..., 1], ex[..., 0]], axis=-1)  # x right, y down: rotate +90° in the image
    d = iris_lr - 0.5 * (a + b)
    off = np.stack([(d * ey).sum(-1), (d * ex).sum(-1)], axis=-1) / np.maximum(half, 1e-6)  # (pitch, yaw)
    if center:
        ok = np.isfinite(off).all(axis=(1, 2))
        if valid is not None:
            ok &= valid
        if ok.any():
            off = off - np.median(off[ok], axis=0)
    return np.degrees(np.arcsin(np.clip(off / GAZE_GAIN, -0.99, 0.99)))


def gaze_to_eye_pose(gaze_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eyeball (pitch, yaw) degrees ``(..., 2, 2)`` → (axis-angle ``(..., 2, 3)`` rad, 6D ``(..., 12)``)."""
    gaze_deg = torch.as_tensor(gaze_deg)
    pyr = torch.cat([gaze_deg, torch.zeros_like(gaze_deg[..., :1])], dim=-1)
    mat = degrees_to_matrix(pyr)
    d6 = matrix_to_rotation_6d(mat)
    return matrix_to_axis_angle(mat), d6.reshape(*d6.shape[:-2], 12)
