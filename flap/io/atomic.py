"""Atomic file output: write to a temporary file in the destination folder, then rename.

A failure (exception, Ctrl-C) inside :func:`atomic_output` removes the temporary file, so a
half-written file never appears under the final name (docs/DESIGN.md, "Conventions"). Temporary names
are hidden and carry the writer's process id (``.<stem>.<pid>-<random>.tmp<suffix>``), so a file
left by a killed process (SIGKILL, power loss) is recognised and removed by the next write into
that folder (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from flap.errors import OutputError

__all__ = ["atomic_folder", "atomic_output", "check_not_input", "remove_stale_temps"]


def check_not_input(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Refuse to write ``path`` when it is one of ``inputs`` (same file after resolving links).

    Returns:
        ``Path(path)``.

    Raises:
        flap.errors.OutputError (a ValueError): ``path`` names one of the input files (FLAP never
            overwrites its inputs).
    """
    out = Path(path)
    for src in inputs:
        if src is None:
            continue
        src = Path(src)
        same = False
        if src.exists() and out.exists():
            same = os.path.samefile(src, out)
        else:
            same = src.resolve() == out.resolve()
        if same:
            raise OutputError(f"refusing to overwrite input file {src} (output path {out} is the same file)")
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = ()
) -> Iterator[Path]:
    """Context manager yielding a temporary path to write; renamed to ``path`` on success.

    The temporary file lives in the same folder as ``path`` (so the final ``os.replace`` is atomic)
    and keeps the same suffix (so writers that pick a format from the extension still work). The
    parent folder is created if needed. On any exception the temporary file is deleted and the
    exception re-raised; an existing file at ``path`` is then left untouched.

    Args:
        path: final output path.
        inputs: paths that must not be overwritten (see :func:`check_not_input`).

    Raises:
        ValueError: ``path`` is one of ``inputs``.

    Example::

        with atomic_output("out/coeffs.npz") as tmp:
            np.savez(tmp, x=x)
    """
    final = check_not_input(path, inputs)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.{os.getpid()}-", suffix=f".tmp{final.suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise RuntimeError(f"atomic_output: nothing was written for {final}")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, *, merge: bool = False) -> Iterator[Path]:
    """Context manager yielding a temporary folder beside ``path`` to fill; published on success.

    On success the folder replaces ``path`` (an existing folder there is removed first) or, with
    ``merge=True``, its files are moved into ``path`` one by one (other files in ``path``, e.g. a
    README, are kept). Published files get the usual permissions (temporary files may be private).
    On any exception the temporary folder is deleted and ``path`` is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        mode = 0o666 & ~_umask()
        for f in tmp.rglob("*"):
            if f.is_file():
                os.chmod(f, mode)
        if merge:
            final.mkdir(parents=True, exist_ok=True)
            for f in sorted(tmp.iterdir()):
                os.replace(f, final / f.name)
        else:
            os.chmod(tmp, 0o777 & ~_umask())
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


#: temporary names of :func:`atomic_output` (``.o.<pid>-<random>.tmp.mp4``) and of
#: ``HeadCoeffs.save`` (``.o.coeffs.npz.tmp<pid>.npz``); group ``pid`` is the writer's process id
_TEMP_NAMES = (
    re.compile(r"^\..+\.(?P<pid>\d+)-[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$"),
    re.compile(r"^\..+\.tmp(?P<pid>\d+)(\.[A-Za-z0-9]+)?$"),
)
#: temporary names without a process id (older FLAP versions): removed once older than this (s)
_LEGACY_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp\.[A-Za-z0-9]+$")
LEGACY_TEMP_AGE = 3600.0


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's) or cannot tell: keep its file
    return True


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete FLAP temporary files in ``folder`` whose writing process no longer exists.

    Only hidden files matching FLAP's temporary names are considered; files of running processes
    (another FLAP run writing into the same folder) are kept. Returns the removed paths.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        name = entry.name
        if not name.startswith(".") or ".tmp" not in name:
            continue
        match = next((m for m in (r.match(name) for r in _TEMP_NAMES) if m), None)
        if match is not None:
            stale = not _alive(int(match["pid"]))
        else:
            try:
                stale = bool(_LEGACY_TEMP.match(name)) and now - entry.stat().st_mtime > LEGACY_TEMP_AGE
            except OSError:
                stale = False
        if stale and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed
