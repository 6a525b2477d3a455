"""Checks of user-given values and paths, each failing with one line that names the key.

Used by the command-line entry points before any model is loaded (so a bad argument costs
milliseconds, not a checkpoint load) and by the library where a value would otherwise give a
``ZeroDivisionError`` or a silently wrong result (``guidance_scale=nan``). Messages read
``<key>=<value>: expected ..., found ...``.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from flap.errors import OutputError, UsageError

__all__ = [
    "check_int",
    "check_float",
    "check_bool",
    "check_choice",
    "check_device",
    "check_output_path",
]


def _shown(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def check_int(value, key: str, minimum: int | None = None, allow_none: bool = False) -> int | None:
    """``value`` as an int (``True``/``1.5``/``"abc"`` refused), ``>= minimum`` if given.

    Raises:
        UsageError: naming ``key``, the expected range and the value found.
    """
    if value is None and allow_none:
        return None
    expected = "an integer" + (f" >= {minimum}" if minimum is not None else "") + (" or null" if allow_none else "")
    if isinstance(value, bool):
        raise UsageError(f"{key}={_shown(value)}: expected {expected}, found a boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise UsageError(f"{key}={_shown(value)}: expected {expected}, found text") from None
    if not isinstance(value, int):
        raise UsageError(f"{key}={_shown(value)}: expected {expected}, found {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise UsageError(f"{key}={value}: expected {expected}")
    return value


def check_float(
    value,
    key: str,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_min: bool = False,
    allow_none: bool = False,
) -> float | None:
    """``value`` as a finite float in ``[minimum, maximum]`` (``(minimum, ...`` with ``open_min``).

    NaN and ±inf are always refused (``guidance_scale=nan`` would give a black face).

    Raises:
        UsageError: naming ``key``, the expected range and the value found.
    """
    if value is None and allow_none:
        return None
    lo = "" if minimum is None else (f" > {minimum:g}" if open_min else f" >= {minimum:g}")
    hi = "" if maximum is None else f"{' and' if lo else ''} <= {maximum:g}"
    expected = f"a finite number{lo}{hi}" + (" or null" if allow_none else "")
    if isinstance(value, bool):
        raise UsageError(f"{key}={_shown(value)}: expected {expected}, found a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise UsageError(f"{key}={_shown(value)}: expected {expected}, found text") from None
    if not isinstance(value, (int, float)):
        raise UsageError(f"{key}={_shown(value)}: expected {expected}, found {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise UsageError(f"{key}={value}: expected {expected}")
    if minimum is not None and (value <= minimum if open_min else value < minimum):
        raise UsageError(f"{key}={value:g}: expected {expected}")
    if maximum is not None and value > maximum:
        raise UsageError(f"{key}={value:g}: expected {expected}")
    return value


def check_bool(value, key: str) -> bool:
    """``value`` if it is ``True``/``False`` (Hydra parses ``true``/``false``), else UsageError."""
    if not isinstance(value, bool):
        raise UsageError(f"{key}={_shown(value)}: expected true or false")
    return value


def check_choice(value, key: str, choices: Iterable) -> object:
    """``value`` if it is one of ``choices``, else UsageError listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise UsageError(f"{key}={_shown(value)}: expected one of {', '.join(map(str, choices))}")
    return value


def check_device(name, key: str = "device"):
    """A ``torch.device`` for ``name`` that exists on this machine (``auto``: cuda, mps, else cpu).

    Raises:
        UsageError: not a device name, or CUDA / MPS / that GPU index is not available here.
    """
    import torch

    text = str(name).strip()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UsageError(f"{key}={_shown(name)}: expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"{key}={text}: CUDA is not available on this machine (use device=cpu or device=auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"{key}={text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError(f"{key}={text}: MPS is not available on this machine (use device=cpu or device=auto)")
    elif device.type != "cpu":
        raise UsageError(f"{key}={text}: expected auto, cpu, cuda, cuda:N or mps")
    return device


def check_output_path(
    path,
    key: str = "out",
    suffixes: tuple[str, ...] = (".mp4",),
    also: Iterable[Path] = (),
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Check that ``path`` (and the side files ``also`` written beside it) can be written.

    Done before any work, so a bad ``out=`` fails in milliseconds and nothing is lost: the folder
    (or the nearest existing ancestor, since missing folders are created) must be a writable
    folder, neither path may be an existing folder, and ``path`` must not be one of ``inputs``.
    Writability is tested by creating and removing a hidden probe file (``os.access`` says yes to
    root even on a read-only file system).

    Raises:
        OutputError: naming ``key``, the path and what is wrong.
    """
    out = Path(os.path.expanduser(str(path)))
    if suffixes and out.suffix.lower() not in suffixes:
        raise OutputError(f"{key}={path}: expected a {' or '.join(suffixes)} path")
    for target in (out, *also):
        if target.is_dir():
            raise OutputError(f"{key}={path}: {target} is an existing folder, expected a file path")
    for src in inputs:
        if src is not None and Path(src).exists() and out.exists() and os.path.samefile(src, out):
            raise OutputError(f"{key}={path}: is the input file {src}; FLAP never overwrites its inputs")
    parent = out.parent if str(out.parent) else Path(".")
    ancestor = parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"{key}={path}: {ancestor} is a file, expected a folder to write into")
    try:
        fd, probe = tempfile.mkstemp(prefix=".flap-write-probe.", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{key}={path}: cannot write in folder {ancestor} ({exc.strerror or exc})") from None
    return out
