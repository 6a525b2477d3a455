"""Local-only weight loading for the evaluation metrics; a missing file means "skipped", not a crash.

FLAP never downloads weights (docs/DESIGN.md). Each learned metric names the config key that points at
its weights (for example ``metrics.fid.weights``); when that key is empty or the file does not
exist, the metric raises :class:`MetricSkipped` and the report lists it as skipped with the key.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["MetricSkipped", "resolve_weights", "load_torchscript", "load_state_dict"]


class MetricSkipped(RuntimeError):
    """A metric cannot run here (weights not configured or absent); ``key`` names the config key."""

    def __init__(self, metric: str, key: str, reason: str):
        self.metric, self.key, self.reason = metric, key, reason
        super().__init__(f"{metric}: skipped ({reason}); set `{key}=/path/to/weights` to enable it")


def resolve_weights(path: str | os.PathLike | None, metric: str, key: str) -> Path:
    """Return ``Path(path)`` if it is an existing file.

    Raises:
        MetricSkipped: ``path`` is empty/None or the file does not exist (message names ``key``).
    """
    if path is None or str(path).strip() == "":
        raise MetricSkipped(metric, key, "no weights configured")
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise MetricSkipped(metric, key, f"weights file not found: {p}")
    return p


def load_torchscript(path, metric: str, key: str, map_location=None) -> torch.jit.ScriptModule:
    """Load a TorchScript module from a local file, in eval mode.

    Raises:
        MetricSkipped: see :func:`resolve_weights`.
        ValueError: the file exists but is not a TorchScript archive (message names the file).
    """
    p = resolve_weights(path, metric, key)
    try:
        module = torch.jit.load(str(p), map_location=map_location)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{metric}: {key}={p} is not a TorchScript file: {exc}") from exc
    return module.eval()


def load_state_dict(path, metric: str, key: str) -> dict[str, torch.Tensor]:
    """Load a state dict (``.safetensors``, or a torch pickle loaded with ``weights_only=True``).

    A checkpoint that wraps the weights (``{"state_dict": ...}`` or ``{"model": ...}``) is unwrapped,
    and a ``module.`` prefix (DataParallel) is stripped.

    Raises:
        MetricSkipped: see :func:`resolve_weights`.
        ValueError: unreadable file or no tensors in it (message names the file).
    """
    p = resolve_weights(path, metric, key)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ValueError(f"{metric}: cannot read weights {key}={p}: {exc}") from exc
    for wrapper in ("state_dict", "model", "net"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{metric}: {key}={p} holds no state dict of tensors (found {type(state).__name__})")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
