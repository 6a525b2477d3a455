"""Sources, mixing, scaling and the one-call `apply_controls` (flap.control.apply / sources)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from flap.control import (
    ControlConfig,
    apply_controls,
    blink_track,
    fit_length,
    load_coeffs,
    load_pose_script,
    mix_pose_expression,
    scale_parts,
)
from flap.flame.coeffs import HeadCoeffs
from flap.flame.rotations import axis_angle_to_degrees, degrees_to_axis_angle


def _ramp(num_frames: int, fps: float = 25.0, offset: float = 0.0) -> HeadCoeffs:
    """Every column of frame i holds offset + i (a valid-enough condition whose frame is readable)."""
    data = offset + torch.arange(num_frames, dtype=torch.float64)[:, None].expand(num_frames, 120) / 100.0
    return HeadCoeffs(data.clone(), fps)


def test_fit_length_resamples_by_time_hold_and_loop():
    src = _ramp(10, fps=50.0)  # 0.2 s
    out = fit_length(src, 8, fps=25.0, extend="hold")
    np.testing.assert_allclose(out.data[:, 0].numpy() * 100, [0, 2, 4, 6, 8, 9, 9, 9])
    assert out.fps == 25.0
    out = fit_length(_ramp(3), 7, extend="loop")
    np.testing.assert_allclose(out.data[:, 0].numpy() * 100, [0, 1, 2, 0, 1, 2, 0])
    image = fit_length(_ramp(1), 4)  # a single tracked image is held
    np.testing.assert_array_equal(image.data.numpy(), 0.0)


def test_mix_pose_from_one_source_expression_from_another():
    pose = _ramp(6, offset=0.0)
    expr = _ramp(4, offset=1.0)
    out = mix_pose_expression(pose, expr)
    np.testing.assert_array_equal(out.global_rot.numpy(), pose.global_rot.numpy())
    np.testing.assert_array_equal(out.c_exp[:4].numpy(), expr.c_exp.numpy())
    np.testing.assert_array_equal(out.c_exp[4:].numpy(), expr.c_exp[[3, 3]].numpy())  # held


def test_scale_parts_hand_computed():
    src = HeadCoeffs.neutral(2, dtype=torch.float64)
    src.data[:, 20:25] = 2.0
    src.data[:, 15:18] = degrees_to_axis_angle(torch.tensor([20.0, 0.0, 0.0], dtype=torch.float64))
    src.set_pose_degrees([0.0, 30.0, 0.0])
    src.data[:, 18:20] = 0.8
    out = scale_parts(src, expression_scale=0.5, jaw_scale=1.5, pose_scale=0.0, eyelid_scale=2.0)
    np.testing.assert_array_equal(out.expression[:, :5].numpy(), 1.0)
    np.testing.assert_allclose(axis_angle_to_degrees(out.jaw).numpy(), [[30, 0, 0]] * 2, atol=1e-9)
    np.testing.assert_array_equal(out.global_rot.numpy(), 0.0)
    np.testing.assert_array_equal(out.eyelids.numpy(), 1.0)  # clipped
    np.testing.assert_array_equal(out.eyes.numpy(), src.eyes.numpy())
    with pytest.raises(ValueError, match="jaw_scale"):
        scale_parts(src, jaw_scale=-1)


def test_apply_controls_full_chain_from_files(tmp_path):
    audio = HeadCoeffs.neutral(50, dtype=torch.float64).set_pose_degrees([3.0, 0.0, 0.0])
    tracked = HeadCoeffs.neutral(20, dtype=torch.float64)
    tracked.data[:, 20:120] = torch.linspace(-1, 1, 100, dtype=torch.float64)
    tracked.set_pose_degrees([0.0, -20.0, 0.0])
    path = tracked.save(tmp_path / "tracked.npz")
    before = audio.data.clone()
    cfg = OmegaConf.create(
        {
            "pose": "fixed_front",
            "expression_from": str(path),
            "expression_scale": 0.5,
            "blinks_per_minute": 12,
            "seed": 1,
            "other_generation_key": 3,
        }
    )
    out = apply_controls(audio, cfg, strict=False)
    torch.testing.assert_close(audio.data, before)  # input untouched
    assert out.num_frames == 50 and out.fps == audio.fps
    np.testing.assert_array_equal(out.global_rot.numpy(), 0.0)  # fixed_front
    np.testing.assert_allclose(out.expression.numpy(), 0.5 * tracked.expression[[0] * 50].numpy())
    np.testing.assert_allclose(out.eyelids.numpy(), blink_track(50, 25.0, 12, seed=1)[:, None].repeat(2, 1))
    with pytest.raises(ValueError, match="other_generation_key"):
        apply_controls(audio, cfg)  # strict by default


def test_pose_from_another_source_then_overlay_script():
    audio = HeadCoeffs.neutral(10, dtype=torch.float64)
    motion = HeadCoeffs.neutral(10, dtype=torch.float64).set_pose_degrees([0.0, 10.0, 0.0])
    out = apply_controls(
        audio, ControlConfig(pose_from=motion, pose={"mode": "overlay", "keyframes": [{"t": 0, "yaw": 5}]})
    )
    np.testing.assert_allclose(
        out.pose_degrees().numpy(), [[0, 15, 0]] * 10, atol=1e-9
    )  # same axis: angles add
    out = apply_controls(audio, pose_from=motion.data.numpy(), pose="none")
    np.testing.assert_allclose(out.pose_degrees().numpy(), [[0, 10, 0]] * 10, atol=1e-9)


def test_hydra_pose_is_a_plain_key(tmp_path):
    """`pose=` of generate.yaml is a plain key: a bundled name (`nod.yaml`) or any path."""
    from hydra import compose, initialize_config_dir

    from flap import CONFIG_DIR

    script = tmp_path / "mine.yaml"
    script.write_text("mode: replace\nkeyframes:\n  - {t: 0, roll: 7}\n")
    audio = HeadCoeffs.neutral(4, dtype=torch.float64)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        nod = compose("generate", overrides=["pose=nod.yaml", "blinks_per_minute=null"])
        mine = compose("generate", overrides=[f"pose={script}", "blinks_per_minute=null"])
    assert nod.pose == "nod.yaml"
    out = apply_controls(audio, ControlConfig.from_mapping(nod, strict=False))
    np.testing.assert_allclose(
        out.pose_degrees().numpy()[:, 0], load_pose_script("nod").sample(4, 25.0)[:, 0], atol=1e-9
    )
    out = apply_controls(audio, ControlConfig.from_mapping(mine, strict=False))
    np.testing.assert_allclose(out.pose_degrees().numpy(), [[0, 0, 7]] * 4, atol=1e-9)


def test_load_coeffs_sources_and_errors(tmp_path):
    expr_only = load_coeffs(np.ones((5, 100)), fps=30.0)
    assert expr_only.fps == 30.0 and (expr_only.expression == 1).all() and (expr_only.global_rot == 0).all()
    assert load_coeffs(torch.zeros(3, 120)).num_frames == 3
    with pytest.raises(ValueError, match=r"\(T, 120\)"):
        load_coeffs(np.zeros((3, 7)))
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_coeffs(tmp_path / "missing.npz")
    bad = tmp_path / "coeffs.txt"
    bad.write_text("1 2 3")
    with pytest.raises(ValueError, match="unsupported suffix '.txt'"):
        load_coeffs(bad)
    with pytest.raises(ValueError, match="unknown key 'blink_rate'"):
        apply_controls(HeadCoeffs.neutral(2), blink_rate=3)


def test_image_and_video_sources_go_through_the_tracker(monkeypatch, shared_data):
    """Image and video sources are tracked with flap.tracking.track_video (real tracker, short clip)."""
    import flap.tracking

    real = flap.tracking.track_video
    calls = []

    def short_track_video(path, **kwargs):
        calls.append(path)
        return real(path, max_frames=12, **kwargs)

    monkeypatch.setattr(flap.tracking, "track_video", short_track_video)
    portrait = shared_data / "portraits" / "liveportrait_d9.jpg"  # open mouth
    image = load_coeffs(portrait)
    assert calls[-1] == portrait and image.num_frames == 1
    assert image.jaw.abs().sum() > 0 and image.expression.abs().sum() > 0  # really tracked
    video = load_coeffs(shared_data / "video" / "liveportrait_d0.mp4")
    assert video.num_frames == 12 and video.fps == pytest.approx(25.0)
    out = apply_controls(HeadCoeffs.neutral(10), expression_from=portrait)
    torch.testing.assert_close(out.expression, image.expression.expand(10, -1))  # held on every frame
