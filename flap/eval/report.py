"""Evaluation outputs: JSON, a readable table (Markdown and plain text) and per-frame plots.

Every file is written through :func:`flap.io.atomic.atomic_output`, so an interrupted run never
leaves a half-written report.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from flap.io.atomic import atomic_output

__all__ = ["to_jsonable", "write_json", "format_table", "write_tables", "plot_following", "save_figure", "TABLE_ROWS"]

#: (key in the metrics dict, label, unit) in display order; absent keys are left out.
TABLE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("error", "ERROR", ""),
    ("face_detected_ratio", "frames with a face found", "ratio"),
    ("face_detected_ratio_dlib", "frames with a face found by dlib (HOG)", "ratio"),
    ("identity_distance", "identity distance to reference (dlib; < 0.6 = same person)", "L2"),
    ("pose.pose_error_deg", "pose error (geodesic, mean)", "deg"),
    ("pose.mae_deg", "pose MAE (mean of axes)", "deg"),
    ("pose.mae_deg_pitch", "pose MAE pitch", "deg"),
    ("pose.mae_deg_yaw", "pose MAE yaw", "deg"),
    ("pose.mae_deg_roll", "pose MAE roll", "deg"),
    ("pose.pose_error_deg_max", "pose error (geodesic, max)", "deg"),
    ("pose.mae_centered_deg", "pose MAE, constant bias removed", "deg"),
    ("pose.corr_pitch", "pose corr pitch", "r"),
    ("pose.corr_yaw", "pose corr yaw", "r"),
    ("pose.corr_roll", "pose corr roll", "r"),
    ("jaw.jaw_corr", "jaw opening corr", "r"),
    ("jaw.jaw_mae_deg", "jaw MAE", "deg"),
    ("expression.expression_corr", "expression corr (top-10 coeffs)", "r"),
    ("lipsync.mouth_envelope_corr", "mouth opening vs speech envelope (best lag)", "r"),
    ("lipsync.best_lag_frames", "  best lag (mouth after sound)", "frames"),
    ("jitter.jitter_iod", "landmark jitter / inter-ocular distance", "ratio"),
    ("jitter.jitter_px", "landmark jitter", "px"),
    ("syncnet.sync_c", "SyncNet SYNC-C", "higher=better"),
    ("syncnet.sync_d", "SyncNet SYNC-D", "lower=better"),
    ("hyperiqa.hyperiqa", "HyperIQA", "0-100"),
    ("identity.identity_cos_mean", "identity cosine to reference", "r"),
    ("fid.fid", "FID", ""),
    ("fvd.fvd", "FVD", ""),
)


def to_jsonable(obj):
    """Convert numpy/torch values to JSON types; NaN and inf become ``None``."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "detach"):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, data, inputs: Sequence = ()) -> Path:
    """Write ``data`` (converted with :func:`to_jsonable`) as indented JSON, atomically."""
    with atomic_output(path, inputs=inputs) as tmp:
        tmp.write_text(json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return Path(path)


def _lookup(metrics: Mapping, dotted: str):
    cur = metrics
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "n/a" if not math.isfinite(v) else f"{v:.3f}"
    return str(v)


def format_table(results: Sequence[Mapping], markdown: bool = True) -> str:
    """A table of the main metrics: one column per evaluated video, one row per metric.

    Skipped metrics are listed under the table with the config key that enables each.
    """
    names = [str(r.get("name", f"video {i}")) for i, r in enumerate(results)]
    rows = [
        (f"{label} [{unit}]" if unit else label, [_fmt(_lookup(r, key)) for r in results])
        for key, label, unit in TABLE_ROWS
        if any(_lookup(r, key) is not None for r in results)
    ]
    header = ["metric", *names]
    body = [[label, *vals] for label, vals in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(names)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
    else:
        widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
        lines = [
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))
            )
            for row in [header, *body]
        ]
        lines.insert(1, "-" * len(lines[0]))
    skipped: dict[str, str] = {}
    for r in results:
        for metric, info in (r.get("skipped") or {}).items():
            skipped.setdefault(metric, f"{info.get('reason', '')}; enable with `{info.get('key', '?')}`")
    if skipped:
        lines += ["", "Skipped metrics:" if not markdown else "**Skipped metrics:**"]
        lines += [f"- {m}: {why}" for m, why in sorted(skipped.items())]
    return "\n".join(lines) + "\n"


