"""FLAP's own error types: bad input a user can fix, reported as one line (no traceback).

Every error a user can cause with a bad file, key or value derives from :class:`FlapError`; the
command-line entry points (:func:`flap.cli_support.run_command`) print its message as one line
(``<command>: error: <message>``) and exit with :attr:`FlapError.exit_code`. Any other exception is
a bug in FLAP and keeps its traceback. The subclasses are also ``ValueError`` /
``FileNotFoundError`` so code that caught those before keeps working.

Messages name the file or key, what was expected and what was found (docs/DESIGN.md, "Conventions").
"""

from __future__ import annotations

__all__ = ["FlapError", "InputError", "InputNotFoundError", "UsageError", "OutputError", "one_line"]


class FlapError(Exception):
    """Base of FLAP's user-facing errors; the message is one line naming the file or key."""

    #: process exit status of a command that stops with this error
    exit_code = 1


class InputError(FlapError, ValueError):
    """An input file or value exists but is unusable (corrupt, wrong layout, out of range)."""


class InputNotFoundError(FlapError, FileNotFoundError):
    """An input file or folder named by the user does not exist."""


class UsageError(FlapError, ValueError):
    """A command-line key has a value of the wrong type or range (exit status 2, like argparse)."""

    exit_code = 2


class OutputError(FlapError, ValueError):
    """The requested output path cannot be written (a folder, parent is a file, not writable ...)."""


def one_line(message: object) -> str:
    """``str(message)`` with line breaks and runs of blanks folded, for a one-line error report."""
    return " ".join(str(message).split())
