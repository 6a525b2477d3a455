"""Benchmark: generation time and peak memory vs video length (issue 8).

Runs the whole ``python -m flap.generate`` path (Audio2Flame → controls → windowed DDIM → streamed
decode → H.264 + AAC mp4) with the real sampling settings of ``flap/conf/generate.yaml`` (DDIM steps,
CFG scale, SDEdit strength) and the demo checkpoint (``checkpoints/flap_tiny_demo``; the tiny random
configuration of the same sizes when it is absent) on 10 s and 60 s of real speech
(LibriSpeech, repeated to length), each in a fresh subprocess, and reports the peak resident
memory (``VmHWM``, :func:`benchmarks.memory.peak_rss_mib`) of each run and their ratio. Memory must
stay (nearly) constant in the video length: the target is ``peak_60s / peak_10s <= 1.3``.

    python tools/benchmarks/generate.py            # prints the figures
    python tools/benchmarks/generate.py --short 2 --long 6 --steps 2   # a quick check
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


DEMO = ROOT / "checkpoints" / "flap_tiny_demo"


def _child(seconds: float, size: int, steps: int | None, guidance: float | None, workdir: Path) -> dict:
    """One generation run in this process; returns its figures (peak RSS in MiB)."""
    import time

    import numpy as np
    import soundfile
    import torch
    from hydra import compose, initialize_config_dir

    from flap.audio.io import load_audio
    from flap.generate import generate
    from flap.testing import tiny_random_pipeline

    sys.path.insert(0, str(ROOT / "tools"))
    from benchmarks.memory import peak_rss_mib

    torch.set_num_threads(1)
    ckpt = DEMO if size == 128 and (DEMO / "model_index.json").is_file() else workdir / f"ckpt_{size}"
    if not (ckpt / "model_index.json").is_file():
        tiny_random_pipeline(seed=0, image_size=size).save_pretrained(ckpt)
    speech = load_audio(SPEECH)
    n = int(seconds * 16000)
    wav = workdir / f"speech_{seconds:g}s.wav"
    soundfile.write(wav, np.resize(speech, n), 16000)
    out = workdir / f"out_{seconds:g}s.mp4"
    args = [f"checkpoint={ckpt}", f"image={PORTRAIT}", f"audio={wav}", "progress=false", "paste=true",
            f"out={out}"]
    args += [f"num_inference_steps={steps}"] if steps is not None else []  # default: flap/conf/generate.yaml's
    args += [f"guidance_scale={guidance}"] if guidance is not None else []
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("generate", overrides=args)
    start = time.perf_counter()
    result = generate(cfg)
    wall = time.perf_counter() - start
    return {"checkpoint": ckpt.name, "steps": int(cfg.num_inference_steps), "guidance_scale": float(cfg.guidance_scale),
            "strength": float(cfg.strength), "seconds_of_audio": seconds, "frames": result["num_frames"], "wall_s": round(wall, 2),
            "frames_per_s": round(result["num_frames"] / wall, 2), "peak_rss_mib": round(peak_rss_mib(), 1),
            "mp4_bytes": out.stat().st_size}


def _run_child(seconds: float, size: int, steps: int | None, guidance: float | None, workdir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", str(seconds), "--size", str(size), "--workdir", str(workdir)]
    cmd += ["--steps", str(steps)] if steps is not None else []
    cmd += ["--guidance", str(guidance)] if guidance is not None else []
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child ({seconds} s) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(size: int = 128, steps: int | None = None, guidance: float | None = None, short_s: float = 10.0,
        long_s: float = 60.0) -> dict:
    """Generate ``short_s`` and ``long_s`` seconds in subprocesses; return the figures and ratios.

    ``steps`` / ``guidance`` ``None`` = the values of ``flap/conf/generate.yaml`` (what users run).

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
        "config": {"image_size": size, "checkpoint": short["checkpoint"], "steps": short["steps"],
                   "guidance_scale": short["guidance_scale"], "strength": short["strength"], "window": 16,
                   "overlap": 4},
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
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: flap/conf/generate.yaml's)")
    parser.add_argument("--guidance", type=float, default=None, help="CFG scale (default: flap/conf/generate.yaml's)")
    parser.add_argument("--short", type=float, default=10.0, help="short input, seconds of speech")
    parser.add_argument("--long", type=float, default=60.0, help="long input, seconds of speech")
    ns = parser.parse_args()
    if ns.child is not None:
        print(json.dumps(_child(ns.child, ns.size, ns.steps, ns.guidance, ns.workdir)))
    else:
        print(json.dumps(run(ns.size, ns.steps, ns.guidance, ns.short, ns.long), indent=1))
