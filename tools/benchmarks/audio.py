"""Audio → FLAME speed and memory (issue 4): log-mel features + Audio2Flame on this CPU.

Figures:

- ``realtime_factor``: seconds of audio per wall-clock second for ``Audio2Flame.predict`` (log-mel
  features + model, chunked) on 60 s of speech-like audio, median of several runs (target ≥ 200);
  ``realtime_factor_cpu`` the same with process CPU time (less sensitive to other jobs on the machine).
- memory, each input in a fresh subprocess: ``peak_rss_mb_*`` (process high-water mark ``VmHWM``, includes the
  input audio and the imported libraries), ``extra_rss_mb_*`` (high-water mark minus the RSS just
  before ``predict``) and ``tracemalloc_mb_*`` (Python/numpy allocations during ``predict``), for a
  30-s and a 10-min input; ``peak_memory_ratio_10min_vs_30s`` is the process peak ratio (target ≤ 1.3).

The model is the shipped checkpoint ``checkpoints/audio2flame`` when present, else an untrained one
of the same architecture (speed and memory do not depend on the weights).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "checkpoints" / "audio2flame"


def _model():
    from flap.audio.model import Audio2Flame

    if (CHECKPOINT / "config.json").is_file():
        return Audio2Flame.from_pretrained(CHECKPOINT).eval()
    return Audio2Flame().eval()


def _speech_like(seconds: float, seed: int = 0):
    """Amplitude-modulated harmonic signal with pauses (no real speech needed)."""
    from flap.audio.synthetic import synthetic_pair

    audio, _ = synthetic_pair(seconds, seed=seed)
    return audio


def _memory_child(seconds: float) -> dict:
    """Run in a subprocess: peak memory of predict() on ``seconds`` of audio."""
    import resource
    import tracemalloc

    import numpy as np

    def rss_mb() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize() / 2**20

    import torch

    torch.set_num_threads(1)
    model = _model()
    model.predict(_speech_like(2.0))  # warm up (imports, caches)
    base = _speech_like(30.0)
    audio = np.resize(base, int(seconds * 16000)).astype(np.float32)
    before = rss_mb()
    tracemalloc.start()
    out = model.predict(audio)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    from benchmarks.memory import peak_rss_mib

    peak = peak_rss_mib()  # not ru_maxrss: that one keeps the parent's peak across fork + exec
    return {
        "frames": out.num_frames,
        "peak_rss_mb": peak,
        "extra_rss_mb": peak - before,
        "tracemalloc_mb": traced_peak / 2**20,
    }


def _memory(seconds: float) -> dict:
    code = (
        f"import sys, json; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'tools')!r}); "
        f"from benchmarks.audio import _memory_child; print(json.dumps(_memory_child({seconds})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(seconds: float = 60.0, repeats: int = 5, threads: int = 1) -> dict:
    """Speed in this process (``threads`` torch threads: the model is small, one is fastest), memory in subprocesses."""
    import torch

    torch.set_num_threads(threads)
    model = _model()
    audio = _speech_like(seconds)
    model.predict(audio[:32000])  # warm up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = model.predict(audio)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    assert out.num_frames == round(seconds * 25)
    result = {
        "audio_seconds": seconds,
        "realtime_factor": round(seconds / statistics.median(wall), 1),
        "realtime_factor_best": round(seconds / min(wall), 1),
        "realtime_factor_cpu": round(seconds / statistics.median(cpu), 1),
        "torch_threads": threads,
        "model_parameters": sum(p.numel() for p in model.parameters()),
    }
    short, long = _memory(30.0), _memory(600.0)
    assert short["frames"] == 750 and long["frames"] == 15000
    for name, m in (("30s", short), ("10min", long)):
        for key in ("peak_rss_mb", "extra_rss_mb", "tracemalloc_mb"):
            result[f"{key}_{name}"] = round(m[key], 1)
    result["peak_memory_ratio_10min_vs_30s"] = round(long["peak_rss_mb"] / short["peak_rss_mb"], 3)
    result["tracemalloc_ratio_10min_vs_30s"] = round(long["tracemalloc_mb"] / short["tracemalloc_mb"], 3)
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
