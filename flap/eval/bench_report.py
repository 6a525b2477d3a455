"""Tables and plots of ``python -m flap.benchmark`` (self-reenactment and control benchmark).

Every file is written atomically (:func:`flap.io.atomic.atomic_output`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from flap.eval.report import save_figure
from flap.io.atomic import atomic_output

__all__ = ["REENACT_COLUMNS", "CONTROL_COLUMNS", "mean_rows", "markdown_table", "write_text", "plot_bars", "save_strip",
           "save_control_strip"]

#: (key, header) of the self-reenactment table; arrows say which way is better
REENACT_COLUMNS = (
    ("psnr", "PSNR dB ↑"),
    ("ssim", "SSIM ↑"),
    ("lmd", "LMD ↓"),
    ("apd_deg", "APD ° ↓"),
    ("aed", "AED ↓"),
    ("jaw_corr", "jaw r ↑"),
    ("lip_corr", "lip r ↑"),
    ("identity_distance", "ID dist ↓"),
    ("face_detected_ratio", "face MP ↑"),
    ("face_detected_ratio_dlib", "face dlib ↑"),
)
#: (key, header) of the control table
CONTROL_COLUMNS = (
    ("pose_error_deg", "pose err ° ↓"),
    ("corr_pitch", "r pitch ↑"),
    ("corr_yaw", "r yaw ↑"),
    ("corr_roll", "r roll ↑"),
    ("jaw_corr", "jaw r ↑"),
    ("lip_corr", "lip r ↑"),
    ("blinks_requested", "blinks asked"),
    ("blinks_detected", "blinks found"),
    ("blink_count_abs_error", "|blink err| ↓"),
    ("identity_distance", "ID dist ↓"),
    ("face_detected_ratio_dlib", "face dlib ↑"),
    ("runs", "runs"),
)


def _finite_mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if vals:
        return float(np.mean(vals))
    inf = [float(v) for v in values if v is not None and math.isinf(float(v))]
    return inf[0] if inf and len(inf) == len([v for v in values if v is not None]) else None


def mean_rows(records: Sequence[Mapping], keys: Sequence[str]) -> dict:
    """Mean of each key over the records (``nan`` / ``None`` left out; all-``inf`` stays ``inf``)."""
    return {k: _finite_mean([r.get(k) for r in records]) for k in keys} | {"runs": len(records)}


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    v = float(v)
    if math.isinf(v):
        return "∞"
    return "n/a" if math.isnan(v) else f"{v:.3f}"


def markdown_table(rows: Mapping[str, Mapping], columns: Sequence[tuple[str, str]], first: str = "") -> str:
    """A Markdown table: one row per ``rows`` entry, one column per ``(key, header)``."""
    lines = ["| " + " | ".join([first, *(h for _, h in columns)]) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(columns)) + "|"]
    for name, row in rows.items():
        lines.append("| " + " | ".join([str(name), *(_fmt(row.get(k)) for k, _ in columns)]) + " |")
    return "\n".join(lines) + "\n"


def write_text(path: str | os.PathLike, text: str, inputs: Sequence = ()) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    with atomic_output(path, inputs=inputs) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


def plot_bars(path: str | os.PathLike, rows: Mapping[str, Mapping], columns: Sequence[tuple[str, str]],
              title: str = "", inputs: Sequence = ()) -> Path:
    """PNG with one bar panel per column (metric), one bar per row (method / script); n/a bars left empty."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cols = [(k, h) for k, h in columns if k != "runs"]
    ncol = min(3, len(cols))
    nrow = math.ceil(len(cols) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 2.2 + 0.25 * len(rows)) if nrow == 1
                             else (4.2 * ncol, nrow * (1.2 + 0.25 * len(rows))), squeeze=False)
    names = list(rows)
    for ax, (key, header) in zip(axes.ravel(), cols):
        raw = [rows[n].get(key) for n in names]
        vals = [float(v) if v is not None and math.isfinite(float(v)) else np.nan for v in raw]
        ax.barh(range(len(names)), np.nan_to_num(vals), color="tab:blue")
        for i, (v, r) in enumerate(zip(vals, raw)):
            label = f" {v:.2f}" if np.isfinite(v) else (" ∞" if r is not None and math.isinf(float(r)) else " n/a")
            ax.text(0, i, label, va="center", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(header, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes.ravel()[len(cols):]:
        ax.axis("off")
    return save_figure(fig, path, title, inputs)


def save_strip(path: str | os.PathLike, rows: Mapping[str, np.ndarray], num: int = 6, inputs: Sequence = ()) -> Path:
    """PNG of ``num`` evenly spaced frames per row (e.g. real / vae / generated crops), row names on the left."""
    from PIL import Image, ImageDraw

    strips = []
    for name, frames in rows.items():
        idx = np.linspace(0, len(frames) - 1, min(num, len(frames))).round().astype(int)
        strip = np.concatenate([frames[i] for i in idx], axis=1)
        im = Image.fromarray(np.ascontiguousarray(strip))
        ImageDraw.Draw(im).text((3, 3), name, fill=(255, 255, 0))
        strips.append(np.asarray(im))
    width = max(s.shape[1] for s in strips)
    strips = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in strips]
    with atomic_output(path, inputs=inputs) as tmp:
        Image.fromarray(np.concatenate(strips, axis=0)).save(tmp, format="PNG")
    return Path(path)


def save_control_strip(path: str | os.PathLike, frames: np.ndarray, requested_deg: np.ndarray,
                       tracked_deg: np.ndarray | None = None, num: int = 8, inputs: Sequence = ()) -> Path:
    """PNG of ``num`` evenly spaced generated frames, each labelled with the requested head pose and,
    if given, the pose tracked from that frame (what the eye should check against the numbers).

    Args:
        frames: ``uint8 (T, H, W, 3)`` generated crops.
        requested_deg: ``(T, 3)`` requested pitch / yaw / roll in degrees.
        tracked_deg: ``(T, 3)`` tracked pitch / yaw / roll in degrees (``nan`` rows: no face found).
        num: frames shown.
    """
    from PIL import Image, ImageDraw

    frames = np.asarray(frames)
    h, w = frames.shape[1:3]
    idx = np.linspace(0, len(frames) - 1, min(num, len(frames))).round().astype(int)
    band = 26
    canvas = Image.new("RGB", (w * len(idx), h + band), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for col, i in enumerate(idx):
        canvas.paste(Image.fromarray(np.ascontiguousarray(frames[i])), (col * w, 0))
        p, y, _ = requested_deg[i]
        draw.text((col * w + 2, h + 1), f"#{i} ask y{y:+.0f} p{p:+.0f}", fill=(255, 255, 0))
        if tracked_deg is not None:
            tp, ty, _ = tracked_deg[i]
            text = "no face" if not np.isfinite(ty) else f"got y{ty:+.0f} p{tp:+.0f}"
            draw.text((col * w + 2, h + 13), text, fill=(120, 220, 255))
    with atomic_output(path, inputs=inputs) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)
