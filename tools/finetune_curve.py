"""Quality against training minutes of a ``flap.finetune`` run: benchmark every snapshot, plot the curve.

    python -m flap.finetune video=me.mp4 out=runs/me snapshot_minutes=5      # writes work/snapshots/
    python tools/finetune_curve.py runs/me --threads 2                        # -> runs/me/eval/curve/

For each snapshot (``work/snapshots/minMMM.M``, :class:`flap.training.snapshots.TimedSnapshots`) a
pipeline is assembled with the run's VAE (its fine-tuned decoder ``work/decoder/export``, trained
before the UNet stages, else the base model's VAE) and the base Audio2Flame, and the control benchmark
(:func:`flap.benchmark.run`, protocol ``control``) runs from the held-out portrait
(``eval/portrait.png``) with the given pose scripts: pose error (degrees), identity distance to the
portrait (dlib 128-d, lower is the same person) and dlib face rate. Optionally also the
self-reenactment of the held-out clip (``--reenact``: PSNR, SSIM). Writes ``curve.json`` (one row per
snapshot, resumable: finished rows are kept) and ``curve.png`` (metric against minutes, with the
issue-13 targets: pose error <= 5 deg, identity distance <= 0.45).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

TARGETS = {"pose_error_deg": 5.0, "identity_distance": 0.45}
PANELS = (("pose_error_deg", "pose error [°] ↓"), ("identity_distance", "identity distance ↓"),
          ("face_detected_ratio_dlib", "dlib face rate ↑"), ("psnr", "held-out PSNR [dB] ↑"))


def evaluate_snapshot(run: Path, snap: Path, args: argparse.Namespace) -> dict:
    """Assemble ``snap`` with the run's VAE and the base Audio2Flame, benchmark it; returns the metrics row."""
    from omegaconf import OmegaConf

    from flap.benchmark import run as run_benchmark
    from flap.training.assemble import assemble_pipeline

    plan = json.loads((run / "work" / "plan.json").read_text())
    base = Path(plan["base"])
    work = run / "eval" / "curve" / snap.name
    pipe = work / "pipeline"
    if not (pipe / "model_index.json").is_file():
        audio = base / "audio2flame" if (base / "audio2flame").is_dir() else None
        decoder = run / "work" / "decoder" / "export"
        assemble_pipeline(decoder if (decoder / "config.json").is_file() else base / "vae", snap, audio, pipe, force=True)
    defaults = OmegaConf.load(Path(__file__).resolve().parents[1] / "flap" / "conf" / "benchmark.yaml")
    defaults.pop("hydra", None)
    protocols = ["control"] + (["reenactment"] if args.reenact else [])
    opts = OmegaConf.merge(defaults, {
        "checkpoint": str(pipe), "portraits": str(run / "eval" / "portrait.png"),
        "clips": str(run / "eval" / "holdout.mp4"), "protocols": protocols, "max_frames": args.max_frames,
        "out": str(work / "benchmark"), "max_seconds": 0, "threads": args.threads, "progress": False,
        "control": {"pose_scripts": list(args.poses), "blinks_per_minute": [20], "seconds": args.seconds},
        "sampling": {"strength": 1.0, "num_inference_steps": args.steps},
    })
    res = run_benchmark(opts)
    runs = res["control"]["runs"]
    row = {k: _mean([r.get(k) for r in runs]) for k in ("pose_error_deg", "identity_distance",
                                                         "face_detected_ratio_dlib")}
    reen = res["reenactment"]["mean"]
    if reen:
        row["psnr"] = reen[pipe.name].get("psnr")
        row["psnr_vae"] = reen["vae"].get("psnr")
        row["identity_distance_vae"] = reen["vae"].get("identity_distance")  # the VAE's own identity loss
    info = json.loads((snap / "snapshot.json").read_text())
    shutil.rmtree(pipe / "vae", ignore_errors=True)  # the copies are big; the snapshot keeps the UNets
    return {**info, "snapshot": snap.name, **row, "benchmark": str(work / "benchmark")}


def thin_snapshots(snaps: list[tuple[float, Path]], min_gap: float) -> list[tuple[float, Path]]:
    """Keep snapshots at least ``min_gap`` minutes apart, always the first and the last."""
    kept = []
    for minutes, path in snaps:
        if not kept or minutes - kept[-1][0] >= min_gap:
            kept.append((minutes, path))
    if snaps and kept[-1] != snaps[-1]:
        kept.append(snaps[-1])
    return kept


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def plot_curve(rows: list[dict], path: Path, title: str) -> Path:
    """``curve.png``: one panel per metric against minutes, dashed lines at the issue-13 targets."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from flap.eval.report import save_figure

    panels = [(k, h) for k, h in PANELS if any(r.get(k) is not None for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), squeeze=False)
    for ax, (key, header) in zip(axes[0], panels):
        pts = [(r["minutes"], r[key]) for r in rows if r.get(key) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="tab:blue")
        if key in TARGETS:
            ax.axhline(TARGETS[key], ls="--", color="tab:red", lw=1, label="target")
            ax.legend(fontsize=7)
        ceiling = rows[-1].get(f"{key}_vae")
        if ceiling is not None:  # the held-out frames through the VAE alone: the best any UNet can do
            ax.axhline(ceiling, ls=":", color="gray", lw=1, label="vae ceiling")
            ax.legend(fontsize=7)
        ax.set_xlabel("minutes since the start of the run")
        ax.set_title(header, fontsize=9)
        ax.grid(alpha=0.3)
    return save_figure(fig, path, title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a flap.finetune output folder run with snapshot_minutes=N")
    parser.add_argument("--poses", nargs="+", default=["nod", "turn_left"], help="bundled pose scripts")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each control video [s]")
    parser.add_argument("--steps", type=int, default=12, help="DDIM steps")
    parser.add_argument("--reenact", action="store_true", help="also self-reenact the held-out clip (PSNR)")
    parser.add_argument("--max-frames", type=int, default=25, help="held-out frames re-enacted with --reenact")
    parser.add_argument("--min-gap", type=float, default=0.0,
                        help="skip snapshots closer than this many minutes to the previous one kept (the last is kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ns = parser.parse_args(argv)
    from flap.training.snapshots import list_snapshots

    snaps = list_snapshots(ns.run / "work" / "snapshots")
    if not snaps:
        print(f"finetune_curve: error: {ns.run}/work/snapshots: no snapshots (run flap.finetune with "
              "snapshot_minutes=N)", file=sys.stderr)
        return 1
    snaps = thin_snapshots(snaps, ns.min_gap)
    out = ns.run / "eval" / "curve"
    out.mkdir(parents=True, exist_ok=True)
    table = out / "curve.json"
    rows = json.loads(table.read_text()) if table.is_file() else []
    done = {r["snapshot"] for r in rows}
    for minutes, snap in snaps:
        if snap.name in done:
            continue
        print(f"snapshot {snap.name} ({minutes:.1f} min) ...", flush=True)
        row = evaluate_snapshot(ns.run, snap, ns)
        rows = sorted([*rows, row], key=lambda r: r["minutes"])
        table.write_text(json.dumps(rows, indent=1))
        print(json.dumps({k: row.get(k) for k in ("minutes", *dict(PANELS))}), flush=True)
    plot_curve(rows, out / "curve.png", f"flap.finetune {ns.run.name}: quality against minutes")
    print(f"wrote {table} and {out / 'curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
