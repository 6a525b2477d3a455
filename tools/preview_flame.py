#!/usr/bin/env python
"""Write a preview PNG of the head model (real FLAME if installed, else the proxy) at a few poses.

Usage::

    python tools/preview_flame.py                      # -> outputs/preview_flame.png
    python tools/preview_flame.py --out preview.png --size 320
    python tools/preview_flame.py --model flame_assets/generic_model.pkl

A grid of flat-shaded renders (:mod:`flap.render`): front, yaw ±30°, pitch ±20°, roll 15°, jaw open
0.3 rad, and smile (expression 0) with closed eyelids, each labelled. Written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

#: (label, pitch/yaw/roll degrees, jaw pitch radians, expression 0, eyelids)
POSES = [
    ("front", (0, 0, 0), 0.0, 0.0, 0.0),
    ("yaw +30", (0, 30, 0), 0.0, 0.0, 0.0),
    ("yaw -30", (0, -30, 0), 0.0, 0.0, 0.0),
    ("pitch +20", (20, 0, 0), 0.0, 0.0, 0.0),
    ("pitch -20", (-20, 0, 0), 0.0, 0.0, 0.0),
    ("roll +15", (0, 0, 15), 0.0, 0.0, 0.0),
    ("jaw 0.3 rad", (0, 0, 0), 0.3, 0.0, 0.0),
    ("smile, eyes shut", (0, 15, 0), 0.0, 2.0, 1.0),
]


def pose_coeffs():
    """HeadCoeffs with one frame per entry of :data:`POSES`."""
    import torch

    from flap.flame.coeffs import HeadCoeffs

    coeffs = HeadCoeffs.neutral(len(POSES))
    coeffs.set_pose_degrees([p[1] for p in POSES])
    coeffs.jaw[:, 0] = torch.tensor([p[2] for p in POSES])
    coeffs.expression[:, 0] = torch.tensor([p[3] for p in POSES])
    coeffs.eyelids[:] = torch.tensor([p[4] for p in POSES])[:, None]
    return coeffs


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("outputs") / "preview_flame.png", help="output .png")
    p.add_argument("--size", type=int, default=256, help="cell size in pixels (default 256)")
    p.add_argument("--cols", type=int, default=4, help="cells per row (default 4)")
    p.add_argument(
        "--model", type=Path, default=None, help="FLAME model file (default: flame_assets/ or proxy)"
    )
    args = p.parse_args(argv)

    import cv2

    from flap.control.preview import iter_preview_frames
    from flap.flame.model import FlameModel
    from flap.io import atomic_output

    try:
        model = FlameModel(args.model)
    except (FileNotFoundError, ValueError) as exc:
        sys.exit(f"preview_flame: {exc}")
    cells = list(iter_preview_frames(pose_coeffs(), model=model, size=(args.size, args.size), annotate=False))
    for cell, (label, *_rest) in zip(cells, POSES):
        cv2.putText(
            cell,
            label,
            (8, args.size - 12),
            cv2.FONT_HERSHEY_SIMPLEX,
            args.size / 512,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    rows = -(-len(cells) // args.cols)
    cells += [np.zeros_like(cells[0])] * (rows * args.cols - len(cells))
    grid = np.concatenate(
        [np.concatenate(cells[r * args.cols : (r + 1) * args.cols], axis=1) for r in range(rows)]
    )
    cv2.putText(
        grid,
        f"{model.model_path.parent.name}/{model.model_path.name}",
        (8, 20),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (180, 180, 180),
        1,
        cv2.LINE_AA,
    )
    with atomic_output(args.out) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
            raise RuntimeError(f"preview_flame: could not write {args.out}")
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]}, model {model.model_path})")
    return args.out


if __name__ == "__main__":
    main()
