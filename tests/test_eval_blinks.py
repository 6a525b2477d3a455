"""Blink counting (flap.eval.blinks): synthetic eyelid tracks exactly, a real clip within ±1 of a count by eye."""

from __future__ import annotations

import numpy as np
import pytest

from flap.control.blinks import blink_shape, blink_track
from flap.eval.blinks import blink_count_error, blink_events, count_blinks


def test_synthetic_track_with_noise_exact():
    fps, peaks = 25.0, [20, 45, 46 + 30, 150, 230]
    t = np.arange(250) / fps
    track = np.max([blink_shape(t - p / fps, 0.25) for p in peaks], axis=0)
    noisy = np.clip(track + np.random.default_rng(0).uniform(-0.1, 0.1, len(t)), 0, 1)
    events = blink_events(np.stack([noisy, noisy], 1))
    assert len(events) == len(peaks)
    for (a, b), p in zip(events, peaks):
        assert a <= p <= b


@pytest.mark.parametrize("rate, seconds, expected", [(12, 60.0, 12), (20, 3.0, 1), (0, 10.0, 0), (30, 20.0, 10)])
def test_requested_tracks_counted_exactly(rate, seconds, expected):
    track = blink_track(int(seconds * 25), 25.0, rate, seed=3)
    assert count_blinks(track) == expected


def test_hysteresis_counts_a_flickering_closure_once():
    x = np.array([0, 0.55, 0.3, 0.55, 0.3, 0.6, 0.1, 0, 0.7, 0])
    assert blink_events(x) == [(1, 5), (8, 8)]
    assert count_blinks(x, high=0.5, low=0.35) == 4


def test_invalid_frames_never_blink():
    x = np.array([0, 1, 1, 0, 1, 0])
    assert count_blinks(x, valid=[True, False, False, True, True, True]) == 1
    with pytest.raises(ValueError, match="low"):
        blink_events(x, high=0.2, low=0.5)


def test_error_dict():
    req = blink_track(250, 25.0, 12, seed=1)
    assert blink_count_error(req, np.zeros(250)) == {
        "blinks_requested": 2, "blinks_detected": 0, "blink_count_error": -2, "blink_count_abs_error": 2,
    }


def test_real_clip_within_one_of_count_by_eye(shared_data):
    """LivePortrait d12 (``video/motion/lp_d12.mp4``, 183 frames at 25 fps): counted by eye on a contact
    sheet of the eye region of every frame: **3 blinks**, closed around frames 48-52, 93-94 and 135-137.
    The tracker's eyelids (eye aspect ratio) must give 3 ± 1."""
    from flap.tracking import track_video

    res = track_video(shared_data / "video" / "motion" / "lp_d12.mp4")
    n = count_blinks(res.coeffs.eyelids.numpy(), valid=res.valid)
    assert abs(n - 3) <= 1, n
