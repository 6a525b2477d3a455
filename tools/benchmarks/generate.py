"""Benchmark: generation time and peak memory vs video length (issue 8).

Runs the whole ``python -m flap.generate`` path (Audio2Flame → controls → windowed DDIM → streamed
decode → H.264 + AAC mp4) with the tiny random configuration on 10 s and 60 s of real speech
(LibriSpeech, repeated to length), each in a fresh subprocess, and reports the peak resident
memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) of each run and their ratio. Memory must
stay (nearly) constant in the video length: the target is ``peak_60s / peak_10s <= 1.3``.

    python tools/benchmarks/generate.py            # prints the figures
    python tools/benchmarks/generate.py --size 64 --steps 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
CONFIG_DIR = ROOT / "flap" / "conf"
SPEECH = SHARED / "audio" / "librispeech_1088-134315-0000.wav"
PORTRAIT = SHARED / "portraits" / "grid_bbaf2n_frame.png"


def _child(seconds: float, size: int, steps: int, guidance: float, workdir: Path) -> dict:
    """One generation run in this process; returns its figures (peak RSS in MiB)."""
    import resource
    import time

    import numpy as np
    import soundfile
    import torch
    from hydra import compose, initialize_config_dir

    from flap.audio.io import load_audio
    from flap.generate import generate
    from flap.testing import tiny_random_pipeline

    torch.set_num_threads(1)
    ckpt = workdir / f"ckpt_{size}"
    if not (ckpt / "model_index.json").is_file():
        tiny_random_pipeline(seed=0, image_size=size).save_pretrained(ckpt)
    speech = load_audio(SPEECH)
    n = int(seconds * 16000)
    wav = workdir / f"speech_{seconds:g}s.wav"
    soundfile.write(wav, np.resize(speech, n), 16000)
    out = workdir / f"out_{seconds:g}s.mp4"
    args = [f"checkpoint={ckpt}", f"image={PORTRAIT}", f"audio={wav}", f"num_inference_steps={steps}",
            f"guidance_scale={guidance}", "progress=false", "paste=true", f"out={out}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("generate", overrides=args)
    start = time.perf_counter()
    result = generate(cfg)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds_of_audio": seconds, "frames": result["num_frames"], "wall_s": round(wall, 2),
            "frames_per_s": round(result["num_frames"] / wall, 2), "peak_rss_mib": round(peak_kib / 1024, 1),
            "mp4_bytes": out.stat().st_size}


def _run_child(seconds: float, size: int, steps: int, guidance: float, workdir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", str(seconds), "--size", str(size), "--steps", str(steps),
           "--guidance", str(guidance), "--workdir", str(workdir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child ({seconds} s) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(size: int = 128, steps: int = 1, guidance: float = 2.0, short_s: float = 10.0, long_s: float = 60.0) -> dict:
    """Generate ``short_s`` and ``long_s`` seconds in subprocesses; return the figures and ratios.

    Returns:
        ``{"short": {...}, "long": {...}, "peak_memory_ratio": long/short, "time_ratio": ...,
        "memory_ok": ratio <= 1.3, "config": {...}}``.
    """
    if not SPEECH.is_file() or not PORTRAIT.is_file():
        raise FileNotFoundError(f"benchmark media not found under {SHARED}")
    with tempfile.TemporaryDirectory(prefix="flap_bench_gen_") as tmp:
        work = Path(tmp)
        short = _run_child(short_s, size, steps, guidance, work)
        long = _run_child(long_s, size, steps, guidance, work)
    ratio = long["peak_rss_mib"] / short["peak_rss_mib"]
    return {
        "config": {"image_size": size, "steps": steps, "guidance_scale": guidance, "window": 16, "overlap": 4,
                   "model": "flap/conf/model/flap_tiny.yaml (random weights) + tiny VAE"},
        "short": short,
        "long": long,
        "peak_memory_ratio": round(ratio, 3),
        "time_ratio": round(long["wall_s"] / short["wall_s"], 2),
        "memory_ok": ratio <= 1.3,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=128, help="face-crop side in px (128 = the demo size)")
    parser.add_argument("--steps", type=int, default=1, help="DDIM steps")
    parser.add_argument("--guidance", type=float, default=2.0, help="CFG scale")
    ns = parser.parse_args()
    if ns.child is not None:
        print(json.dumps(_child(ns.child, ns.size, ns.steps, ns.guidance, ns.workdir)))
    else:
        print(json.dumps(run(ns.size, ns.steps, ns.guidance), indent=1))
