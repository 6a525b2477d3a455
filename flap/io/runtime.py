"""Run-time settings shared by the command-line tools: the compute device and callables named in configs."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

__all__ = ["import_callable", "resolve_device"]


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` / ``None`` / ``""`` → CUDA if available, else Apple MPS if available, else CPU;
    anything else (``"cpu"``, ``"cuda:1"``, a :class:`torch.device`) is passed to :class:`torch.device`."""
    if name is None or str(name) in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def import_callable(spec: str | Callable, what: str = "callable") -> Callable:
    """A callable from itself or from its dotted name: ``"package.module.function"`` or
    ``"package.module:function"``.

    Raises:
        ImportError: the module or function does not exist (the message names ``what`` and ``spec``).
    """
    if callable(spec):
        return spec
    text = str(spec)
    module, sep, name = text.partition(":") if ":" in text else text.rpartition(".")
    try:
        if not (module and sep and name):
            raise ValueError("expected 'package.module.function' or 'package.module:function'")
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ImportError(f"{what} `{text}` not found ({exc})") from exc
    if not callable(fn):
        raise ImportError(f"{what} `{text}` is not callable")
    return fn
