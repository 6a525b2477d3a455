"""The noise schedule FLAP trains and samples with (SD 1.5's, paper Sec. 4.3 / Eq. 4), in one place.

Training adds noise with :func:`ddpm_scheduler`; inference samples with :func:`ddim_scheduler`.
Both are built from :data:`NOISE_SCHEDULE`, so the two can never drift apart.
"""

from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler

__all__ = ["NOISE_SCHEDULE", "ddim_scheduler", "ddpm_scheduler"]

#: Scaled-linear β from 0.00085 to 0.012 over 1000 steps, ε-prediction (Stable Diffusion 1.5).
NOISE_SCHEDULE = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                  "beta_end": 0.012, "prediction_type": "epsilon"}


def ddpm_scheduler(**overrides) -> DDPMScheduler:
    """Training noise scheduler: :data:`NOISE_SCHEDULE` with ``overrides`` (same keys)."""
    return DDPMScheduler(**{**NOISE_SCHEDULE, **overrides})


def ddim_scheduler(**overrides) -> DDIMScheduler:
    """DDIM sampler matching the training noise schedule (:data:`NOISE_SCHEDULE`, SD 1.5's sampler
    settings: no sample clipping, ``steps_offset=1``); ``overrides`` replace schedule keys."""
    return DDIMScheduler(**{**NOISE_SCHEDULE, **overrides}, clip_sample=False, set_alpha_to_one=False,
                         steps_offset=1)
