"""Acceptance checks for a trained Audio2Flame (issue 4), also a command line tool.

    python -m flap.audio.check --model checkpoints/audio2flame --tracked data/tracked \\
        --media "../shared/data/video/grid/*.mpg" --held-out lbax4n sbia1a

- held-out lip sync: Pearson r between predicted and tracked jaw opening on each held-out clip at
  the best lag within ±2 frames (target r ≥ 0.5);
- held-out head motion: standard deviation over time of the predicted pitch / yaw / roll (degrees)
  against the tracked speaker's; ``pose_std_ratio`` = mean predicted std / mean real std over the
  held-out clips, per axis (issue 13 target: 0.5-1.5);
- silence: 2 s of digital zeros → mean predicted jaw opening vs the 10th percentile of the training
  clips' tracked jaw opening (target: below), and the std of the predicted head rotation in degrees
  (largest of pitch/yaw/roll; target < 3°).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from flap.audio.data import find_clips
from flap.audio.io import SAMPLE_RATE, load_audio
from flap.audio.model import Audio2Flame
from flap.flame.coeffs import HeadCoeffs, jaw_opening
from flap.signals import best_lag_correlation

__all__ = ["held_out_jaw", "pose_std_ratio", "silence_check", "main"]


def held_out_jaw(
    model: Audio2Flame, clips: list[tuple[str, str, str]], max_lag: int = 2, sample_motion: bool = True
) -> dict[str, dict]:
    """Jaw correlation and head-motion spread on held-out ``(name, media, coeffs_path)`` clips.

    ``sample_motion``: include the model's sampled head motion (``Audio2Flame.predict``, seed 0), as
    audio-only generation does.

    Returns:
        ``{name: {"r": Pearson r of the jaw opening at the best lag, "lag": frames,
        "pose_std_deg": [pitch, yaw, roll] std over time of the prediction (degrees),
        "real_pose_std_deg": the same for the tracked coefficients}}``.
    """
    out = {}
    for name, media, coeffs_path in clips:
        tracked = HeadCoeffs.load(coeffs_path)
        pred = model.predict(
            load_audio(media, fps=tracked.fps), fps=tracked.fps, num_frames=tracked.num_frames,
            sample_motion=sample_motion,
        )
        r, lag = best_lag_correlation(jaw_opening(pred.numpy()), jaw_opening(tracked.numpy()), max_lag)
        out[name] = {"r": float(r), "lag": int(lag),
                     "pose_std_deg": pred.pose_degrees().std(dim=0).tolist(),
                     "real_pose_std_deg": tracked.pose_degrees().std(dim=0).tolist()}
    return out


def pose_std_ratio(held_out: dict[str, dict]) -> dict[str, float]:
    """``{"pitch", "yaw", "roll"}``: mean predicted std / mean real std over the clips of :func:`held_out_jaw`."""
    pred = np.mean([c["pose_std_deg"] for c in held_out.values()], axis=0)
    real = np.mean([c["real_pose_std_deg"] for c in held_out.values()], axis=0)
    return {axis: float(p / r) if r > 0 else float("nan") for axis, p, r in zip(("pitch", "yaw", "roll"), pred, real)}


def silence_check(
    model: Audio2Flame, train_coeffs: list[HeadCoeffs], seconds: float = 2.0
) -> dict[str, float]:
    """Predict on ``seconds`` of digital silence; compare with the training jaw distribution.

    Returns ``silence_jaw_mean`` (rad), ``train_jaw_p10`` (rad), ``silence_rot_std_deg`` (largest std of
    pitch/yaw/roll over frames, degrees).
    """
    pred = model.predict(np.zeros(int(seconds * SAMPLE_RATE), np.float32))
    train_jaw = np.concatenate([jaw_opening(c.numpy()) for c in train_coeffs])
    return {
        "silence_jaw_mean": float(jaw_opening(pred.numpy()).mean()),
        "train_jaw_p10": float(np.percentile(train_jaw, 10)),
        "silence_rot_std_deg": float(pred.pose_degrees().std(dim=0).max()),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="folder written by Audio2Flame.save_pretrained")
    parser.add_argument("--tracked", required=True, help="folder of tracked HeadCoeffs (<stem>.npz)")
    parser.add_argument("--media", nargs="+", required=True, help="glob patterns of the media files")
    parser.add_argument("--held-out", nargs="*", default=[], help="clip stems not used for training")
    parser.add_argument("--no-sample-motion", action="store_true",
                        help="leave out the model's sampled head motion (the regression alone)")
    args = parser.parse_args(argv)
    model = Audio2Flame.from_pretrained(args.model).eval()
    clips = find_clips(args.media, args.tracked)
    held = [c for c in clips if c[0] in args.held_out]
    train = [HeadCoeffs.load(c[2]) for c in clips if c[0] not in args.held_out]
    result = {"held_out": held_out_jaw(model, held, sample_motion=not args.no_sample_motion),
              **silence_check(model, train)}
    if held:
        result["pose_std_ratio"] = pose_std_ratio(result["held_out"])
    result["silence_jaw_below_p10"] = result["silence_jaw_mean"] < result["train_jaw_p10"]
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
