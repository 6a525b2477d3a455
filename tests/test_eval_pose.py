"""Pose / jaw / expression following and the signal helpers, on synthetic sequences with known answers."""

import numpy as np
import pytest
import torch

from flap.eval.pose import (
    align_sequences,
    expression_following,
    jaw_following,
    jaw_yaw_coupling,
    lip_following,
    pose_following,
)
from flap.flame.coeffs import HeadCoeffs
from flap.signals import (
    best_lag_correlation,
    inner_lip_gap,
    landmark_jitter,
    mouth_opening,
    pearson,
    speech_envelope,
)


def _coeffs(pyr_deg, fps=25.0, jaw=None):
    c = HeadCoeffs.neutral(len(pyr_deg), fps, dtype=torch.float64)
    c.set_pose_degrees(pyr_deg)
    if jaw is not None:
        c.data[:, 15] = torch.as_tensor(jaw, dtype=c.data.dtype)
    return c


def _wave(t=100, amp=(10.0, 20.0, 5.0)):
    s = np.sin(np.linspace(0, 4 * np.pi, t))
    return np.stack([amp[0] * s, amp[1] * np.cos(np.linspace(0, 3 * np.pi, t)), amp[2] * s**2], axis=1)


def test_identical_request_gives_zero_error_and_unit_correlation():
    pyr = _wave()
    res = pose_following(_coeffs(pyr), _coeffs(pyr))
    assert res["mae_deg"] == pytest.approx(0.0, abs=1e-6)
    assert res["pose_error_deg"] == pytest.approx(0.0, abs=1e-4)
    for ax in ("pitch", "yaw", "roll"):
        assert res[f"corr_{ax}"] == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(res["per_frame"]["requested"], pyr, atol=1e-6)


def test_known_offset_and_sign_flip():
    pyr = _wave()
    shifted = pyr + [0.0, 3.0, 0.0]  # 3° more yaw in every frame
    res = pose_following(_coeffs(pyr), _coeffs(shifted))
    assert res["mae_deg_yaw"] == pytest.approx(3.0, abs=1e-4)
    assert res["mae_deg_pitch"] == pytest.approx(0.0, abs=1e-4)
    assert res["mae_deg"] == pytest.approx(1.0, abs=1e-4)  # mean over the three axes
    assert res["bias_deg_yaw"] == pytest.approx(3.0, abs=1e-4)
    # R_req^T R_trk = Rx(p)^T Ry(3°) Rx(p): a 3° rotation in every frame, whatever pitch and roll
    assert res["pose_error_deg"] == pytest.approx(3.0, abs=1e-4)
    assert res["pose_error_deg_max"] == pytest.approx(3.0, abs=1e-4)
    assert res["mae_centered_deg"] == pytest.approx(0.0, abs=1e-4)
    assert res["corr_yaw"] == pytest.approx(1.0, abs=1e-9)
    flipped = pose_following(_coeffs(pyr), _coeffs(pyr * [1, -1, 1]))
    assert flipped["corr_yaw"] == pytest.approx(-1.0, abs=1e-9)
    assert flipped["mae_deg_yaw"] == pytest.approx(2 * np.abs(pyr[:, 1]).mean(), abs=1e-4)


def test_constant_request_has_undefined_correlation():
    pyr = np.zeros((30, 3))
    res = pose_following(_coeffs(pyr), _coeffs(pyr + [0, 0, 2.0]))
    assert np.isnan(res["corr_pitch"])
    assert res["mae_deg_roll"] == pytest.approx(2.0, abs=1e-4)


def test_invalid_frames_are_left_out():
    pyr = _wave(50)
    bad = pyr.copy()
    bad[10:20, 0] += 40.0  # tracker failures on frames 10..19
    valid = np.ones(50, bool)
    valid[10:20] = False
    res = pose_following(_coeffs(pyr), _coeffs(bad), valid)
    assert res["mae_deg_pitch"] == pytest.approx(0.0, abs=1e-4)
    assert res["frames_valid"] == 40
    with pytest.raises(ValueError, match="valid has 3 entries"):
        pose_following(_coeffs(pyr), _coeffs(bad), valid[:3])


def test_different_fps_is_resampled_on_time():
    t_req = np.arange(50) / 25.0
    t_trk = np.arange(100) / 50.0
    req = _coeffs(np.stack([10 * np.sin(t_req), 0 * t_req, 0 * t_req], 1), fps=25)
    trk = _coeffs(np.stack([10 * np.sin(t_trk), 0 * t_trk, 0 * t_trk], 1), fps=50)
    r, k, keep, info = align_sequences(req, trk)
    assert info["frames_compared"] == 50 and keep.all()
    res = pose_following(req, trk)
    assert res["mae_deg_pitch"] < 0.05  # only the linear resampling error of a slow sine


def test_jaw_and_expression_following():
    t = 80
    jaw = 0.2 * np.abs(np.sin(np.linspace(0, 6 * np.pi, t)))
    req, trk = _coeffs(np.zeros((t, 3)), jaw=jaw), _coeffs(np.zeros((t, 3)), jaw=0.5 * jaw + 0.01)
    res = jaw_following(req, trk)
    assert res["jaw_corr"] == pytest.approx(1.0, abs=1e-9)  # scaled copy: perfectly correlated
    assert res["jaw_mae_deg"] == pytest.approx(np.degrees(np.abs(0.5 * jaw - 0.01)).mean(), rel=1e-5)
    rng = np.random.default_rng(0)
    exp = rng.normal(size=(t, 100))
    req.data[:, 20:120] = torch.from_numpy(exp)
    trk.data[:, 20:120] = torch.from_numpy(-exp)
    assert expression_following(req, trk)["expression_corr"] == pytest.approx(-1.0, abs=1e-9)


