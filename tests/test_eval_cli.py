"""`python -m flap.evaluate` end to end on a small synthetic video with a stand-in tracker.

The tracker is replaced by a function returning known coefficients and landmarks, so every reported
number is checked against a hand-computed value; the real tracker is exercised in
``tests/test_eval_real.py``.
"""

import json

import numpy as np
import pytest
import torch

from flap.eval.tracked import TrackedVideo, clear_tracking_cache
from flap.evaluate import run
from flap.flame.coeffs import HeadCoeffs
from flap.io.video import write_video

T, FPS, SR = 30, 25.0, 16000


def _request():
    t = np.arange(T) / FPS
    c = HeadCoeffs.neutral(T, FPS, dtype=torch.float64)
    c.set_pose_degrees(np.stack([8 * np.sin(2 * np.pi * t), 15 * np.sin(np.pi * t), 0 * t], 1))
    c.data[:, 15] = torch.from_numpy(0.15 * np.abs(np.sin(3 * np.pi * t)))
    return c


def _speech():
    env = np.abs(np.sin(3 * np.pi * np.arange(int(T / FPS * SR)) / SR))
    return (0.3 * env * np.sin(2 * np.pi * 220 * np.arange(len(env)) / SR)).astype(np.float32)


def fake_tracker(path):
    """Tracks 'perfectly' except for +2° roll; mouth opens with the requested jaw."""
    req = _request()
    trk = req.clone()
    trk.set_pose_degrees(req.pose_degrees().numpy() + [0, 0, 2.0])
    lm = np.zeros((T, 68, 2))
    lm[:, :, 0] = np.linspace(10, 54, 68)
    lm[:, :, 1] = 20
    lm[:, 36], lm[:, 45] = [16, 24], [48, 24]
    lm[:, [65, 66, 67], 1] = 40 + 40 * req.data[:, 15].numpy()[:, None]
    lm[:, [61, 62, 63], 1] = 40
    return TrackedVideo(trk, lm, np.ones(T, bool), (64, 64))


@pytest.fixture()
def clip(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (T, 64, 64, 3), dtype=np.uint8)
    video = write_video(tmp_path / "gen.mp4", frames, FPS, audio=_speech())
    _request().save(tmp_path / "gen.mp4.coeffs.npz")
    clear_tracking_cache()
    return video


def _cfg(video, out, **over):
    cfg = {
        "video": str(video), "request": None, "reference": None, "audio": None, "real": None,
        "out": str(out), "device": "auto", "print_table": True,
        "tracker": {"target": f"{__name__}.fake_tracker"},
        "lipsync": {"max_lag_frames": 3},
        "metrics": {k: {"weights": None} for k in ("syncnet", "hyperiqa", "identity", "fid", "fvd")},
    }  # fmt: skip
    cfg.update(over)
    return cfg


def test_outputs_and_values(clip, tmp_path, capsys):
    out = tmp_path / "eval"
    result = run(_cfg(clip, out))
    res = result["videos"][0]
    assert res["request"].endswith("gen.mp4.coeffs.npz") and res["request_kind"] == "coeffs"
    assert res["pose"]["mae_deg_roll"] == pytest.approx(2.0, abs=1e-3)
    assert res["pose"]["mae_deg"] == pytest.approx(2.0 / 3, abs=1e-3)
    assert res["pose"]["pose_error_deg"] == pytest.approx(2.0, abs=1e-3)
    assert res["pose"]["corr_yaw"] == pytest.approx(1.0, abs=1e-6)
    assert np.isnan(res["pose"]["corr_roll"])  # requested roll is constant: no correlation
    assert res["jaw"]["jaw_corr"] == pytest.approx(1.0, abs=1e-6)
    assert res["lipsync"]["mouth_envelope_corr"] > 0.8
    assert res["jitter"]["jitter_px"] >= 0
    for name in ("syncnet", "hyperiqa", "identity"):
        assert res["skipped"][name]["key"] == f"metrics.{name}.weights"
    assert result["set"]["skipped"]["fid"]["key"] == "metrics.fid.weights"

    saved = json.loads((out / "metrics.json").read_text())
    assert saved["videos"][0]["pose"]["mae_deg_roll"] == pytest.approx(2.0, abs=1e-3)
    assert saved["videos"][0]["pose"]["corr_roll"] is None  # NaN is written as null
    one = json.loads((out / "gen.json").read_text())
    assert one["name"] == "gen"
    np.testing.assert_allclose(np.array(one["per_frame"]["pose"]["tracked"])[:, 2], 2.0, atol=1e-4)
    png = (out / "gen_pose.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = (out / "table.md").read_text()
    assert "pose MAE roll [deg] | 2.000" in md
    assert "metrics.syncnet.weights" in md and "metrics.fid.weights" in md
    assert "pose MAE roll" in capsys.readouterr().out
    assert not list(out.glob(".*tmp*"))  # no temporary files left behind


def test_pose_script_request_and_folder(clip, tmp_path):
    out = tmp_path / "eval"
    result = run(_cfg(clip.parent, out, request="nod"))
    res = result["videos"][0]
    assert res["request_kind"] == "pose_script" and "jaw" not in res
    assert res["pose"]["mae_deg"] > 1.0
    assert (out / "table.txt").is_file()


def test_fid_with_local_torchscript(clip, tmp_path):
    class Tiny(torch.nn.Module):
        def forward(self, x: torch.Tensor, return_features: bool = True) -> torch.Tensor:
            return torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3)), x[:, 0].mean((1, 2))], 1)

    weights = tmp_path / "tiny_inception.pt"
    torch.jit.script(Tiny()).save(str(weights))
    cfg = _cfg(clip, tmp_path / "eval", real=str(clip))
    cfg["metrics"]["fid"] = {
        "weights": str(weights),
        "size": 32,
        "value_range": [0, 255],
        "call_kwargs": {"return_features": True},
    }
    result = run(cfg)
    assert result["set"]["fid"]["fid"] == pytest.approx(0.0, abs=1e-6)  # the video against itself
    assert result["set"]["fid"]["frames_generated"] == T
    assert "fid" not in result["set"].get("skipped", {})


