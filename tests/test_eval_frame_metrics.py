"""PSNR / SSIM / LMD / APD / AED of self-reenactment (flap.eval.frame_metrics), hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flap.eval.frame_metrics import aed, apd, lmd, psnr, psnr_ssim, ssim
from flap.flame.coeffs import HeadCoeffs


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(0, 256, (16, 16, 3)), np.ones((4, 4, 1)))  # smooth-ish 64x64 blocks
    return base.astype(np.uint8)


def test_identical_frames(image):
    assert psnr(image, image) == math.inf
    assert ssim(image, image) == pytest.approx(1.0)
    both = psnr_ssim(np.stack([image, image]), np.stack([image, image]))
    assert both["psnr"] == math.inf and both["ssim"] == pytest.approx(1.0)


def test_shifted_frame_scores_lower(image):
    shifted = np.roll(image, 2, axis=1)
    assert psnr(shifted, image) < 30
    assert ssim(shifted, image) < 0.9


def test_psnr_hand_computed():
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 10, np.uint8)  # MSE = 100
    assert psnr(b, a) == pytest.approx(10 * math.log10(255**2 / 100))


def test_shape_mismatch_raises(image):
    with pytest.raises(ValueError, match="same shape"):
        psnr(image[:32], image)


def test_lmd_hand_computed():
    lm = np.zeros((2, 68, 2))
    lm[:, 36], lm[:, 45] = (10.0, 50.0), (70.0, 50.0)  # inter-ocular distance 60 px
    moved = lm.copy()
    moved[:, 48:68, 0] += 3.0
    assert lmd(moved, lm) == pytest.approx(3.0 / 60.0)
    moved[1] = np.nan  # a frame without a face is left out
    assert lmd(moved, lm) == pytest.approx(0.05)


def test_apd_and_aed_hand_computed():
    a, b = HeadCoeffs.neutral(4), HeadCoeffs.neutral(4)
    b.data[:, 0] = math.radians(10.0)  # 10 degrees about x
    b.data[:, 20:25] = 0.1
    assert apd(a, b) == pytest.approx(10.0, abs=1e-4)
    assert aed(a, b) == pytest.approx(0.5, abs=1e-6)
    valid = np.array([True, False, False, False])
    b.data[1:, 1] = 1.0
    assert apd(a, b, valid) == pytest.approx(10.0, abs=1e-4)
    assert apd(a, a) == pytest.approx(0.0, abs=1e-3)
    assert torch.isfinite(a.data).all()
