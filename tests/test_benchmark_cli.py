"""``python -m flap.benchmark`` through the real command line, on a tiny random checkpoint and real media."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "flap.benchmark", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from flap.testing import tiny_random_pipeline

    path = tmp_path_factory.mktemp("bench") / "tiny_ckpt"
    tiny_random_pipeline(seed=0, image_size=64).save_pretrained(path)
    return path


def _common(shared_data, ckpt, out):
    return [f"checkpoint={ckpt}", f"clips={shared_data / 'video' / 'motion' / 'pcavs_pose_00067.mp4'}",
            f"portraits={shared_data / 'portraits' / 'grid_bbaf2n_frame.png'}", "max_frames=8",
            "control.seconds=0.6", "control.pose_scripts=[nod]", "sampling.num_inference_steps=1",
            "identity_frames=2", f"out={out}", "hydra.run.dir=" + str(out / "hydra")]


@pytest.mark.slow
def test_benchmark_writes_tables_plots_and_rows(shared_data, tiny_ckpt, tmp_path):
    out = tmp_path / "out"
    proc = _run(_common(shared_data, tiny_ckpt, out), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    rows = m["reenactment"]["mean"]
    assert list(rows) == ["real", "vae", "tiny_ckpt"]
    assert rows["real"]["ssim"] == pytest.approx(1.0) and rows["real"]["lmd"] == 0.0
    assert rows["real"]["psnr"] is None  # +inf: JSON has no infinity, the table shows ∞
    assert rows["vae"]["ssim"] < 1.0 and rows["vae"]["psnr"] is not None
    assert rows["real"]["identity_distance"] < 0.45  # the clip's own frames against its first frame
    runs = m["control"]["runs"]
    assert [(r["pose"], r["blinks_per_minute"]) for r in runs] == [("nod", 20.0), ("none", 0.0)]
    assert runs[1]["blinks_requested"] == 0
    assert all("jaw_corr" in r for r in runs)  # speech drives the jaw: its correlation is scored too
    assert set(m["control"]["by_blink_rate"]) == {"0 blinks/min", "20 blinks/min"}
    table = (out / "table.md").read_text()
    assert "| real | ∞ | 1.000 | 0.000 |" in table and "tiny_ckpt" in table
    for png in ("reenactment.png", "control.png", "reenactment_pcavs_pose_00067.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    from PIL import Image

    for png in ("control_grid_bbaf2n_frame_nod_20.png", "control_grid_bbaf2n_frame_none_0.png"):
        strip = Image.open(out / png)  # 8 of the 15 frames (64 px) over a 26 px band of requested/tracked angles
        assert strip.size == (8 * 64, 64 + 26)
    assert m["not_run"] == [] and m["errors"] == []


def test_time_budget_and_bad_input(shared_data, tiny_ckpt, tmp_path):
    out = tmp_path / "budget"
    proc = _run([*_common(shared_data, tiny_ckpt, out), "max_seconds=0.001", "progress=false"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["not_run"]) == 3 and m["reenactment"]["clips"] == [] and m["control"]["runs"] == []
    assert "not started" in (out / "table.md").read_text()

    proc = _run([*_common(shared_data, tiny_ckpt, tmp_path / "bad"), f"clips={tmp_path / 'nope'}"], tmp_path)
    assert proc.returncode == 1
    assert "clips=" in proc.stderr and "nope" in proc.stderr
    assert not (tmp_path / "bad" / "metrics.json").exists()

    proc = _run([*_common(shared_data, tiny_ckpt, tmp_path / "bad2"), "reenactment_crop=centre"], tmp_path)
    assert proc.returncode == 1
    assert "reenactment_crop" in proc.stderr and "centre" in proc.stderr
    assert not (tmp_path / "bad2" / "metrics.json").exists()
    proc = _run([*_common(shared_data, tiny_ckpt, tmp_path / "bad3"), "control.seeds=[0,x]"], tmp_path)
    assert proc.returncode == 1
    assert "control.seeds" in proc.stderr and "'x'" in proc.stderr
    assert not (tmp_path / "bad3" / "metrics.json").exists()


def test_control_jobs_repeat_every_run_once_per_seed():
    from flap.benchmark import control_jobs

    jobs = control_jobs(["p"], ["nod", "turn_left"], [0, 20], grid=False, seeds=[0, 3])
    assert jobs == [("p", "nod", 20.0, 0), ("p", "nod", 20.0, 3), ("p", "turn_left", 20.0, 0),
                    ("p", "turn_left", 20.0, 3), ("p", "none", 0.0, 0), ("p", "none", 0.0, 3)]
    assert control_jobs(["p"], ["nod"], [0, 20], grid=True) == [("p", "nod", 0.0, 0), ("p", "nod", 20.0, 0)]
    for bad in ([], [1.5], [True]):
        with pytest.raises(ValueError, match="control.seeds must be a non-empty list of integers"):
            control_jobs(["p"], ["nod"], [20], grid=False, seeds=bad)