def write_tables(
    out_stem: str | os.PathLike, results: Sequence[Mapping], inputs: Sequence = ()
) -> tuple[Path, Path]:
    """Write ``<out_stem>.md`` and ``<out_stem>.txt`` atomically; returns both paths."""
    paths = []
    for suffix, md in ((".md", True), (".txt", False)):
        p = Path(f"{out_stem}{suffix}")
        with atomic_output(p, inputs=inputs) as tmp:
            tmp.write_text(format_table(results, markdown=md), encoding="utf-8")
        paths.append(p)
    return paths[0], paths[1]


def plot_following(
    path: str | os.PathLike, per_frame: Mapping, fps: float, title: str = "", inputs: Sequence = ()
) -> Path:
    """PNG of requested vs tracked pitch / yaw / roll per frame (and jaw, mouth vs speech when given).

    Args:
        per_frame: ``{"pose": {"requested": (N,3), "tracked": (N,3), "valid": (N,)} degrees,
            "jaw": {"requested": (N,), "tracked": (N,)} radians (optional),
            "lipsync": {"mouth": (N,), "envelope": (N,)} (optional)}``.
        fps: frame rate (x axis in seconds).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    pose = per_frame["pose"]
    panels = [("pitch", 0), ("yaw", 1), ("roll", 2)]
    extra = [k for k in ("jaw", "lipsync") if per_frame.get(k) is not None]
    fig, axes = plt.subplots(
        len(panels) + len(extra), 1, figsize=(9, 2.0 * (len(panels) + len(extra))), sharex=True
    )
    req, trk = np.asarray(pose["requested"]), np.asarray(pose["tracked"])
    t = np.arange(len(req)) / fps
    valid = np.asarray(pose.get("valid", np.ones(len(req), bool)), bool)
    for ax, (name, i) in zip(axes, panels):
        ax.plot(t, req[:, i], label="requested", color="tab:blue", lw=1.5)
        ax.plot(t, np.where(valid, trk[:, i], np.nan), label="tracked", color="tab:orange", lw=1.2)
        ax.set_ylabel(f"{name} [deg]")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8)
    for ax, key in zip(axes[len(panels) :], extra):
        d = per_frame[key]
        if key == "jaw":
            ax.plot(t, np.degrees(np.asarray(d["requested"])[: len(t)]), label="requested", color="tab:blue")
            jaw_trk = np.degrees(np.asarray(d["tracked"], np.float64)[: len(t)])
            ax.plot(t, np.where(valid, jaw_trk, np.nan), label="tracked", color="tab:orange")
            ax.set_ylabel("jaw [deg]")
        else:

            def norm(x):
                x = np.asarray(x, np.float64)[: len(t)]
                return (x - np.nanmin(x)) / max(np.nanmax(x) - np.nanmin(x), 1e-12)

            ax.plot(t[: len(d["envelope"])], norm(d["envelope"]), label="speech envelope", color="tab:green")
            ax.plot(t[: len(d["mouth"])], norm(d["mouth"]), label="mouth opening", color="tab:red")
            ax.set_ylabel("normalised")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time [s]")
    return save_figure(fig, path, title, inputs)


def save_figure(fig, path: str | os.PathLike, title: str | None = None, inputs: Sequence = ()) -> Path:
    """Write a matplotlib figure as a PNG (90 dpi, atomically, never over one of ``inputs``) and close it.

    Args:
        fig: the figure.
        path: output ``.png``.
        title: optional figure title (``suptitle``).
        inputs: paths the output must not replace.
    """
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_output(path, inputs=inputs) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(path)
