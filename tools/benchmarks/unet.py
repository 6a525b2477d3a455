"""Dual-UNet speed at SD 1.5 sizes on CPU (issue #6).

One denoising step for one frame at a 32×32 latent, FLAP's :class:`~flap.models.DenoisingNet`
(head-motion + reference + expression + temporal layers, reference features precomputed) versus
diffusers' :class:`~diffusers.UNetMotionModel` with the same SD 1.5 / AnimateDiff config, on the
same input (same latent, timestep and 1-token context) and the *same weights* (the UNetMotionModel
is built on the meta device and takes the DenoisingNet's tensors, so memory stays ~6 GB).
Random weights; timings are medians of ``repeats`` interleaved runs in this process.

Figures:

* ``denoising_step_s`` / ``unet_motion_step_s``: median wall time of one step;
  ``*_cpu_s``: median process CPU time (steadier on a shared machine);
* ``ratio`` (CPU time) and ``ratio_wall``: DenoisingNet / UNetMotionModel (target ≤ 1.35);
* ``reference_pass_s``: the ReferenceNet pass (once per video); ``reference_calls``: how many
  reference passes a ``steps``-step, ``windows``-window generation loop made (must be 1).
"""

from __future__ import annotations

import statistics
import time

import torch
from diffusers import UNetMotionModel

from flap.models import SD15_UNET_CONFIG, DenoisingNet, ReferenceNet, denoising_config_from_unet2d

SD15_MOTION = {"motion_num_attention_heads": 8, "motion_max_seq_length": 32, "use_motion_mid_block": True}
SD15_CONDITION = {"condition_dim": 768, "num_head_motion_tokens": 4, "num_expression_tokens": 8, "condition_hidden_dim": 256}


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _count_calls(module: torch.nn.Module) -> list:
    calls: list = []
    module.register_forward_hook(lambda *a: calls.append(1))
    return calls


def _shared_copy(cls, config: dict, source: torch.nn.Module) -> torch.nn.Module:
    """Build ``cls(**config)`` on the meta device and give it ``source``'s tensors (no copy)."""
    with torch.device("meta"):
        model = cls.from_config(config)
    result = model.load_state_dict(source.state_dict(), strict=False, assign=True)
    if result.missing_keys:
        raise RuntimeError(f"{cls.__name__}: weights missing from the source model: {result.missing_keys[:5]}")
    if any(t.is_meta for t in list(model.parameters()) + list(model.buffers())):
        raise RuntimeError(f"{cls.__name__}: tensors left on the meta device")
    return model.eval()


def run(repeats: int = 5, latent: int = 32, num_threads: int = 1, steps: int = 4, windows: int = 2) -> dict:
    """Time one SD 1.5-size denoising step (1 frame, ``latent``×``latent``); see module docstring."""
    torch.set_num_threads(num_threads)
    torch.manual_seed(0)
    config = denoising_config_from_unet2d(SD15_UNET_CONFIG, SD15_MOTION, SD15_CONDITION)
    denoiser = DenoisingNet.from_config(config).eval()
    reference_net = _shared_copy(ReferenceNet, SD15_UNET_CONFIG, denoiser)
    motion_config = {k: v for k, v in config.items() if not k.startswith(("condition", "num_motion", "num_expr"))}
    baseline = _shared_copy(UNetMotionModel, motion_config, denoiser)

    g = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 1, latent, latent, generator=g)
    context = torch.zeros(1, 1, SD15_UNET_CONFIG["cross_attention_dim"])
    timestep = torch.tensor([500])
    c_motion, c_exp = torch.randn(1, 1, 3, generator=g) * 0.2, torch.randn(1, 1, 117, generator=g)

    calls = _count_calls(reference_net)
    with torch.no_grad():
        ref_latent = torch.randn(1, 4, latent, latent, generator=g)
        ref_wall = time.perf_counter()
        reference = reference_net(ref_latent)  # the only reference pass: every step below reuses it
        ref_wall = time.perf_counter() - ref_wall

        def flap_step():
            return denoiser(sample, timestep, reference=reference, c_motion=c_motion, c_exp=c_exp,
                            encoder_hidden_states=context)

        def baseline_step():
            return baseline(sample, timestep, encoder_hidden_states=context)

        flap_step(), baseline_step()  # warm-up
        flap_times, base_times = [], []
        for _ in range(repeats):
            flap_times.append(_timed(flap_step))
            base_times.append(_timed(baseline_step))
        for _ in range(windows):  # a miniature generation loop: reference features reused
            for _ in range(steps):
                flap_step()

    def med(times, i):
        return statistics.median(t[i] for t in times)

    out = {
        "latent": latent,
        "frames": 1,
        "repeats": repeats,
        "threads": num_threads,
        "denoising_params_M": round(sum(p.numel() for p in denoiser.parameters()) / 1e6, 1),
        "unet_motion_params_M": round(sum(p.numel() for p in baseline.parameters()) / 1e6, 1),
        "denoising_step_s": round(med(flap_times, 0), 3),
        "unet_motion_step_s": round(med(base_times, 0), 3),
        "denoising_step_cpu_s": round(med(flap_times, 1), 3),
        "unet_motion_step_cpu_s": round(med(base_times, 1), 3),
        "reference_pass_s": round(ref_wall, 3),
        "reference_calls": len(calls),
        "denoising_calls": windows * steps,
    }
    out["ratio"] = round(out["denoising_step_cpu_s"] / out["unet_motion_step_cpu_s"], 3)
    out["ratio_wall"] = round(out["denoising_step_s"] / out["unet_motion_step_s"], 3)
    return out


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value}")
