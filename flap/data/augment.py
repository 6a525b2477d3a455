"""Label-exact augmentation of training frames and their FLAME conditions (issue 13).

Every geometric change of a frame comes with the matching change of its 120 coefficients
(:class:`~flap.flame.coeffs.HeadCoeffs` layout), so the condition stays the truth about the image.

* **Horizontal flip** = reflecting the scene in the camera's y-z plane, ``S = diag(-1, 1, 1)``.
  A rotation ``R`` becomes ``S R S``; for an axis-angle vector ``r`` that is ``(r_x, -r_y, -r_z)``
  (pitch kept, yaw and roll change sign), for the 6D eye rotations the first column becomes
  ``(c_x, -c_y, -c_z)`` and the second ``(-c_x, c_y, c_z)``. The subject's left eye becomes the right
  one, so the two eyes (and the two eyelids) swap. Jaw: like the head rotation.
  **Expression is not mirrored**: the proxy's expression basis (``flap.flame.proxy``) is not
  mirror-symmetric (component 10 is a one-sided smile and components 13-99 are random local
  fields), so no coefficient mapping is exact. :func:`mirror_coeffs` leaves ``expression``
  unchanged and stages that feed ``c_exp`` (PFT stages 2 and 3) must not flip;
  :class:`~flap.training.FLAPLitModule` refuses that combination.
* **In-plane rotation** by ``angle`` degrees counter-clockwise on screen (``cv2.getRotationMatrix2D``
  convention) is a rotation about the camera's z axis (towards the viewer): ``R' = Rz(angle) R``.
  With ``R = Rz(roll) Ry(yaw) Rx(pitch)`` (:mod:`flap.flame.rotations`) the roll grows by exactly
  ``angle`` and pitch and yaw are unchanged; eyes and jaw are relative to the head and unchanged.
* **Scale / shift jitter**: framing only, no coefficient changes (the condition does not encode the
  framing).
* **Colour jitter** (optional, ``color``): one random gain per RGB channel, shared by the reference and
  the target, so the two frames keep the same colours and no coefficient changes (the condition
  encodes no colour). The colours of a person then vary between epochs and only the reference can
  tell them, which asks the model to read appearance from the reference instead of memorising the
  training people (issue 13, point (a)).

Pairs (:class:`PairAugment`): the reference and the target share the flip (a mirrored person is a
new identity, and it must be the same one in both), each gets its own rotation angle (so the target
roll is not copied from the reference), and only the reference gets the scale / shift jitter (so
the model is robust to how a portrait is framed, while the target keeps the data's framing, which
nothing in the condition could tell it). All draws come from the ``numpy`` generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from flap.flame.coeffs import COND_DIM, SLICES
from flap.flame.rotations import axis_angle_to_matrix, degrees_to_matrix, matrix_to_axis_angle

__all__ = ["mirror_axis_angle", "mirror_rotation_6d", "mirror_coeffs", "roll_coeffs", "warp_image",
           "color_gain", "PairAugment"]


def mirror_axis_angle(r: np.ndarray) -> np.ndarray:
    """Axis-angle ``(..., 3)`` of ``S R S`` with ``S = diag(-1, 1, 1)``: ``(r_x, -r_y, -r_z)``."""
    return np.asarray(r) * np.array([1.0, -1.0, -1.0], dtype=np.asarray(r).dtype)


def mirror_rotation_6d(d6: np.ndarray) -> np.ndarray:
    """6D rotation ``(..., 6)`` (columns ``[c0, c1]``) of ``S R S``: ``c0 -> (x, -y, -z)``, ``c1 -> (-x, y, z)``."""
    d6 = np.asarray(d6)
    return d6 * np.array([1.0, -1.0, -1.0, -1.0, 1.0, 1.0], dtype=d6.dtype)


def _check(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c)
    if c.shape[-1] != COND_DIM:
        raise ValueError(f"augment: expected coefficients (..., {COND_DIM}), found {c.shape}")
    return c


def mirror_coeffs(c: np.ndarray) -> np.ndarray:
    """Coefficients ``(..., 120)`` of the horizontally flipped frame (expression unchanged, see module doc).

    Raises:
        ValueError: the last dimension is not 120.
    """
    c = _check(c)
    out = c.copy()
    for name in ("global_rot", "jaw"):
        out[..., SLICES[name]] = mirror_axis_angle(c[..., SLICES[name]])
    eyes = c[..., SLICES["eyes"]]
    out[..., SLICES["eyes"]] = np.concatenate([mirror_rotation_6d(eyes[..., 6:]), mirror_rotation_6d(eyes[..., :6])],
                                              axis=-1)
    out[..., SLICES["eyelids"]] = c[..., SLICES["eyelids"]][..., ::-1]
    return out


def roll_coeffs(c: np.ndarray, angle_deg: float) -> np.ndarray:
    """Coefficients ``(..., 120)`` after rotating the frame by ``angle_deg`` counter-clockwise on screen.

    ``global_rot' = Rz(angle) @ R(global_rot)``: roll + angle, pitch and yaw unchanged.

    Raises:
        ValueError: the last dimension is not 120.
    """
    c = _check(c)
    out = c.copy()
    rz = degrees_to_matrix(torch.tensor([0.0, 0.0, float(angle_deg)], dtype=torch.float64))
    r = torch.from_numpy(np.ascontiguousarray(c[..., SLICES["global_rot"]], dtype=np.float64))
    out[..., SLICES["global_rot"]] = matrix_to_axis_angle(rz @ axis_angle_to_matrix(r)).numpy().astype(c.dtype)
    return out


def warp_image(image: torch.Tensor, flip: bool = False, angle_deg: float = 0.0, scale: float = 1.0,
               shift: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """Flip (first), then rotate / scale about the centre and shift a ``(3, H, W)`` frame.

    Args:
        image: float ``(3, H, W)``.
        flip: mirror left-right.
        angle_deg: counter-clockwise on screen, degrees.
        scale: zoom factor (> 1 enlarges the face).
        shift: ``(dx, dy)`` as fractions of the width / height (right, down).

    Returns:
        float ``(3, H, W)``; uncovered borders are filled by reflection (no black corners).
    """
    x = image.flip(-1) if flip else image
    if angle_deg == 0.0 and scale == 1.0 and shift == (0.0, 0.0):
        return x.contiguous()
    _, h, w = x.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(angle_deg), float(scale))
    m[:, 2] += (shift[0] * w, shift[1] * h)
    arr = x.permute(1, 2, 0).numpy().astype(np.float32)
    out = cv2.warpAffine(arr, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return torch.from_numpy(out).permute(2, 0, 1).contiguous()


def color_gain(image: torch.Tensor, gains) -> torch.Tensor:
    """Multiply each RGB channel of a ``(3, H, W)`` frame in ``[-1, 1]`` by its gain, in ``[0, 1]`` units.

    ``y = clamp(g_c * (x + 1) / 2, 0, 1) * 2 - 1``: black stays black, a gain above 1 saturates at white.

    Raises:
        ValueError: ``gains`` is not 3 positive numbers.
    """
    g = torch.as_tensor(np.asarray(gains, dtype=np.float32)).to(image)
    if g.shape != (3,) or not bool((g > 0).all()):
        raise ValueError(f"color_gain: need 3 positive channel gains, got {gains!r}")
    return ((image + 1.0) * 0.5 * g[:, None, None]).clamp(0.0, 1.0) * 2.0 - 1.0


@dataclass
class PairAugment:
    """Random label-exact augmentation of a (reference, target) pair (rules in the module docstring).

    Attributes:
        flip: probability of mirroring both frames (0 for stages that feed ``c_exp``).
        rotate_deg: each frame's in-plane angle is uniform in ``[-rotate_deg, rotate_deg]`` degrees.
        scale: reference zoom uniform in ``[1 - scale, 1 + scale]``.
        shift: reference shift uniform in ``[-shift, shift]`` of the side, per axis.
        color: each RGB channel's gain uniform in ``[1 - color, 1 + color]``, the same for both frames
            (:func:`color_gain`); 0 = off (and no random draw, so older configs augment as before).
    """

    flip: float = 0.5
    rotate_deg: float = 10.0
    scale: float = 0.05
    shift: float = 0.03
    color: float = 0.0

    def __post_init__(self):
        if (not 0.0 <= self.flip <= 1.0 or self.rotate_deg < 0 or not 0 <= self.scale < 1 or self.shift < 0
                or not 0 <= self.color < 1):
            raise ValueError("PairAugment: need 0 <= flip <= 1, rotate_deg >= 0, 0 <= scale < 1, shift >= 0, "
                             f"0 <= color < 1; got {self}")

    def __call__(self, rng: np.random.Generator, reference: torch.Tensor, target: torch.Tensor,
                 ref_coeffs: np.ndarray, coeffs: np.ndarray):
        """Augment one pair; returns ``(reference, target, ref_coeffs, coeffs)`` (new objects)."""
        flip = bool(rng.random() < self.flip)
        a_ref, a_tgt = rng.uniform(-self.rotate_deg, self.rotate_deg, size=2)
        s = float(rng.uniform(1 - self.scale, 1 + self.scale))
        dx, dy = rng.uniform(-self.shift, self.shift, size=2)
        if flip:
            ref_coeffs, coeffs = mirror_coeffs(ref_coeffs), mirror_coeffs(coeffs)
        reference = warp_image(reference, flip, float(a_ref), s, (float(dx), float(dy)))
        target = warp_image(target, flip, float(a_tgt))
        if self.color > 0:
            gains = rng.uniform(1 - self.color, 1 + self.color, size=3)
            reference, target = color_gain(reference, gains), color_gain(target, gains)
        return reference, target, roll_coeffs(ref_coeffs, float(a_ref)), roll_coeffs(coeffs, float(a_tgt))
