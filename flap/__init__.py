"""FLAP: controllable audio-driven portrait video generation with FLAME-conditioned diffusion."""

__version__ = "0.1.0"
