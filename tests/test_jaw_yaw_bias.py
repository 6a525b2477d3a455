"""``tools/jaw_yaw_bias.py``: pooled and per-clip coupling from a prepared folder, its plot, clear errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from flap.flame.coeffs import HeadCoeffs

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("jaw_yaw_bias", ROOT / "tools" / "jaw_yaw_bias.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def _clip(root: Path, name: str, yaw_deg: np.ndarray, jaw_deg: np.ndarray) -> None:
    c = HeadCoeffs.neutral(len(yaw_deg), 25.0, dtype=torch.float64)
    pyr = np.zeros((len(yaw_deg), 3))
    pyr[:, 1] = yaw_deg
    c.set_pose_degrees(pyr)
    c.data[:, 15] = torch.from_numpy(np.radians(jaw_deg))
    (root / "clips" / name).mkdir(parents=True)
    np.savez(root / "clips" / name / "coeffs.npz", coeffs=c.data.numpy())


def test_reports_the_built_in_slope_and_plots(tmp_path, capsys):
    yaw = np.linspace(0.0, 30.0, 80)
    _clip(tmp_path, "a", yaw, 8.0 - 0.25 * yaw)
    _clip(tmp_path, "still", np.zeros(40), np.linspace(0, 10, 40))  # yaw does not move: skipped
    assert tool.main([str(tmp_path), "--plot", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    assert "pooled over 1 clips, 80 frames: r = -1.000, slope -0.250" in out
    assert "still" not in out
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_clear_errors(tmp_path, capsys):
    assert tool.main([str(tmp_path)]) == 1
    assert "no clips/*/coeffs.npz" in capsys.readouterr().err
    (tmp_path / "p.png").write_bytes(b"keep")
    assert tool.main([str(tmp_path), "--plot", str(tmp_path / "p.png")]) == 2
    assert "exists" in capsys.readouterr().err
    assert (tmp_path / "p.png").read_bytes() == b"keep"
