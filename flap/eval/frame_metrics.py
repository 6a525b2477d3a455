"""Paired metrics of self-reenactment: generated frames against the real frames they should equal.

PSNR and SSIM come from scikit-image (``skimage.metrics``) on ``uint8`` RGB face crops; LMD, APD and
AED are the landmark, pose and expression distances of talking-head papers (e.g. FOMM, LivePortrait,
FLAP Table 1), computed from MediaPipe landmarks and tracked FLAME coefficients:

* LMD: mean distance of the 20 mouth landmarks (iBUG 48-67), divided by the real frame's
  inter-ocular distance (outer eye corners), so it does not depend on the crop size;
* APD: mean geodesic angle between two head rotations, degrees;
* AED: mean L1 distance of the 100 expression coefficients ψ (per frame, averaged over frames).
"""

from __future__ import annotations

import numpy as np
import torch

from flap.flame.coeffs import SLICES, HeadCoeffs
from flap.flame.rotations import axis_angle_to_matrix
from flap.signals import interocular_distance

__all__ = ["psnr", "ssim", "psnr_ssim", "lmd", "apd", "aed"]

_MOUTH = slice(48, 68)


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != np.uint8 or b.dtype != np.uint8 or a.shape[-1] != 3:
        raise ValueError(
            f"expected two uint8 (..., H, W, 3) images of the same shape, got {a.dtype} {a.shape} and {b.dtype} {b.shape}"
        )
    return a, b


def psnr(generated, real) -> float:
    """Peak signal-to-noise ratio in dB of one ``uint8 (H, W, 3)`` image pair (``inf`` when identical)."""
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _pair(generated, real)
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(b, a, data_range=255))


def ssim(generated, real) -> float:
    """Structural similarity (Wang et al. 2004; 7×7 window, colour channels averaged) of one pair, in [-1, 1]."""
    from skimage.metrics import structural_similarity

    a, b = _pair(generated, real)
    return float(structural_similarity(b, a, data_range=255, channel_axis=-1))


def psnr_ssim(generated, real) -> dict:
    """Mean PSNR (dB) and SSIM over ``(T, H, W, 3)`` frame pairs.

    The mean PSNR is over the frames that differ (``inf`` if every pair is identical).
    """
    a, b = _pair(generated, real)
    p = np.array([psnr(x, y) for x, y in zip(a, b)])
    s = np.array([ssim(x, y) for x, y in zip(a, b)])
    fin = p[np.isfinite(p)]
    return {"psnr": float(fin.mean()) if len(fin) else float("inf"), "ssim": float(s.mean()), "frames": len(a)}


def lmd(generated_lmk68, real_lmk68, valid=None) -> float:
    """Mouth landmark distance: mean over frames and the 20 mouth points, ÷ the real inter-ocular distance.

    Args:
        generated_lmk68, real_lmk68: ``(T, 68, 2)`` iBUG-68 landmarks in pixels of the same frame size.
        valid: ``(T,)`` bool, frames to use (both must have a face); default: frames without NaN.

    Returns:
        LMD (unitless; ``nan`` without a usable frame).
    """
    g, r = np.asarray(generated_lmk68, np.float64), np.asarray(real_lmk68, np.float64)
    if g.shape != r.shape or g.ndim != 3 or g.shape[1] != 68:
        raise ValueError(f"lmd: expected two (T, 68, 2) landmark arrays, got {g.shape} and {r.shape}")
    ok = np.isfinite(g).all(axis=(1, 2)) & np.isfinite(r).all(axis=(1, 2))
    if valid is not None:
        ok &= np.asarray(valid, bool)
    if not ok.any():
        return float("nan")
    d = np.linalg.norm(g[ok, _MOUTH] - r[ok, _MOUTH], axis=-1).mean(1)
    return float((d / np.maximum(interocular_distance(r[ok]), 1e-9)).mean())


def _common(a: HeadCoeffs, b: HeadCoeffs, valid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = min(len(a), len(b))
    ok = np.ones(n, bool) if valid is None else np.asarray(valid, bool)[:n]
    return a.numpy()[:n].astype(np.float64), b.numpy()[:n].astype(np.float64), ok


def apd(a: HeadCoeffs, b: HeadCoeffs, valid=None) -> float:
    """Average pose distance: mean geodesic angle (degrees) between the ``global_rot`` of two sequences.

    Frames are paired by index over the shorter length; ``valid`` ``(T,)`` selects frames.
    """
    x, y, ok = _common(a, b, valid)
    if not ok.any():
        return float("nan")
    ra = axis_angle_to_matrix(torch.from_numpy(x[ok, SLICES["global_rot"]]))
    rb = axis_angle_to_matrix(torch.from_numpy(y[ok, SLICES["global_rot"]]))
    cos = ((ra.transpose(-1, -2) @ rb).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return float(torch.rad2deg(torch.arccos(cos.clamp(-1, 1))).mean())


def aed(a: HeadCoeffs, b: HeadCoeffs, valid=None) -> float:
    """Average expression distance: mean over frames of the L1 distance of ψ ``(100,)`` (FLAME units)."""
    x, y, ok = _common(a, b, valid)
    if not ok.any():
        return float("nan")
    e = SLICES["expression"]
    return float(np.abs(x[ok, e] - y[ok, e]).sum(1).mean())
