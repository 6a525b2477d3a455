"""Pose keyframe table ↔ pose script, and the motion plot of the web studio (:mod:`flap.app`).

The studio edits head motion as a table with one keyframe per row, columns :data:`TABLE_COLUMNS`
(``t`` seconds, ``pitch`` / ``yaw`` / ``roll`` degrees, ``easing``), plus a mode (``replace`` /
``overlay`` / ``fixed``) and a repeat flag. These pure functions convert between that table and a
:class:`flap.control.PoseScript` (the format of the bundled ``flap/control/poses/*.yaml`` scripts) and draw
pitch / yaw / roll / jaw over time.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flap.control import EASINGS, POSE_MODES, PoseScript, PoseScriptError, load_pose_script
from flap.flame.coeffs import HeadCoeffs

__all__ = [
    "TABLE_COLUMNS",
    "TABLE_SOURCE",
    "has_keyframes",
    "jaw_degrees",
    "plot_motion",
    "script_from_table",
    "script_yaml",
    "table_from_script",
]

#: Columns of the keyframe table, in order.
TABLE_COLUMNS = ("t", "pitch", "yaw", "roll", "easing")
#: How errors name the table.
TABLE_SOURCE = "pose table"
_ROW_REF = re.compile(r"keyframes\[(\d+)\](?:\.(\w+))?")


def table_from_script(script) -> tuple[list[list], str, bool]:
    """Rows, mode and repeat flag of a pose script (bundled name, path, mapping or PoseScript).

    Returns:
        ``(rows, mode, repeat)``: ``rows`` is a list of ``[t, pitch, yaw, roll, easing]`` with ``t``
        in seconds (a script with ``frame:`` keyframes is converted at 25 fps) and angles in degrees.

    Raises:
        FileNotFoundError, PoseScriptError: as :func:`flap.control.load_pose_script`.
    """
    parsed = load_pose_script(script)
    rows = [[_clean(k.seconds(25.0)), _clean(k.pitch), _clean(k.yaw), _clean(k.roll), k.easing]
            for k in parsed.keyframes]
    return rows, parsed.mode, parsed.repeat


def _clean(value: float) -> float | int:
    value = round(float(value), 6)
    return int(value) if value.is_integer() else value


def _blank(cell) -> bool:
    if cell is None:
        return True
    if isinstance(cell, float) and math.isnan(cell):
        return True
    return isinstance(cell, str) and not cell.strip()


def has_keyframes(rows: Sequence[Sequence] | None) -> bool:
    """Whether the table has a row with any non-blank cell (an empty table = no pose edit)."""
    return any(not all(_blank(c) for c in row) for row in (rows or ()))


def _cell_number(cell, row: int, column: str) -> float:
    """A table cell as a float; blank = 0 (angles only). Raises PoseScriptError naming the row."""
    if isinstance(cell, bool):
        raise PoseScriptError(f"{TABLE_SOURCE} row {row}: {column} must be a number, got {cell!r}")
    if isinstance(cell, int | float | np.integer | np.floating):
        return float(cell)
    text = str(cell).strip().replace("°", "")
    try:
        return float(text)
    except ValueError:
        raise PoseScriptError(f"{TABLE_SOURCE} row {row}: {column} must be a number, got {cell!r}") from None


def script_from_table(rows: Sequence[Sequence], mode: str = "overlay", repeat: bool = False,
                      description: str = "") -> PoseScript:
    """Validate a keyframe table into a :class:`~flap.control.PoseScript`.

    Args:
        rows: rows ``[t, pitch, yaw, roll, easing]`` (numbers or numeric strings; blank angles are
            0°, a blank easing is ``ease-in-out``; rows that are blank in every cell are skipped).
            ``t`` in seconds, angles in degrees within ±180.
        mode: ``replace``, ``overlay`` or ``fixed`` (see :func:`flap.control.apply_pose`).
        repeat: loop the script (period = time of the last keyframe).
        description: free text stored in the script.

    Raises:
        PoseScriptError: one line naming the row (1-based) and the column, e.g.
            ``pose table row 2: key 'pitch' = 400 is outside [-180, 180] degrees``.
    """
    if mode not in POSE_MODES:
        raise PoseScriptError(f"{TABLE_SOURCE}: mode must be one of {', '.join(POSE_MODES)}, got {mode!r}")
    keyframes = []
    for i, raw in enumerate(rows or (), start=1):
        cells = list(raw) + [None] * (len(TABLE_COLUMNS) - len(raw))
        if all(_blank(c) for c in cells):
            continue
        if len(cells) > len(TABLE_COLUMNS):
            raise PoseScriptError(f"{TABLE_SOURCE} row {i}: expected {len(TABLE_COLUMNS)} cells "
                                  f"({', '.join(TABLE_COLUMNS)}), got {len(cells)}")
        if _blank(cells[0]):
            raise PoseScriptError(f"{TABLE_SOURCE} row {i}: t (seconds) is empty")
        key = {"t": _cell_number(cells[0], i, "t")}
        for name, cell in zip(("pitch", "yaw", "roll"), cells[1:4]):
            key[name] = 0.0 if _blank(cell) else _cell_number(cell, i, name)
        easing = "ease-in-out" if _blank(cells[4]) else str(cells[4]).strip()
        if easing not in EASINGS:
            raise PoseScriptError(f"{TABLE_SOURCE} row {i}: easing must be one of {', '.join(EASINGS)}, got {easing!r}")
        key["easing"] = easing
        keyframes.append((i, key))
    if not keyframes:
        raise PoseScriptError(f"{TABLE_SOURCE}: no keyframes (add a row with t, pitch, yaw, roll)")
    data = {"mode": mode, "repeat": bool(repeat), "keyframes": [k for _, k in keyframes]}
    if description:
        data["description"] = description
    try:
        return PoseScript.from_dict(data, source=TABLE_SOURCE)
    except PoseScriptError as exc:  # "keyframes[1]" -> the table's row number
        message = _ROW_REF.sub(
            lambda m: f"row {keyframes[int(m.group(1))][0]}" + (f" {m.group(2)}" if m.group(2) else ""), str(exc))
        raise PoseScriptError(message.replace(f"{TABLE_SOURCE}: row", f"{TABLE_SOURCE} row")) from None


def script_yaml(script: PoseScript) -> str:
    """The script as YAML text in the format of ``flap/control/poses/*.yaml`` (``load_pose_script`` reads it back).

    Keyframe times are written as ``t`` in seconds (``frame:`` keyframes at 25 fps).
    """
    import yaml

    keys = [{"t": _clean(k.seconds(25.0)), "pitch": _clean(k.pitch), "yaw": _clean(k.yaw),
             "roll": _clean(k.roll), "easing": k.easing} for k in script.keyframes]
    head = {"description": script.description} if script.description else {}
    data = {**head, "mode": script.mode, "repeat": script.repeat}
    text = yaml.safe_dump(data, sort_keys=False)
    lines = [f"  - {{t: {k['t']}, pitch: {k['pitch']}, yaw: {k['yaw']}, roll: {k['roll']}, easing: {k['easing']}}}"
             for k in keys]
    return "# FLAP pose script (flap.control.load_pose_script; python -m flap.generate pose=<this file>)\n" \
        + text + "keyframes:\n" + "\n".join(lines) + "\n"


def jaw_degrees(coeffs: HeadCoeffs) -> np.ndarray:
    """``(T,)`` jaw opening in degrees: the angle of the jaw's axis-angle rotation."""
    return np.degrees(np.linalg.norm(coeffs.jaw.detach().cpu().double().numpy(), axis=1))


def plot_motion(coeffs: HeadCoeffs, path: str | os.PathLike, script: PoseScript | None = None,
                size: tuple[float, float] = (6.4, 3.0), dpi: int = 100) -> Path:
    """Write a PNG plot of head pitch / yaw / roll and jaw opening (degrees) over time (seconds).

    Keyframe times of ``script`` (if given) are drawn as dotted vertical lines (within the clip;
    a repeating script's first loop only).

    Returns:
        ``Path(path)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    t = np.arange(coeffs.num_frames) / coeffs.fps
    pyr = coeffs.pose_degrees().detach().cpu().double().numpy()
    fig = Figure(figsize=size, dpi=dpi)
    ax = fig.add_subplot()
    for values, label, color in ((pyr[:, 0], "pitch", "tab:blue"), (pyr[:, 1], "yaw", "tab:orange"),
                                 (pyr[:, 2], "roll", "tab:green"), (jaw_degrees(coeffs), "jaw", "tab:red")):
        ax.plot(t, values, label=label, color=color, lw=1.6)
    if script is not None:
        for key in script.keyframes:
            if key.seconds(coeffs.fps) <= coeffs.duration:
                ax.axvline(key.seconds(coeffs.fps), color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("degrees")
    ax.set_xlim(0, max(coeffs.duration, 1.0 / coeffs.fps))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=4, fontsize=8, frameon=False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
