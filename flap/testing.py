"""Fixtures for tests and benchmarks: a randomly initialised FLAP pipeline at the tiny sizes."""

from __future__ import annotations

import hydra
import torch
from omegaconf import OmegaConf

from flap import CONFIG_DIR
from flap.audio.model import Audio2Flame
from flap.models.scheduling import ddim_scheduler
from flap.pipeline import FLAPPipeline
from flap.training.vae import build_vae

__all__ = ["tiny_random_pipeline"]


def tiny_random_pipeline(seed: int = 0, audio2flame: bool = True, image_size: int = 128) -> FLAPPipeline:
    """A randomly initialised pipeline at the tiny sizes (``flap/conf/model/flap_tiny.yaml``, tiny VAE).

    For tests and benchmarks: it runs the whole data flow fast on a CPU; its frames are noise.
    ``image_size`` is the face-crop side in pixels (latent side = ``image_size / 8``).
    """
    torch.manual_seed(seed)
    nets = hydra.utils.instantiate(OmegaConf.load(CONFIG_DIR / "model" / "flap_tiny.yaml"))
    return FLAPPipeline(build_vae({"sample_size": image_size}), nets.reference_net, nets.denoising_net,
                        ddim_scheduler(), Audio2Flame() if audio2flame else None)
