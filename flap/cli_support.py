"""One top-level handler for every FLAP command: errors as one line, clean interruptions.

:func:`run_command` runs a command's body and turns

* a :class:`flap.errors.FlapError` (bad input the user can fix) into one line on stderr,
  ``<command>: error: <message>``, and its exit status (1; 2 for :class:`~flap.errors.UsageError`);
  a ``FileNotFoundError`` (a missing path the user gave) likewise, with status 1, and a required
  Hydra key left at ``???`` with status 2;
* Ctrl-C (SIGINT) and SIGTERM into one line and exit status 130 / 143 (128 + signal number, the
  shell convention). SIGTERM is turned into an exception like Ctrl-C, so every ``finally`` /
  :func:`flap.io.atomic.atomic_output` block runs and no temporary file is left behind.

Any other exception is a bug in FLAP and keeps its full traceback. With ``hydra_run_dir`` a
failed run also removes the run folder Hydra created for it (``outputs/<command>/<time>/`` holding
only Hydra's own files), so a failed run leaves nothing new behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from omegaconf.errors import MissingMandatoryValue

from flap.errors import FlapError, one_line

__all__ = ["Terminated", "check_overrides", "run_command", "run_output_dir", "report", "single_lightning_log"]

T = TypeVar("T")

#: folders that existed when FLAP was imported (Hydra creates its run folder later)
_STARTED_AT = time.time()
_CWD = Path.cwd()
_EXISTING_DIRS: set[Path] = set()
with contextlib.suppress(OSError):
    _EXISTING_DIRS = {p for p in (_CWD, _CWD / "outputs", *(_CWD / "outputs").glob("*")) if p.is_dir()}


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (handled like Ctrl-C)."""

    signum = signal.SIGTERM


def _raise_terminated(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Terminated()


def single_lightning_log() -> None:
    """Print Lightning's messages once: drop the console handler ``import lightning`` adds to its
    ``lightning`` logger when the root logger already has one (Hydra's), which printed each line twice.
    Call it after importing lightning, before building a Trainer.
    """
    import logging

    if not logging.getLogger().hasHandlers():
        return
    own = logging.getLogger("lightning")
    for handler in list(own.handlers):
        if type(handler) is logging.StreamHandler:
            own.removeHandler(handler)


def report(command: str, message: str) -> None:
    """Print ``<command>: <message>`` as one line on stderr."""
    print(f"{command}: {one_line(message)}", file=sys.stderr, flush=True)


def override_error(config_name: str, overrides: list[str]) -> str | None:
    """Why Hydra would refuse ``overrides`` of ``flap/conf/<config_name>.yaml``, as one line, or ``None``.

    Parses each ``key=value`` on its own (so the message names the bad argument), then composes the
    config (unknown keys, unknown config-group options, wrong types) without running anything.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    parser = OverridesParser.create()
    for arg in overrides:
        try:
            parser.parse_overrides([arg])
        except HydraException as exc:
            return f"argument {arg!r} is not key=value ({(str(exc).splitlines() or [type(exc).__name__])[0]})"
    try:
        with initialize_config_dir(config_dir=str(Path(__file__).parent / "conf"), version_base="1.3",
                                   job_name=config_name):
            compose(config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        cause = exc.__cause__
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and getattr(cause, "full_key", None):
            return f"unknown key {cause.full_key!r}"
        message = lines[0]
        first = next((i for i, x in enumerate(lines) if x.startswith("Available options")), None)
        if first is not None:  # a config-group option that does not exist: list the real ones
            options = [x for x in lines[first + 1:] if not x.startswith(("Config search path", "provider="))]
            message += f" (available: {', '.join(options)})"
        elif cause is not None and str(cause):
            message += f" ({str(cause).splitlines()[0]})"
        return message
    return None


def check_overrides(command: str, argv: list[str] | None = None) -> None:
    """Exit with one line (status 2) if Hydra would refuse the command line's ``key=value`` arguments.

    Hydra's own report of a mistyped key spans several lines and ends with a hint about
    ``HYDRA_FULL_ERROR``; this checks first and names the argument. Arguments starting with ``-``
    (``--help``, ``--cfg job``, ``-m``) leave the whole check to Hydra.

    Args:
        command: ``"flap.<name>"``, whose primary config is ``flap/conf/<name>.yaml`` (``"flap.generate"``).
        argv: the arguments (default ``sys.argv[1:]``).

    Raises:
        SystemExit: status 2, after ``<command>: error: <why>; every key: python -m <command> --help``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a.startswith("-") for a in argv):
        return
    error = override_error(command.rsplit(".", 1)[-1], argv)
    if error is not None:
        report(command, f"error: {error}; every key: python -m {command} --help")
        raise SystemExit(2)


