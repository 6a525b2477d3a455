"""``tools/finetune_curve.py``: snapshot thinning, the clear error without snapshots, the plot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("finetune_curve", ROOT / "tools" / "finetune_curve.py")
curve = importlib.util.module_from_spec(spec)
spec.loader.exec_module(curve)


def test_thin_snapshots_keeps_first_gaps_and_last():
    snaps = [(m, Path(f"min{m}")) for m in (5.3, 10.3, 15.3, 18.2, 20.3, 25.3, 27.0)]
    assert [m for m, _ in curve.thin_snapshots(snaps, 10)] == [5.3, 15.3, 25.3, 27.0]
    assert curve.thin_snapshots(snaps, 0) == snaps
    assert curve.thin_snapshots([], 5) == []


def test_no_snapshots_is_one_clear_error(tmp_path, capsys):
    assert curve.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no snapshots" in err and "snapshot_minutes" in err and len(err.strip().splitlines()) == 1


def test_plot_curve_writes_png(tmp_path):
    rows = [{"minutes": 5.0, "pose_error_deg": 9.6, "identity_distance": 0.70, "face_detected_ratio_dlib": 1.0},
            {"minutes": 10.0, "pose_error_deg": 6.1, "identity_distance": 0.55, "face_detected_ratio_dlib": 0.9}]
    path = curve.plot_curve(rows, tmp_path / "curve.png", "test")
    assert path.read_bytes()[:4] == b"\x89PNG"