def test_bad_inputs(tmp_path, clip):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run(_cfg(tmp_path / "missing.mp4", tmp_path / "o"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no video in folder"):
        run(_cfg(tmp_path / "empty", tmp_path / "o"))
    (tmp_path / "gen.mp4.coeffs.npz").unlink()
    with pytest.raises(FileNotFoundError, match="no coefficient file beside it"):
        run(_cfg(clip, tmp_path / "o"))
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_learned_metrics_run_with_local_weights(clip, tmp_path, shared_data):
    """SyncNet, HyperIQA and identity run (random weights in the published layouts) when configured."""
    from flap.eval.hyperiqa import HyperNet
    from flap.eval.syncnet import SyncNetModel

    torch.manual_seed(0)
    torch.save(SyncNetModel().state_dict(), tmp_path / "syncnet_v2.model")
    torch.save(HyperNet().state_dict(), tmp_path / "koniq_pretrained.pkl")

    class TinyFace(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)

    torch.jit.script(TinyFace()).save(str(tmp_path / "face.pt"))
    cfg = _cfg(clip, tmp_path / "eval", reference=str(shared_data / "portraits" / "liveportrait_d8.jpg"))
    cfg["metrics"]["syncnet"] = {"weights": str(tmp_path / "syncnet_v2.model"), "vshift": 2}
    cfg["metrics"]["hyperiqa"] = {
        "weights": str(tmp_path / "koniq_pretrained.pkl"),
        "num_frames": 1,
        "num_crops": 1,
    }
    cfg["metrics"]["identity"] = {"weights": str(tmp_path / "face.pt"), "size": 32, "value_range": [-1, 1]}
    res = run(cfg)["videos"][0]
    assert set(res.get("skipped", {})) == set()
    assert res["syncnet"]["num_windows"] == T - 5 and res["syncnet"]["sync_d"] > 0
    assert -2 <= res["syncnet"]["offset_frames"] <= 2
    assert np.isfinite(res["hyperiqa"]["hyperiqa"]) and res["hyperiqa"]["frames_scored"] == 1
    assert -1 <= res["identity"]["identity_cos_min"] <= res["identity"]["identity_cos_mean"] <= 1
    assert "SyncNet SYNC-C" in (tmp_path / "eval" / "table.md").read_text()


def picky_tracker(path):
    """Finds no face in videos whose name contains 'noface' (like flap.tracking's NoFaceError)."""
    if "noface" in str(path):
        raise ValueError(f"{path}: no face found in any of its frames")
    return fake_tracker(path)


def test_video_without_face_is_reported_not_fatal(clip, tmp_path):
    import shutil

    shutil.copy(clip, tmp_path / "noface.mp4")
    shutil.copy(tmp_path / "gen.mp4.coeffs.npz", tmp_path / "noface.mp4.coeffs.npz")
    cfg = _cfg(tmp_path, tmp_path / "eval", tracker={"target": f"{__name__}.picky_tracker"})
    result = run(cfg)
    by_name = {r["name"]: r for r in result["videos"]}
    assert "no face found" in by_name["noface"]["error"] and by_name["noface"]["face_detected_ratio"] == 0
    assert by_name["gen"]["pose"]["mae_deg_roll"] == pytest.approx(2.0, abs=1e-3)
    assert result["set"]["num_failed"] == 1
    assert (tmp_path / "eval" / "noface.json").is_file() and not (
        tmp_path / "eval" / "noface_pose.png"
    ).exists()
    assert "ERROR" in (tmp_path / "eval" / "table.md").read_text()
    from flap.eval.runner import TrackingFailed

    with pytest.raises(TrackingFailed, match="no face could be tracked"):
        run(
            _cfg(tmp_path / "noface.mp4", tmp_path / "eval2", tracker={"target": f"{__name__}.picky_tracker"})
        )
    assert (tmp_path / "eval2" / "table.md").is_file()  # the report says why


def test_command_line_audio_key(tmp_path):
    """`python -m flap.evaluate video=... audio=...` (the real command line): `audio=` is a plain key.

    The clip has no audio track, so the lip-sync number can only come from the `audio=` file.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    import soundfile

    root = Path(__file__).resolve().parents[1]
    rng = np.random.default_rng(0)
    video = write_video(tmp_path / "gen.mp4", rng.integers(0, 255, (T, 64, 64, 3), dtype=np.uint8), FPS)
    _request().save(tmp_path / "gen.mp4.coeffs.npz")
    soundfile.write(tmp_path / "speech.wav", _speech(), SR)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")])}
    proc = subprocess.run(
        [sys.executable, "-m", "flap.evaluate", f"video={video}", f"audio={tmp_path / 'speech.wav'}",
         f"out={tmp_path / 'eval'}", "tracker.target=test_eval_cli.fake_tracker", "lipsync.max_lag_frames=3",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "eval" / "metrics.json").read_text())["videos"][0]
    assert res["lipsync"]["mouth_envelope_corr"] > 0.8
