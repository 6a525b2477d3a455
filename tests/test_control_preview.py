"""Mesh previews (flap.control.preview, tools/preview_pose.py, tools/preview_flame.py) with the proxy model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from flap.control.preview import iter_preview_frames, script_coeffs, write_preview
from flap.flame.coeffs import HeadCoeffs
from flap.io import read_video

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model():
    from flap.flame.model import FlameModel

    return FlameModel()  # real FLAME if installed, else the proxy (built on demand)


def test_script_coeffs_length_and_pose():
    c = script_coeffs("turn_left", fps=25.0)  # last keyframe at 1.5 s = frame 37.5 -> frames 0..38
    assert c.num_frames == 39 and c.fps == 25.0
    np.testing.assert_allclose(c.pose_degrees()[-1].numpy(), [0, 30, 0], atol=1e-4)
    assert script_coeffs("nod", duration=2.0).num_frames == 50


def test_preview_frames_follow_the_pose(model):
    coeffs = HeadCoeffs.neutral(3).set_pose_degrees([[0, 0, 0], [0, 30, 0], [0, 0, 0]])
    frames = list(iter_preview_frames(coeffs, model=model, size=(96, 80), annotate=False))
    assert len(frames) == 3 and frames[0].shape == (96, 80, 3) and frames[0].dtype == np.uint8
    np.testing.assert_array_equal(frames[0], frames[2])  # same pose, same picture
    assert np.abs(frames[0].astype(int) - frames[1]).mean() > 2  # turned head looks different
    mask = frames[0].any(axis=2)
    assert 0.15 < mask.mean() < 0.8  # a head fills a good part of the frame
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() - 40) < 6  # horizontally centred (frontal, symmetric head)


def test_write_preview_mp4(model, tmp_path):
    coeffs = script_coeffs("shake", num_frames=12, fps=25.0)
    out = write_preview(tmp_path / "shake.mp4", coeffs, model=model, size=(64, 64))
    frames, fps = read_video(out)
    assert frames.shape == (12, 64, 64, 3) and fps == pytest.approx(25.0)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary leftovers


def test_preview_pose_tool(tmp_path):
    out = _tool("preview_pose").main(
        [
            "tilt",
            "--duration",
            "0.4",
            "--size",
            "48",
            "--blinks-per-minute",
            "0",
            "--out",
            str(tmp_path / "t.mp4"),
        ]
    )
    frames, fps = read_video(out)
    assert frames.shape == (10, 48, 48, 3)
    coeffs = HeadCoeffs.neutral(5)
    path = coeffs.save(tmp_path / "c.npz")
    out = _tool("preview_pose").main(
        [str(path), "--pose", "nod", "--size", "48", "--out", str(tmp_path / "c.mp4")]
    )
    assert read_video(out)[0].shape[0] == 5


def test_preview_flame_png(tmp_path):
    out = _tool("preview_flame").main(["--out", str(tmp_path / "p.png"), "--size", "64"])
    img = cv2.imread(str(out))
    assert img.shape == (128, 256, 3)  # 8 poses in a 4 x 2 grid of 64 px cells
    cells = [img[r * 64 : (r + 1) * 64, c * 64 : (c + 1) * 64] for r in range(2) for c in range(4)]
    assert all(cell.any() for cell in cells)


def test_preview_pose_tool_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("keyframes:\n  - {t: 0, yaw: 400}\n")
    with pytest.raises(SystemExit) as info:
        _tool("preview_pose").main([str(bad), "--out", str(tmp_path / "x.mp4")])
    err = capsys.readouterr().err
    assert info.value.code == 1 and err.startswith("preview_pose: error: ") and err.count("\n") == 1
    assert str(bad) in err and "'yaw'" in err
    path = HeadCoeffs.neutral(3).save(tmp_path / "c.npz")
    with pytest.raises(SystemExit) as info:
        _tool("preview_pose").main([str(path), "--size", "32", "--out", str(path)])
    assert info.value.code == 1 and "refusing to overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        _tool("preview_pose").main(["nod", "--fps", "0", "--out", str(tmp_path / "y.mp4")])
    assert info.value.code == 2 and "--fps=0" in capsys.readouterr().err
    assert HeadCoeffs.load(path).num_frames == 3  # input intact
