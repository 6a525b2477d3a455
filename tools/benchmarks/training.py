"""Benchmark: training-step time of the tiny FLAP config per stage (issue 7), CPU by default.

Measures the mean wall time of one optimisation step (``FLAPLitModule.loss`` + backward + AdamW)
for stage 2 (image pairs) and stage 3 (8-frame windows), with and without gradient checkpointing,
on synthetic 128 × 128 batches (the demo size) with a tiny random VAE. Ratios are against the
stage-2 step without checkpointing measured in the same process.

    python tools/benchmarks/training.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CONFIG_DIR = ROOT / "flap" / "conf"


def _module(stage: int, checkpointing: bool):
    import torch
    from diffusers import AutoencoderKL
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from flap.training import FLAPLitModule

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(16, 32, 64, 64), down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, norm_num_groups=8, sample_size=128)
    unets = instantiate(OmegaConf.load(CONFIG_DIR / "model" / "flap_tiny.yaml"))
    return FLAPLitModule(stage, unets=unets, vae=vae, gradient_checkpointing=checkpointing)


def _step_seconds(stage: int, checkpointing: bool, batch: int, frames: int, repeats: int) -> float:
    import torch

    m = _module(stage, checkpointing).train()
    opt = torch.optim.AdamW(m.trainable_parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    data = {"reference": torch.rand(batch, 3, 128, 128, generator=g) * 2 - 1,
            "coeffs": torch.zeros(batch, frames, 120) if stage == 3 else torch.zeros(batch, 120)}
    if stage == 3:
        data["frames"] = torch.rand(batch, frames, 3, 128, 128, generator=g) * 2 - 1
    else:
        data["target"] = torch.rand(batch, 3, 128, 128, generator=g) * 2 - 1
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        m.loss(data).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sum(times[1:]) / repeats  # the first step (allocations) is not counted


def run(repeats: int = 3) -> dict:
    """Mean seconds per step and ratios vs stage 2 without checkpointing (batch 8 pairs / 2 × 8 frames)."""
    import torch

    torch.set_num_threads(1)
    figures = {
        "stage2_pairs_b8_s": _step_seconds(2, False, 8, 1, repeats),
        "stage2_pairs_b8_checkpointing_s": _step_seconds(2, True, 8, 1, repeats),
        "stage3_video_b2x8_s": _step_seconds(3, False, 2, 8, repeats),
        "stage3_video_b2x8_checkpointing_s": _step_seconds(3, True, 2, 8, repeats),
    }
    ref = figures["stage2_pairs_b8_s"]
    figures.update({k.removesuffix("_s") + "_ratio": v / ref for k, v in list(figures.items()) if k != "stage2_pairs_b8_s"})
    return figures


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
