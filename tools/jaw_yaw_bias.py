"""Does the tracked jaw opening move with the head's yaw in real footage? (A check of the tracker.)

    python tools/jaw_yaw_bias.py outputs/data/flap_all_128 --plot jaw_yaw.png

Reads every ``clips/*/coeffs.npz`` of a prepared data folder (``python -m flap.data.prepare``), and
reports :func:`flap.eval.pose.jaw_yaw_coupling` pooled over the clips whose yaw moves (each clip
centred on its own means), then per clip. Real speakers do not close their mouths because they turn,
so a clearly negative coupling is a tracker bias; the control benchmark's ``jaw r`` on scripts that
turn the head (``turn_left``, ``look_around``) inherits it. ``--plot`` writes the centred jaw opening,
averaged in 2.5° bins of centred ``|yaw|``, with the fitted line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def load_clips(root: Path) -> dict[str, np.ndarray]:
    """``{clip name: (T, 120) coefficients}`` of a prepared data folder; raises FileNotFoundError if none."""
    files = sorted(root.glob("clips/*/coeffs.npz"))
    if not files:
        raise FileNotFoundError(f"{root}: no clips/*/coeffs.npz (expected a `flap.data.prepare` output folder)")
    return {f.parent.name: np.load(f)["coeffs"] for f in files}


def _plot(pooled: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, slope = pooled["per_frame"]["abs_yaw"], pooled["per_frame"]["jaw"], pooled["slope_deg_per_deg"]
    edges = np.arange(np.floor(x.min() / 2.5) * 2.5, x.max() + 2.5, 2.5)
    idx = np.digitize(x, edges)
    bins = [i for i in np.unique(idx) if (idx == i).sum() >= 20]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(x, y, s=2, alpha=0.15, color="grey", label="frames")
    ax.plot([edges[i - 1] + 1.25 for i in bins], [y[idx == i].mean() for i in bins], "o-",
            label="mean per 2.5° bin (≥ 20 frames)")
    ax.plot(edges, slope * edges, "r--", label=f"fit: {slope:+.2f}° jaw per ° |yaw|")
    ax.set_xlabel("|yaw| − clip mean [°]")
    ax.set_ylabel("tracked jaw − clip mean [°]")
    ax.set_ylim(-12, 12)
    ax.legend(fontsize=7)
    ax.set_title("tracked jaw opening against head turn (real clips)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("prepared", type=Path, help="a `python -m flap.data.prepare` output folder")
    ap.add_argument("--plot", type=Path, help="write the binned plot here (PNG; must not exist)")
    args = ap.parse_args(argv)
    from flap.eval.pose import jaw_yaw_coupling

    if args.plot is not None and args.plot.exists():
        print(f"jaw_yaw_bias: --plot {args.plot} exists; choose a new file", file=sys.stderr)
        return 2
    try:
        clips = load_clips(args.prepared)
        pooled = jaw_yaw_coupling(clips.values())
    except (FileNotFoundError, ValueError) as exc:
        print(f"jaw_yaw_bias: {exc}", file=sys.stderr)
        return 1
    print(f"pooled over {pooled['sequences']} clips, {pooled['frames']} frames: r = {pooled['corr']:+.3f}, "
          f"slope {pooled['slope_deg_per_deg']:+.3f}° jaw per ° of |yaw|")
    for name, c in clips.items():
        try:
            one = jaw_yaw_coupling([c])
        except ValueError:
            continue
        print(f"  {name:40s} r = {one['corr']:+.2f}  slope {one['slope_deg_per_deg']:+.2f}")
    if args.plot is not None:
        _plot(pooled, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
