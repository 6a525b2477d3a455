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
