#!/usr/bin/env python
"""Preview a pose script or a HeadCoeffs file as a flat-shaded FLAME mesh video (no diffusion).

Usage::

    python tools/preview_pose.py look_around                      # bundled script, 10 s -> outputs/preview_look_around.mp4
    python tools/preview_pose.py nod.yaml --duration 6 --blinks-per-minute 15 --out nod.mp4
    python tools/preview_pose.py my_script.yaml --audio speech.wav  # length and soundtrack from the audio
    python tools/preview_pose.py coeffs.npz --pose tilt --out tilted.mp4  # a HeadCoeffs file, edited

SOURCE is a pose script (bundled name such as ``nod`` / ``nod.yaml``, or a path to a .yaml) applied to
a neutral head, or a HeadCoeffs file (.npz / .safetensors) previewed as is. ``--pose``,
``--blinks-per-minute``, ``--expression-scale``... are the same controls as generation
(:func:`flap.control.apply_controls`). The head model is real FLAME if installed in ``flame_assets/``,
else the proxy (built on demand).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flap.control import apply_controls  # noqa: E402
from flap.control.sources import load_coeffs  # noqa: E402
from flap.flame.coeffs import DEFAULT_FPS, HeadCoeffs  # noqa: E402
from flap.io.formats import COEFF_SUFFIXES  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "source", help="pose script (bundled name or .yaml path) or HeadCoeffs file (.npz/.safetensors)"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output .mp4 (default: outputs/preview_<source>.mp4)"
    )
    p.add_argument(
        "--duration", type=float, default=None, help="seconds (scripts; default 10, or the audio length)"
    )
    p.add_argument(
        "--fps", type=float, default=DEFAULT_FPS, help="frames per second for scripts (default 25)"
    )
    p.add_argument("--size", type=int, default=256, help="frame size in pixels (square, default 256)")
    p.add_argument("--pose", default=None, help="pose script applied on top of a HeadCoeffs file")
    p.add_argument(
        "--blinks-per-minute", type=float, default=None, help="write blinks at this rate (0 = none)"
    )
    p.add_argument("--seed", type=int, default=0, help="blink timing seed")
    p.add_argument("--expression-scale", type=float, default=1.0)
    p.add_argument("--jaw-scale", type=float, default=1.0)
    p.add_argument("--pose-scale", type=float, default=1.0)
    p.add_argument(
        "--audio", type=Path, default=None, help="speech clip to mux (sets the length of script previews)"
    )
    p.add_argument(
        "--model", type=Path, default=None, help="FLAME model file (default: flame_assets/ or the proxy)"
    )
    p.add_argument("--no-annotate", action="store_true", help="do not print time and angles on the frames")
    return p.parse_args(argv)


def main(argv=None) -> Path:
    from flap.cli_support import run_command

    args = parse_args(argv)
    return run_command("preview_pose", _run, args)  # bad input: one clear line, no traceback


def _run(args: argparse.Namespace) -> Path:
    import torch

    from flap.control.preview import write_preview
    from flap.flame.model import FlameModel
    from flap.io import read_audio_track
    from flap.validate import check_float, check_int

    check_float(args.fps, "--fps", 0.0, 1000.0, open_min=True)
    check_float(args.duration, "--duration", 0.0, open_min=True, allow_none=True)
    check_int(args.size, "--size", 16)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    t0 = time.perf_counter()
    audio = None if args.audio is None else read_audio_track(args.audio, 16000)
    is_coeffs = Path(args.source).suffix.lower() in COEFF_SUFFIXES
    if is_coeffs:
        base = load_coeffs(args.source)
        pose = args.pose
    else:
        if args.pose is not None:
            sys.exit("preview_pose: --pose is for HeadCoeffs files; the SOURCE is already a pose script")
        seconds = (
            args.duration
            if args.duration is not None
            else (len(audio) / 16000 if audio is not None else 10.0)
        )
        base = HeadCoeffs.neutral(max(1, round(seconds * args.fps)), args.fps)
        pose = args.source
    coeffs = apply_controls(
        base,
        pose=pose,
        blinks_per_minute=args.blinks_per_minute,
        seed=args.seed,
        expression_scale=args.expression_scale,
        jaw_scale=args.jaw_scale,
        pose_scale=args.pose_scale,
    )
    out = args.out or Path("outputs") / f"preview_{Path(str(args.source)).stem}.mp4"
    model = FlameModel(args.model)
    write_preview(
        out,
        coeffs,
        model=model,
        size=(args.size, args.size),
        audio=audio,
        annotate=not args.no_annotate,
        inputs=[args.audio, args.source if is_coeffs else None],
    )
    print(
        f"wrote {out}: {coeffs.num_frames} frames at {coeffs.fps:g} fps in {time.perf_counter() - t0:.2f} s"
    )
    return out


if __name__ == "__main__":
    main()
