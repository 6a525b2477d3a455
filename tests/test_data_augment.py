"""Label-exact augmentation (flap.data.augment): hand-computed values and the FLAME proxy's geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from test_data_prepare import _one_thread  # noqa: F401  (autouse: one torch thread in this module)

from flap.data.augment import PairAugment, color_gain, mirror_coeffs, roll_coeffs, warp_image
from flap.flame.coeffs import SLICES, HeadCoeffs
from flap.flame.rotations import axis_angle_to_degrees, degrees_to_matrix, matrix_to_rotation_6d

S = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))


def coeffs_with(pyr_deg=(10.0, 20.0, 5.0), jaw=(0.2, 0.05, -0.03), eyes_deg=((5.0, 12.0, 0.0), (-3.0, 8.0, 1.0)),
                eyelids=(0.1, 0.7)) -> np.ndarray:
    c = HeadCoeffs.neutral(1, dtype=torch.float64)
    c.set_pose_degrees(torch.tensor([pyr_deg], dtype=torch.float64))
    c.jaw[:] = torch.tensor(jaw, dtype=torch.float64)
    c.eyes[:] = matrix_to_rotation_6d(degrees_to_matrix(torch.tensor(eyes_deg, dtype=torch.float64))).reshape(1, 12)
    c.eyelids[:] = torch.tensor(eyelids, dtype=torch.float64)
    c.expression[:, :3] = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    return c.data.numpy()


def test_mirror_coeffs_hand_values():
    c = coeffs_with()
    m = mirror_coeffs(c)
    pyr = axis_angle_to_degrees(torch.from_numpy(m[:, SLICES["global_rot"]]))[0]
    torch.testing.assert_close(pyr, torch.tensor([10.0, -20.0, -5.0], dtype=torch.float64))  # yaw, roll change sign
    np.testing.assert_allclose(m[0, SLICES["jaw"]], [0.2, -0.05, 0.03])
    np.testing.assert_allclose(m[0, SLICES["eyelids"]], [0.7, 0.1])  # left <-> right
    np.testing.assert_array_equal(m[0, SLICES["expression"]], c[0, SLICES["expression"]])  # not mirrored (doc)
    # Eyes: the new left eye is the old right eye, reflected: S R S, and pitch/yaw/roll (-3, -8, -1).
    r_right = degrees_to_matrix(torch.tensor([-3.0, 8.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(torch.from_numpy(m[0, 3:9]), matrix_to_rotation_6d(S @ r_right @ S))
    torch.testing.assert_close(torch.from_numpy(m[0, 3:9]),
                               matrix_to_rotation_6d(degrees_to_matrix(torch.tensor([-3.0, -8.0, -1.0],
                                                                                    dtype=torch.float64))))
    np.testing.assert_allclose(mirror_coeffs(m), c)  # an involution
    with pytest.raises(ValueError, match="120"):
        mirror_coeffs(np.zeros(119))


def test_roll_coeffs_adds_exactly_the_angle():
    c = coeffs_with((10.0, 20.0, 5.0))
    r = roll_coeffs(c, 7.0)
    pyr = axis_angle_to_degrees(torch.from_numpy(r[:, SLICES["global_rot"]]))[0]
    torch.testing.assert_close(pyr, torch.tensor([10.0, 20.0, 12.0], dtype=torch.float64))
    np.testing.assert_array_equal(r[:, 3:], c[:, 3:])  # eyes / jaw / lids / expression are head-relative


def test_warp_image_directions():
    img = torch.zeros(3, 9, 9)
    img[:, 0, 4] = 1.0  # top centre
    img[:, 4, 1] = 0.5  # left of centre
    flipped = warp_image(img, flip=True)
    assert flipped[0, 0, 4] == 1.0 and flipped[0, 4, 7] == 0.5 and flipped[0, 4, 1] == 0.0
    rot = warp_image(img, angle_deg=90.0)  # counter-clockwise on screen: top -> left, left -> bottom
    assert rot[0, 4, 0] == pytest.approx(1.0) and rot[0, 7, 4] == pytest.approx(0.5)
    torch.testing.assert_close(warp_image(img), img)


def _project(flame, c: np.ndarray, px_per_m: float = 1000.0, centre: float = 64.0) -> np.ndarray:
    """Orthographic image coordinates (u right, v down) of the 51 static landmarks, ``(51, 2)``."""
    t = torch.from_numpy(c).float()
    out = flame(global_rot=t[:, SLICES["global_rot"]], jaw=t[:, SLICES["jaw"]])
    xyz = out.landmarks[0, 17:].double().numpy()
    return np.stack([centre + px_per_m * xyz[:, 0], centre - px_per_m * xyz[:, 1]], axis=1)


def test_rotation_matches_flame_proxy_projection():
    """Rotating the image of a posed proxy head = posing it with roll + angle (up to a translation)."""
    from flap.flame import FlameModel
    from flap.flame.proxy import ensure_proxy_model

    flame = FlameModel(ensure_proxy_model())
    c = coeffs_with((10.0, 20.0, 5.0), jaw=(0.1, 0.0, 0.0))
    uv = _project(flame, c)
    angle = 12.0
    m = cv2.getRotationMatrix2D((63.5, 63.5), angle, 1.0)  # the matrix warp_image uses
    warped = uv @ m[:, :2].T + m[:, 2]
    expected = _project(flame, roll_coeffs(c, angle))
    wrong = _project(flame, roll_coeffs(c, -angle))
    centred = [p - p.mean(0) for p in (warped, expected, wrong)]
    # float32 FLAME landmarks (~0.1 m): ~1e-7 m = 1e-4 px; a wrong sign moves points by ~10 px.
    assert np.abs(centred[0] - centred[1]).max() < 1e-2
    assert np.abs(centred[0] - centred[2]).max() > 1.0


def test_flip_matches_flame_proxy_mirror():
    """Mirroring the posed proxy head's landmarks = posing it with mirrored coefficients.

    The proxy template is not exactly symmetric; reflections and rotations are isometries, so the
    set distance between the two must equal the template's own asymmetry (that of the neutral pose).
    """
    from flap.flame import FlameModel
    from flap.flame.proxy import ensure_proxy_model

    flame = FlameModel(ensure_proxy_model())

    def set_distance(a, b):
        d = np.linalg.norm(a[:, None] - b[None], axis=-1)
        return max(d.min(0).max(), d.min(1).max())

    def mirrored_image(c):
        uv = _project(flame, c)
        return np.stack([128.0 - uv[:, 0], uv[:, 1]], axis=1)

    neutral = coeffs_with((0.0, 0.0, 0.0), jaw=(0.0, 0.0, 0.0))
    asym = set_distance(mirrored_image(neutral), _project(flame, neutral))
    c = coeffs_with((8.0, 25.0, 10.0), jaw=(0.0, 0.0, 0.0))
    got = set_distance(mirrored_image(c), _project(flame, mirror_coeffs(c)))
    not_mirrored = set_distance(mirrored_image(c), _project(flame, c))
    assert got <= asym + 0.05  # px, float32 rounding
    assert not_mirrored > asym + 3.0


def test_pair_augment_is_consistent():
    rng = np.random.default_rng(0)
    c = coeffs_with()
    ref, tgt = torch.rand(3, 16, 16), torch.rand(3, 16, 16)
    aug = PairAugment(flip=1.0, rotate_deg=0.0, scale=0.0, shift=0.0)
    r2, t2, rc, tc = aug(rng, ref, tgt, c[0], c[0])
    torch.testing.assert_close(r2, ref.flip(-1))
    torch.testing.assert_close(t2, tgt.flip(-1))
    np.testing.assert_allclose(tc, mirror_coeffs(c)[0], atol=1e-12)
    aug = PairAugment(flip=0.0, rotate_deg=20.0, scale=0.0, shift=0.0)
    _, _, rc, tc = aug(np.random.default_rng(1), ref, tgt, c[0], c[0])
    a_ref, a_tgt = np.random.default_rng(1).uniform(-20, 20, size=3)[1:]  # after the flip draw
    for got, a in ((rc, a_ref), (tc, a_tgt)):
        pyr = axis_angle_to_degrees(torch.from_numpy(got[SLICES["global_rot"]]))
        assert float(pyr[2]) == pytest.approx(5.0 + a, abs=1e-9)
    assert rc[2] != tc[2]  # independent angles
    with pytest.raises(ValueError):
        PairAugment(flip=1.5)


def test_color_gain_hand_values():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 3).expand(3, 1, 3)  # black, mid grey, white per channel
    y = color_gain(x, [0.5, 1.0, 1.5])
    # [0, 1] units: 0, 0.5, 1 times the gain, white saturating at 1
    torch.testing.assert_close(y[0, 0], torch.tensor([-1.0, -0.5, 0.0]))
    torch.testing.assert_close(y[1, 0], torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(y[2, 0], torch.tensor([-1.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="3 positive"):
        color_gain(x, [1.0, 0.0, 1.0])


def test_pair_augment_color_is_shared_and_label_exact():
    c = coeffs_with()
    ref, tgt = torch.rand(3, 8, 8) * 1.6 - 0.8, torch.rand(3, 8, 8) * 1.6 - 0.8  # no saturation at gain <= 1.25
    aug = PairAugment(flip=0.0, rotate_deg=0.0, scale=0.0, shift=0.0, color=0.2)
    r2, t2, rc, tc = aug(np.random.default_rng(3), ref, tgt, c[0], c[0])
    gain_r = ((r2 + 1) / (ref + 1)).flatten(1)
    gain_t = ((t2 + 1) / (tgt + 1)).flatten(1)
    torch.testing.assert_close(gain_r, gain_r[:, :1].expand_as(gain_r))  # one gain per channel
    torch.testing.assert_close(gain_r, gain_t)  # the same gains on both frames
    assert float((gain_r[:, 0] - 1).abs().max()) <= 0.2 + 1e-6
    assert float((gain_r[:, 0] - 1).abs().min()) > 0  # it did change the colours
    np.testing.assert_allclose(rc, c[0], atol=1e-12)  # coefficients untouched (rotation by 0 deg: rounding only)
    np.testing.assert_allclose(tc, c[0], atol=1e-12)
    # off by default: the geometric draws alone, and no extra random draw (older configs augment as before)
    rng = np.random.default_rng(5)
    a = PairAugment(flip=0.5, rotate_deg=10.0)(rng, ref, tgt, c[0], c[0])
    draws = np.random.default_rng(5)
    flip = bool(draws.random() < 0.5)
    a_ref, a_tgt = draws.uniform(-10.0, 10.0, size=2)
    scale = float(draws.uniform(0.95, 1.05))
    dx, dy = draws.uniform(-0.03, 0.03, size=2)
    torch.testing.assert_close(a[0], warp_image(ref, flip, float(a_ref), scale, (float(dx), float(dy))))
    torch.testing.assert_close(a[1], warp_image(tgt, flip, float(a_tgt)))
    assert rng.random() == draws.random()  # both generators at the same state
    with pytest.raises(ValueError):
        PairAugment(color=1.0)
