"""The shipped demo: ``python -m flap.generate`` with no arguments (= ``make demo`` without its pose
script) on the bundled held-out portrait and speech with the person-specific model
``checkpoints/flap_person_obama``; the tiny test checkpoint ``checkpoints/flap_tiny_demo`` ships
too. Slow (minutes on a CPU)."""

from __future__ import annotations

import os
import subprocess
import sys

import av
import numpy as np
import pytest

from flap.generate import PROJECT_ROOT

DEMO = PROJECT_ROOT / "checkpoints" / "flap_person_obama"
TINY = PROJECT_ROOT / "checkpoints" / "flap_tiny_demo"


def face_fraction(path) -> float:
    """Fraction of the video's frames in which MediaPipe face detection finds a face."""
    from flap.data.crop import MediaPipeFaceDetector

    detector = MediaPipeFaceDetector(model_selection=0)
    try:
        with av.open(str(path)) as c:
            hits = [detector(np.ascontiguousarray(f.to_ndarray(format="rgb24"))) is not None for f in c.decode(video=0)]
    finally:
        detector.close()
    return float(np.mean(hits))


def test_demo_assets_ship_with_licences():
    demo = PROJECT_ROOT / "assets" / "demo"
    for name in ("portrait.png", "speech.wav", "NOTICE.md", "speech.LICENSE.txt", "portrait.LipNet_LICENSE.txt",
                 "obama_portrait.png", "obama_portrait.styletalk_LICENSE.txt"):
        assert (demo / name).is_file(), name
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(PROJECT_ROOT / "flap" / "conf" / "generate.yaml")
    assert (PROJECT_ROOT / cfg.image).is_file() and (PROJECT_ROOT / cfg.checkpoint) == DEMO


@pytest.mark.parametrize("folder", [DEMO, TINY], ids=["person", "tiny"])
def test_demo_checkpoint_is_complete_and_small(folder):
    if not (folder / "model_index.json").is_file():
        pytest.fail(f"demo checkpoint missing: {folder}")
    for sub in ("vae", "reference_net", "denoising_net", "scheduler", "audio2flame"):
        assert (folder / sub).is_dir(), sub
    total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert total <= 40 * 2**20, f"{total / 2**20:.1f} MB > 40 MB"


@pytest.mark.slow
def test_make_demo_writes_a_talking_face_video(tmp_path):
    out = tmp_path / "demo.mp4"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "flap.generate", f"out={out}", "progress=false",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with av.open(str(out)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
        v, a = c.streams.video[0], c.streams.audio[0]
        fps = float(v.average_rate)
        assert abs(float(v.duration * v.time_base) - float(a.duration * a.time_base)) <= 1 / fps
    assert face_fraction(out) >= 0.8
