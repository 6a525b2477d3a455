"""Calibrate Audio2Flame's head-motion gain on its training clips (issue 13), also a command line tool.

    python -m flap.audio.calibrate --model checkpoints/audio2flame --tracked outputs/a2f/tracked \\
        --media "outputs/a2f/media/*.wav" --held-out lbax4n sbia1a --out outputs/a2f/calibrated

A regressor trained with L1 predicts the typical head motion for a sound: its pitch / yaw / roll
move less than the real speakers' (the standard deviation over time is 0.4-0.8x theirs). The gain
per axis is (mean real std) / (mean predicted std) over the *training* clips (the held-out clips
are left out, so ``flap.audio.check`` on them stays an honest measurement); it is stored in the
model's config as ``pose_gain`` and applied around each prediction's own mean
(:meth:`flap.audio.model.Audio2Flame._apply_pose_gain`): the jaw, the expression and the mean head
orientation are unchanged.

It then fits the sampled head motion (:mod:`flap.audio.motion`) on the same training clips' tracked
head rotation: the speakers' mean standard deviation over time per axis and the smoothness of their
motion, stored as ``head_motion``; ``predict`` fills each prediction's spread up to that size with smooth
random motion (the part of head motion that is not in the audio). Writes a new model folder (never
over ``--model``) and prints JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flap.audio.check import held_out_jaw, pose_std_ratio
from flap.audio.data import find_clips
from flap.audio.model import Audio2Flame
from flap.audio.motion import fit_head_motion
from flap.flame.coeffs import HeadCoeffs

__all__ = ["pose_gain", "head_motion", "main"]


def pose_gain(model: Audio2Flame, clips: list[tuple[str, str, str]]) -> list[float]:
    """Gains ``[pitch, yaw, roll]`` that make the mean predicted std equal the mean real std on ``clips``.

    Measured with the model's current ``pose_gain`` applied (and without its sampled head motion), so
    the result replaces it.

    Raises:
        ValueError: no clips, or an axis that neither the prediction nor the data moves.
    """
    if not clips:
        raise ValueError("pose_gain: no training clips to calibrate on (check --media / --tracked / --held-out)")
    ratio = pose_std_ratio(held_out_jaw(model, clips, sample_motion=False))
    old = model.config.get("pose_gain") or (1.0, 1.0, 1.0)
    gains = []
    for g, (axis, r) in zip(old, ratio.items()):
        if not r > 0:
            raise ValueError(f"pose_gain: the predicted {axis} does not move on the training clips (ratio {r})")
        gains.append(float(g) / r)
    return gains


def head_motion(clips: list[tuple[str, str, str]]) -> dict[str, list[float]]:
    """``{"std_deg", "smooth_frames"}`` of :func:`flap.audio.motion.fit_head_motion` on the clips' tracked poses.

    Raises:
        ValueError: no clips.
    """
    if not clips:
        raise ValueError("head_motion: no training clips to fit on (check --media / --tracked / --held-out)")
    return fit_head_motion([HeadCoeffs.load(c[2]).pose_degrees().double().numpy() for c in clips])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="folder written by Audio2Flame.save_pretrained")
    parser.add_argument("--tracked", required=True, help="folder of tracked HeadCoeffs (<stem>.npz)")
    parser.add_argument("--media", nargs="+", required=True, help="glob patterns of the media files")
    parser.add_argument("--held-out", nargs="*", default=[], help="clip stems left out of the calibration")
    parser.add_argument("--out", required=True, type=Path, help="new model folder")
    args = parser.parse_args(argv)
    if args.out.resolve() == args.model.resolve():
        parser.error(f"--out {args.out}: is the input model; choose a new folder")
    model = Audio2Flame.from_pretrained(args.model).eval()
    train = [c for c in find_clips(args.media, args.tracked) if c[0] not in args.held_out]
    gains = pose_gain(model, train)
    motion = head_motion(train)
    model.register_to_config(pose_gain=gains, head_motion=motion)
    model.save_pretrained(args.out)
    result = {"pose_gain": dict(zip(("pitch", "yaw", "roll"), gains)), "head_motion": motion,
              "clips": len(train), "out": str(args.out)}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
