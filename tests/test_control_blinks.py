"""Blink control (flap.control.blinks): count, depth, shape, reproducibility, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flap.control import apply_blinks, apply_controls, blink_shape, blink_track
from flap.flame.coeffs import HeadCoeffs


def _blinks(track: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """(start, end) frame ranges where the eyelids are above ``threshold``."""
    above = np.concatenate([[False], track > threshold, [False]])
    edges = np.flatnonzero(np.diff(above.astype(int)))
    return list(zip(edges[::2], edges[1::2]))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_twelve_per_minute_over_60_s(seed):
    coeffs = apply_blinks(HeadCoeffs.neutral(60 * 25, 25.0), blinks_per_minute=12, seed=seed)
    lids = coeffs.eyelids.numpy()
    np.testing.assert_array_equal(lids[:, 0], lids[:, 1])  # both eyes together
    events = _blinks(lids[:, 0])
    assert 10 <= len(events) <= 14, len(events)
    for start, end in events:
        assert lids[start:end, 0].max() >= 0.9  # every blink closes the eyes
        assert (end - start) / 25.0 <= 0.3  # short: about 150-300 ms including both ramps
    assert lids.min() >= 0.0 and lids.max() <= 1.0


def test_blink_shape_hand_computed():
    d = 0.3  # closing 0.1 s, reopening 0.2 s
    t = np.array([-0.2, -0.1, -0.05, 0.0, 0.1, 0.2, 0.3])
    expected = [0.0, 0.0, np.sin(np.pi / 4) ** 2, 1.0, np.sin(np.pi / 4) ** 2, 0.0, 0.0]
    np.testing.assert_allclose(blink_shape(t, d), expected, atol=1e-12)


def test_zero_rate_and_reproducible_seed():
    assert blink_track(500, 25.0, 0).max() == 0.0
    a, b = blink_track(1500, 25.0, 15, seed=7), blink_track(1500, 25.0, 15, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, blink_track(1500, 25.0, 15, seed=8))


def test_min_spacing_respected():
    track = blink_track(60 * 25, 25.0, 40, seed=3, min_spacing=0.8)
    peaks = np.flatnonzero(track == 1.0)
    assert np.diff(peaks).min() / 25.0 >= 0.8 - 1 / 25.0


def test_eyelids_audio_keeps_source_eyelids():
    src = HeadCoeffs.neutral(100, dtype=torch.float64)
    src.data[:, 18:20] = 0.25
    kept = apply_controls(src, blinks_per_minute=12, eyelids="audio")
    np.testing.assert_array_equal(kept.eyelids.numpy(), 0.25)
    kept = apply_controls(src)  # no blink rate given: keep
    np.testing.assert_array_equal(kept.eyelids.numpy(), 0.25)
    opened = apply_controls(src, blinks_per_minute=0)
    np.testing.assert_array_equal(opened.eyelids.numpy(), 0.0)


def test_bad_rates():
    with pytest.raises(ValueError, match="blinks_per_minute"):
        blink_track(10, 25.0, -1)
    with pytest.raises(ValueError, match="min_spacing"):
        blink_track(10, 25.0, 500)
    with pytest.raises(ValueError, match="blinks_per_minute"):
        apply_controls(HeadCoeffs.neutral(5), eyelids="blinks")