def run_command(command: str, body: Callable[..., T], *args, hydra_run_dir: str | os.PathLike | None = None, **kwargs) -> T:
    """Run ``body(*args, **kwargs)`` as the command ``command`` (see the module docstring).

    Returns:
        ``body``'s result.

    Raises:
        SystemExit: 1 / 2 after a FlapError, 130 after Ctrl-C, 143 after SIGTERM (one line printed).
    """
    fresh = hydra_run_dir is not None and _is_fresh_hydra_dir(Path(hydra_run_dir))
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    ok = False
    try:
        result = body(*args, **kwargs)
        ok = True
        return result
    except FlapError as exc:
        report(command, f"error: {exc}")
        raise SystemExit(exc.exit_code) from None
    except FileNotFoundError as exc:  # a path the user gave (libraries name it in the message)
        report(command, f"error: {exc}")
        raise SystemExit(1) from None
    except MissingMandatoryValue as exc:  # a required key (``???`` in the config) not given
        key = getattr(exc, "full_key", None) or "?"
        report(command, f"error: {key}: required, give it on the command line ({key}=...)")
        raise SystemExit(2) from None
    except Terminated:
        report(command, "stopped by SIGTERM; unfinished output files removed")
        raise SystemExit(128 + signal.SIGTERM) from None
    except KeyboardInterrupt:
        report(command, "interrupted (Ctrl-C); unfinished output files removed")
        raise SystemExit(128 + signal.SIGINT) from None
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        if not ok and fresh:
            remove_hydra_run_dir(Path(hydra_run_dir))


def _hydra_files(run_dir: Path) -> set[str]:
    return {".hydra"} | {p.name for p in run_dir.glob("*.log")}


def _is_fresh_hydra_dir(run_dir: Path) -> bool:
    """``run_dir`` holds only Hydra's files, written by this process (so it was created for this run)."""
    try:
        names = {p.name for p in run_dir.iterdir()}
        config = run_dir / ".hydra" / "config.yaml"  # absent with hydra.output_subdir=null
        stamp = (config if config.exists() else run_dir).stat().st_mtime
    except OSError:
        return False
    return names <= _hydra_files(run_dir) and stamp >= _STARTED_AT - 1.0


def remove_hydra_run_dir(run_dir: Path) -> None:
    """Remove a fresh Hydra run folder of a failed run, then its parents that this run created and left empty."""
    if not _is_fresh_hydra_dir(run_dir):  # something else was written there meanwhile: keep it
        return
    import logging

    for handler in logging.getLogger().handlers[:]:  # Hydra's <job>.log handler holds the file open
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == run_dir.resolve():
            handler.close()
            logging.getLogger().removeHandler(handler)
    shutil.rmtree(run_dir, ignore_errors=True)
    parent = run_dir.resolve().parent
    existing = {p.resolve() for p in _EXISTING_DIRS}
    while parent not in existing and parent != parent.parent and _CWD.resolve() in parent.parents:
        try:
            parent.rmdir()  # only if empty
        except OSError:
            break
        parent = parent.parent


def run_output_dir(cfg, default: str) -> Path:
    """Output folder of a command: ``cfg.out`` if set, else Hydra's run folder, else ``default``
    (when called outside a Hydra run, e.g. from Python)."""
    if cfg.get("out"):
        return Path(str(cfg.out))
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path(default)
