"""flap.audio.motion: sampled head motion (statistics, fit, fill-to-target, speech gate) and its use in predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flap.audio.model import Audio2Flame
from flap.audio.motion import add_head_motion, fit_head_motion, smoothed_noise, speech_activity
from flap.flame.coeffs import SLICES, HeadCoeffs


def _acf(x, k):
    x = x - x.mean()
    return float((x[:-k] * x[k:]).sum() / (x * x).sum())


def test_smoothed_noise_has_unit_variance_and_gaussian_autocorrelation():
    s, t = 4.0, 40_000
    x = smoothed_noise(t, s, torch.Generator().manual_seed(0)).numpy()
    assert x.shape == (t,)
    # about t / (2 s sqrt(pi)) ≈ 2,800 independent samples: the variance's standard error is ≈ 0.027
    assert x.var() == pytest.approx(1.0, abs=0.15)
    for k in (2, 4, 8):  # exp(-k^2 / (4 s^2)): 0.94, 0.78, 0.37; standard error of each estimate ≈ 0.02
        assert _acf(x, k) == pytest.approx(np.exp(-(k**2) / (4 * s * s)), abs=0.1)
    white = smoothed_noise(t, 0.0, torch.Generator().manual_seed(0)).numpy()
    assert abs(_acf(white, 1)) < 0.05  # white: lag-1 correlation ~ N(0, 1/t)


def test_fit_head_motion_recovers_the_sampled_parameters():
    g = torch.Generator().manual_seed(1)
    std, smooth = [1.0, 4.0, 2.0], [2.0, 5.0, 8.0]
    clips = [np.stack([std[a] * smoothed_noise(2000, smooth[a], g).numpy() for a in range(3)], 1) for _ in range(8)]
    fit = fit_head_motion(clips)
    assert fit["std_deg"] == pytest.approx(std, rel=0.15)  # 8 x 2,000 frames, widths up to 8 frames
    assert fit["smooth_frames"] == pytest.approx(smooth, abs=1.0)
    with pytest.raises(ValueError, match="clip 1"):
        fit_head_motion([clips[0], np.zeros((5, 2))])
    with pytest.raises(ValueError, match="no clips"):
        fit_head_motion([])


def _moving(t=200, yaw_amp_deg=0.0):
    c = HeadCoeffs.neutral(t)
    c.data[:, SLICES["jaw"].start] = torch.linspace(0, 0.3, t)
    c.data[:, 20:] = torch.randn(t, 100, generator=torch.Generator().manual_seed(3))
    yaw = yaw_amp_deg * np.sin(np.linspace(0, 6 * np.pi, t))
    return c.set_pose_degrees(np.stack([np.zeros(t), yaw, np.zeros(t)], 1))


def test_add_head_motion_fills_only_the_missing_spread_and_touches_only_the_rotation():
    c = _moving(yaw_amp_deg=10.0)  # yaw std 10 / sqrt(2) ≈ 7.07° > the 4° target: nothing to fill anywhere
    out = add_head_motion(c, [0.0, 4.0, 0.0], [3.0, 3.0, 3.0], torch.Generator().manual_seed(0))
    assert torch.equal(out.data[:, 3:], c.data[:, 3:])  # jaw, expression, eyes, eyelids untouched
    assert torch.equal(c.data, _moving(yaw_amp_deg=10.0).data)  # input not modified
    assert out.pose_degrees().numpy() == pytest.approx(c.pose_degrees().numpy(), abs=1e-4)  # composed with identity
    still = _moving()  # the head does not move: pitch is filled from 0 towards 2°, yaw and roll stay 0
    pose = add_head_motion(still, [2.0, 0.0, 0.0], [3.0, 3.0, 3.0], torch.Generator().manual_seed(0)).pose_degrees()
    assert np.abs(pose[:, 1:].numpy()).max() < 1e-4
    assert 1.0 < pose[:, 0].numpy().std() < 3.0  # 200 frames of width-3 noise: the sample std is 2 ± ~0.3


def test_add_head_motion_follows_the_activity_and_rejects_bad_arguments():
    c = _moving()
    activity = np.zeros(200)
    activity[100:] = 1.0
    out = add_head_motion(c, [2.0, 4.0, 2.0], [3.0, 3.0, 3.0], torch.Generator().manual_seed(0), activity)
    pose = out.pose_degrees().numpy()
    assert np.abs(pose[:100]).max() < 1e-4 and pose[100:, 1].std() > 1.0
    with pytest.raises(ValueError, match="std_deg"):
        add_head_motion(c, [1.0, 2.0], [3.0, 3.0, 3.0])
    with pytest.raises(ValueError, match="smooth_frames"):
        add_head_motion(c, [1.0, 2.0, 3.0], [3.0, -1.0, 3.0])
    with pytest.raises(ValueError, match="activity"):
        add_head_motion(c, [1.0, 2.0, 3.0], [3.0, 3.0, 3.0], activity=np.ones(10))


def test_speech_activity_is_zero_in_silence_and_one_in_speech():
    sr, fps = 16000, 25.0
    audio = np.zeros(4 * sr, np.float32)
    audio[2 * sr :] = 0.1 * np.sin(2 * np.pi * 220 * np.arange(2 * sr) / sr)  # -23 dBFS tone after 2 s
    act = speech_activity(audio, sr, fps, 100)
    assert act.shape == (100,)
    assert np.all(act[:40] == 0.0) and act[60:] == pytest.approx(1.0, abs=1e-12)  # 0.4 s smoothing: ±5 frames at 2 s
    assert np.all(np.diff(act) >= -1e-12)
    assert np.all(speech_activity(np.zeros(sr, np.float32), sr, fps, 25) == 0.0)


def test_predict_adds_reproducible_motion_only_where_there_is_speech():
    torch.manual_seed(0)
    model = Audio2Flame(hidden_dim=16, dilations=(1,)).eval()
    rng = np.random.default_rng(0)
    audio = np.concatenate([np.zeros(32000), rng.normal(0, 0.1, 48000)]).astype(np.float32)  # 2 s silence, 3 s noise
    plain = model.predict(audio)
    model.register_to_config(head_motion={"std_deg": [2.0, 4.0, 2.0], "smooth_frames": [4.0, 5.0, 5.5]})
    a, b, other = model.predict(audio), model.predict(audio), model.predict(audio, seed=1)
    assert torch.equal(a.data, b.data) and not torch.equal(a.data, other.data)
    assert torch.equal(model.predict(audio, sample_motion=False).data, plain.data)
    assert torch.equal(a.data[:, 3:], plain.data[:, 3:])
    pose = a.pose_degrees().numpy()
    assert np.abs(pose[:40] - plain.pose_degrees().numpy()[:40]).max() < 1e-4  # silence: no sampled motion
    assert pose[60:, 1].std() > 1.0
    model.register_to_config(head_motion={"std_deg": [2.0, 4.0, 2.0]})
    with pytest.raises(ValueError, match="head_motion: expected keys std_deg and smooth_frames"):
        model.predict(audio)


def test_pipeline_seed_reaches_the_sampled_head_motion():
    from flap.testing import tiny_random_pipeline

    pipe = tiny_random_pipeline(audio2flame=True)
    pipe.audio2flame.register_to_config(head_motion={"std_deg": [2.0, 4.0, 2.0], "smooth_frames": [4.0, 5.0, 5.5]})
    audio = np.random.default_rng(0).normal(0, 0.1, 48000).astype(np.float32)
    a, b, other = (pipe.coefficients(audio, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.data, b.data) and not torch.equal(a.data[:, :3], other.data[:, :3])
    assert torch.equal(a.data, pipe.audio2flame.predict(audio, num_frames=a.num_frames, seed=0).data)