def test_pearson_and_best_lag():
    x = np.sin(np.linspace(0, 10, 200)) + 0.1 * np.random.default_rng(0).normal(size=200)
    assert pearson(x, 3 * x + 1) == pytest.approx(1.0)
    assert np.isnan(pearson(np.ones(10), x[:10]))
    delayed = np.roll(x, 3)  # signal follows the reference by 3 frames
    r, lag = best_lag_correlation(delayed, x, max_lag=5)
    assert lag == 3 and r > 0.99
    with pytest.raises(ValueError, match="different lengths"):
        pearson(x, x[:-1])


def test_speech_envelope_hand_computed():
    sr, fps = 100, 10  # 10 samples per frame
    audio = np.zeros(100)
    audio[40:50] = 2.0  # frame 4 is loud
    env = speech_envelope(audio, sr, fps, 10)
    # frame t covers samples [(t-1)*10, (t+1)*10): frames 4 and 5 contain the burst (RMS of 10 twos in 20)
    np.testing.assert_allclose(env[[4, 5]], np.sqrt(40 / 20))
    assert env[[0, 1, 2, 3, 6, 7, 8, 9]].max() == 0


def _face(t, gap):
    lm = np.zeros((t, 68, 2))
    lm[:, 36] = [100, 100]
    lm[:, 45] = [200, 100]  # inter-ocular distance 100 px
    lm[:, [61, 62, 63], 1] = 200
    lm[:, [67, 66, 65], 1] = 200 + np.asarray(gap)[:, None]
    return lm


def test_mouth_opening_and_jitter():
    gap = np.array([0, 10, 20, 30.0])
    np.testing.assert_allclose(mouth_opening(_face(4, gap)), gap / 100)
    steady = landmark_jitter(_face(10, np.zeros(10)))
    assert steady["jitter_px"] == 0 and steady["frames"] == 8
    zig = _face(10, np.zeros(10))
    zig[:, :, 0] += np.array([0, 1] * 5)[:, None]  # ±1 px zig-zag: second difference 2 px everywhere
    res = landmark_jitter(zig)
    assert res["jitter_px"] == pytest.approx(2.0)
    assert res["jitter_iod"] == pytest.approx(0.02)
    valid = np.ones(10, bool)
    valid[5] = False
    assert landmark_jitter(zig, valid)["frames"] == 5


def test_jaw_yaw_coupling_recovers_a_known_slope_per_sequence():
    """jaw = person offset - 0.3 deg per deg of |yaw|: r = -1 and slope -0.3 after per-sequence
    centring, whatever each person's own mean jaw; a sequence with still yaw is skipped."""
    yaw_a = np.linspace(-20.0, 25.0, 60)            # turns through 0: |yaw| is not linear in yaw
    yaw_b = 10.0 + 8.0 * np.sin(np.linspace(0, 6, 40))
    seqs = []
    for yaw, offset in ((yaw_a, 12.0), (yaw_b, -3.0)):
        pyr = np.zeros((len(yaw), 3))
        pyr[:, 1] = yaw
        seqs.append(_coeffs(pyr, jaw=np.radians(offset - 0.3 * np.abs(yaw))).data.numpy())
    still = _coeffs(np.zeros((30, 3)), jaw=np.radians(np.linspace(0, 20, 30))).data.numpy()
    out = jaw_yaw_coupling([*seqs, still])
    assert out["sequences"] == 2 and out["frames"] == 100
    assert out["corr"] == pytest.approx(-1.0, abs=1e-9)
    assert out["slope_deg_per_deg"] == pytest.approx(-0.3, abs=1e-6)
    with pytest.raises(ValueError, match="yaw std"):
        jaw_yaw_coupling([still])


def test_inner_lip_gap_hand_computed_and_lip_following():
    lmk = np.zeros((4, 68, 2))
    gaps_px = np.array([0.0, 10.0, 20.0, 5.0])
    for (up, low), extra in zip(((61, 67), (62, 66), (63, 65)), (0.0, 3.0, -3.0)):
        lmk[:, up] = [50.0, 100.0]
        lmk[:, low, 0] = 50.0
        lmk[:, low, 1] = 100.0 + gaps_px + extra * (gaps_px > 0)  # the pairs' mean distance is the gap
    scale = np.array([1000.0, 1000.0, 2000.0, 500.0])  # px per metre
    gap = inner_lip_gap(lmk, scale)
    np.testing.assert_allclose(gap, [0.0, 0.010, 0.010, 0.010])
    # the requested jaw opens exactly as the seen gap (metres -> radians by any positive factor): r = 1
    gap = np.array([0.0, 0.004, 0.008, 0.002, 0.006])
    data = np.zeros((5, 120))
    data[:, 15] = gap * 20.0  # jaw x-rotation in radians
    req = HeadCoeffs(torch.tensor(data), fps=25)
    assert lip_following(req, gap)["lip_corr"] == pytest.approx(1.0)
    assert lip_following(req, -gap)["lip_corr"] == pytest.approx(-1.0)
    # frames without landmarks are left out; with fewer than 3 valid frames r is undefined
    noisy = gap.copy()
    noisy[1] = 1.0
    assert lip_following(req, noisy, valid=[True, False, True, True, True])["lip_corr"] == pytest.approx(1.0)
    assert np.isnan(lip_following(req, gap, valid=[True, True, False, False, False])["lip_corr"])
    with pytest.raises(ValueError, match="inner_lip_gap"):
        inner_lip_gap(lmk[:, :60], scale)
    with pytest.raises(ValueError, match="scales"):
        inner_lip_gap(lmk, scale[:3])
    np.testing.assert_allclose(inner_lip_gap(lmk), gaps_px)  # pixels without a scale
