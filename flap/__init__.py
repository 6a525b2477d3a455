"""FLAP: controllable audio-driven portrait video generation with FLAME-conditioned diffusion."""

__version__ = "0.1.0"

from pathlib import Path as _Path

#: Hydra configs shipped with the package (``generate.yaml``, ``train.yaml``, ``experiment/``, ...).
CONFIG_DIR = _Path(__file__).resolve().parent / "conf"
