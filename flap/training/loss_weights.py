"""Spatial weights of the ε-prediction loss: more weight where the mouth is (FLAP's own, issue 13).

At 128 px with an 8× VAE the mouth covers about 3 × 1.5 of the 16 × 16 latent cells, so plain
ε-MSE (paper Eq. 4) spends almost nothing on it and the expression condition ``c_exp`` is learned
weakly (measured on the demo model: swapping ``c_exp`` for another frame's changes ε by 15% of its
error, swapping ``c_motion`` by 124%; the generated lip gap does not follow the requested jaw).
Region-weighted diffusion losses are the field's remedy (e.g. Hallo's lip and face masks). Here the
region is a fixed Gaussian in crop coordinates: the training crops are face-centred
(:mod:`flap.data.crop`), and MediaPipe finds the mouth centre at x 0.497 ± 0.03, y 0.682 ± 0.016
of the crop side, mouth size 0.17 × 0.09 (334 frames of 16 prepared clips, 2026-12-07).
"""

from __future__ import annotations

import torch

__all__ = ["MOUTH_CENTRE", "MOUTH_SIGMA", "mouth_weight_map"]

#: mouth centre ``(x, y)`` and Gaussian ``(σx, σy)`` in crop-side units (module docstring); σ also
#: covers the augmentation's rotation (±15°) and shift (±3%).
MOUTH_CENTRE = (0.5, 0.68)
MOUTH_SIGMA = (0.1, 0.07)


def mouth_weight_map(height: int, width: int, weight: float, centre=MOUTH_CENTRE, sigma=MOUTH_SIGMA,
                     device=None) -> torch.Tensor:
    """``1 + weight · G(x, y)``, a ``(height, width)`` float32 map over latent cells (cell centres).

    Args:
        height, width: latent size in cells.
        weight: extra weight at the mouth centre (0 = uniform map of ones, plain Eq. 4).
        centre, sigma: Gaussian centre and standard deviations, in units of the crop side.

    Raises:
        ValueError: negative ``weight`` or non-positive ``sigma``.
    """
    if weight < 0:
        raise ValueError(f"mouth_weight_map: weight must be >= 0, got {weight}")
    if min(sigma) <= 0:
        raise ValueError(f"mouth_weight_map: sigma must be positive, got {sigma}")
    y = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
    x = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
    gy = torch.exp(-0.5 * ((y - centre[1]) / sigma[1]) ** 2)
    gx = torch.exp(-0.5 * ((x - centre[0]) / sigma[0]) ** 2)
    return 1.0 + float(weight) * gy[:, None] * gx[None, :]
