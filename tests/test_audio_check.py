"""flap.audio.check: held-out jaw correlation and silence checks on synthetic clips."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from flap.audio.check import main, pose_std_ratio, silence_check
from flap.audio.model import Audio2Flame
from flap.audio.synthetic import synthetic_pairs
from flap.flame.coeffs import HeadCoeffs


def test_silence_check_values():
    model = Audio2Flame().eval()  # untrained: outputs the stored mean (neutral)
    coeffs = HeadCoeffs.neutral(100)
    coeffs.data[:, 15] = torch.linspace(0.0, 0.1, 100)
    out = silence_check(model, [coeffs])
    assert out["silence_jaw_mean"] == 0.0
    assert np.isclose(out["train_jaw_p10"], np.percentile(np.linspace(0, 0.1, 100), 10), atol=1e-6)
    assert out["silence_rot_std_deg"] == 0.0


def test_cli(tmp_path, capsys):
    for name, audio, coeffs in synthetic_pairs(3):
        sf.write(tmp_path / f"{name}.wav", audio, 16000)
        coeffs.save(tmp_path / f"{name}.npz")
    Audio2Flame(hidden_dim=16).save_pretrained(tmp_path / "model")
    result = main(
        [
            "--model",
            str(tmp_path / "model"),
            "--tracked",
            str(tmp_path),
            "--media",
            str(tmp_path / "*.wav"),
            "--held-out",
            "synth_2",
        ]
    )
    assert set(result["held_out"]) == {"synth_2"}
    assert np.isnan(result["held_out"]["synth_2"]["r"])  # constant prediction: correlation undefined
    assert result["held_out"]["synth_2"]["pose_std_deg"] == [0.0, 0.0, 0.0]  # constant prediction
    assert '"silence_jaw_mean"' in capsys.readouterr().out


def test_pose_std_ratio_by_hand():
    held = {"a": {"pose_std_deg": [1.0, 2.0, 0.0], "real_pose_std_deg": [2.0, 8.0, 1.0]},
            "b": {"pose_std_deg": [3.0, 4.0, 0.0], "real_pose_std_deg": [2.0, 4.0, 1.0]}}
    assert pose_std_ratio(held) == pytest.approx({"pitch": 1.0, "yaw": 0.5, "roll": 0.0})


def test_pose_gain_scales_rotation_around_its_mean_only():
    model = Audio2Flame(hidden_dim=16).eval()
    data = HeadCoeffs.neutral(5).data.clone()
    data[:, 1] = torch.tensor([0.1, 0.2, 0.3, 0.2, 0.1])  # yaw component, mean 0.18
    data[:, 15] = 0.2  # jaw
    model.register_to_config(pose_gain=[1.0, 2.0, 1.0])
    out = model._apply_pose_gain(data.clone())
    assert out[:, 1].tolist() == pytest.approx([0.02, 0.22, 0.42, 0.22, 0.02])  # 0.18 + 2 (x - 0.18)
    assert torch.equal(out[:, 3:], data[:, 3:]) and torch.equal(out[:, [0, 2]], data[:, [0, 2]])
    model.register_to_config(pose_gain=None)
    assert torch.equal(model._apply_pose_gain(data.clone()), data)


def test_calibrate_cli_writes_new_model_with_gain(tmp_path, monkeypatch):
    from flap.audio import calibrate

    for name, audio, coeffs in synthetic_pairs(3):
        sf.write(tmp_path / f"{name}.wav", audio, 16000)
        coeffs.save(tmp_path / f"{name}.npz")
    Audio2Flame(hidden_dim=16).save_pretrained(tmp_path / "model")
    ratios = iter([{"pitch": 0.5, "yaw": 0.25, "roll": 2.0}])
    monkeypatch.setattr(calibrate, "pose_std_ratio", lambda held: next(ratios))
    args = ["--model", str(tmp_path / "model"), "--tracked", str(tmp_path), "--media", str(tmp_path / "*.wav"),
            "--held-out", "synth_2"]
    result = calibrate.main([*args, "--out", str(tmp_path / "cal")])
    assert result["clips"] == 2 and result["pose_gain"] == {"pitch": 2.0, "yaw": 4.0, "roll": 0.5}
    assert Audio2Flame.from_pretrained(tmp_path / "cal").config.pose_gain == [2.0, 4.0, 0.5]
    real = [HeadCoeffs.load(tmp_path / f"synth_{i}.npz").pose_degrees().double().numpy() for i in (0, 1)]
    assert result["head_motion"]["std_deg"] == pytest.approx(np.mean([p.std(0) for p in real], 0).tolist())
    assert Audio2Flame.from_pretrained(tmp_path / "cal").config.head_motion == result["head_motion"]
    assert Audio2Flame.from_pretrained(tmp_path / "model").config.get("pose_gain") is None  # input untouched
    with pytest.raises(SystemExit):
        calibrate.main([*args, "--out", str(tmp_path / "model")])
    monkeypatch.undo()
    with pytest.raises(ValueError, match="does not move"):  # an untrained model predicts no motion at all
        calibrate.pose_gain(Audio2Flame(hidden_dim=16).eval(), calibrate.find_clips([str(tmp_path / "*.wav")],
                                                                                   str(tmp_path)))
