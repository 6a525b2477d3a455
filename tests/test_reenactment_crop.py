"""Self-reenactment crops (flap.eval.reenactment.real_crops): the tracked crop follows the head as
the training data's crop does; the fixed crop keeps the first frame's box."""

import numpy as np
import pytest

from flap.eval.reenactment import real_crops


def _moving_face(shifts):
    """Frames 240x320 with a textured 80 px 'face' whose left edge moves by ``shifts`` px; stub detector."""
    rng = np.random.default_rng(0)
    face = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)
    frames = np.full((len(shifts), 240, 320, 3), 40, dtype=np.uint8)
    for i, dx in enumerate(shifts):
        frames[i, 80:160, 100 + dx:180 + dx] = face

    def detector(frame):
        cols = np.flatnonzero((frame != 40).any(axis=(0, 2)))
        rows = np.flatnonzero((frame != 40).any(axis=(1, 2)))
        return (float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1))

    return frames, detector


def test_tracked_crop_follows_the_head_fixed_crop_does_not():
    frames, det = _moving_face([0, 12, 24, 36])
    portrait, tracked = real_crops(frames, 64, crop="tracked", sigma=0.0, detector=det)
    # unsmoothed boxes move with the face by whole pixels, so every crop is the first one exactly
    for t in range(1, 4):
        np.testing.assert_array_equal(tracked[t], tracked[0])
    np.testing.assert_array_equal(portrait.crop, tracked[0])
    _, fixed = real_crops(frames, 64, crop="fixed", detector=det)
    np.testing.assert_array_equal(fixed[0], tracked[0])  # same first box (head_box of the same face)
    assert np.abs(fixed[3].astype(int) - fixed[0].astype(int)).mean() > 10  # the head left the fixed box


def test_tracked_crop_box_is_smoothed_over_time():
    frames, det = _moving_face([0, 0, 30, 30, 30])
    portrait, _ = real_crops(frames, 64, crop="tracked", sigma=3.0, detector=det)
    cx = 100 + 40  # first frame's face centre; smoothing pulls the first box towards the later ones
    assert cx < portrait.box[0] < cx + 30


def test_unknown_crop_is_named():
    frames, det = _moving_face([0])
    with pytest.raises(ValueError, match="crop must be one of"):
        real_crops(frames, 64, crop="centre", detector=det)
