"""Control benchmark: does the generated video follow a pose script and a blink rate?

For one reference portrait, one bundled pose script (``flap/control/poses/``) and one ``blinks_per_minute``:
generate from the portrait and a speech clip with those controls, track the generated face crops,
and compare with the requested coefficients: pose error and per-axis correlation
(:func:`flap.eval.pose.pose_following`), the correlation of the tracked jaw opening with the
requested one (the speech drives it through Audio2Flame; :func:`flap.eval.pose.jaw_following`), blinks detected in the tracked eyelids against blinks in
the requested eyelids (:func:`flap.eval.blinks.blink_count_error`), plus identity distance to the
portrait and the face rates of MediaPipe and dlib.
"""

from __future__ import annotations

import numpy as np
import torch

from flap.eval.blinks import blink_count_error, count_blinks
from flap.eval.dlib_face import identity_distance, reference_descriptor
from flap.eval.pose import jaw_following, lip_following, pose_following
from flap.eval.reenactment import track_frames
from flap.signals import inner_lip_gap

__all__ = ["control_run"]

_POSE_KEYS = ("pose_error_deg", "mae_deg", "corr_pitch", "corr_yaw", "corr_roll", "jaw_corr", "lip_corr")


def control_run(
    pipe,
    tracker,
    portrait: str,
    pose: str,
    blinks_per_minute: float,
    speech: np.ndarray,
    num_frames: int,
    sampling: dict,
    fps: float = 25.0,
    identity_frames: int = 16,
) -> tuple[dict, np.ndarray, dict]:
    """Generate one controlled video and score it.

    Args:
        portrait: reference portrait path.
        pose: bundled pose-script name (``nod``) or path.
        blinks_per_minute: requested blink rate (0 = eyes open).
        speech: ``float32 (N,)`` 16 kHz speech driving the expression.
        num_frames: video length in frames at ``fps``.
        sampling: :meth:`FLAPPipeline.iter_frames` keyword arguments plus ``seed``.

    Returns:
        ``(metrics, frames uint8 (T, S, S, 3))``; metrics hold ``pose_error_deg``, ``mae_deg``,
        ``corr_<axis>`` (``nan`` for an axis the script keeps still), ``jaw_corr`` (tracked against
        requested jaw opening; ``nan`` when the requested jaw does not move), ``lip_corr`` (the seen
        inner-lip gap against the requested jaw opening, :func:`flap.eval.pose.lip_following`), ``blinks_requested``,
        ``blinks_detected``, ``blink_count_error``, ``identity_distance``,
        ``face_detected_ratio`` and ``face_detected_ratio_dlib``.
        The third item is ``{"requested": (T, 3), "tracked": (T, 3)}``: pitch / yaw / roll in degrees
        per frame (tracked ``nan`` where no face was found), for strips and plots.
    """
    sampling = dict(sampling)
    seed = int(sampling.pop("seed", 0))
    controls = {"pose": pose, "blinks_per_minute": float(blinks_per_minute), "seed": seed}
    crop, final, _ = pipe.prepare(portrait, audio=speech, controls=controls, fps=fps, num_frames=num_frames)
    generator = torch.Generator().manual_seed(seed)
    frames = np.stack(list(pipe.iter_frames(crop, final, generator=generator, paste=False, progress=False, **sampling)))
    out: dict = {"portrait": str(portrait), "pose": str(pose), "blinks_per_minute": float(blinks_per_minute),
                 "frames": len(frames), "fps": fps}
    res, track = track_frames(frames, fps, tracker)
    out["face_detected_ratio"] = float(track.valid.mean())
    per_frame = {"requested": final.pose_degrees().numpy()[: len(frames)], "tracked": np.full((len(frames), 3), np.nan)}
    if res is None:
        out.update({k: float("nan") for k in _POSE_KEYS})
        out.update(blinks_requested=count_blinks(final.eyelids.numpy()), blinks_detected=None,
                   blink_count_error=None, blink_count_abs_error=None)
    else:
        pose_res = pose_following(final, res.coeffs, track.valid)
        out.update({k: pose_res[k] for k in _POSE_KEYS if k not in ("jaw_corr", "lip_corr")})
        out["jaw_corr"] = jaw_following(final, res.coeffs, track.valid)["jaw_corr"]
        gap = inner_lip_gap(track.lmk68, res.camera[:, 0].numpy())
        out["lip_corr"] = lip_following(final, gap, track.valid)["lip_corr"]
        trk = pose_res["per_frame"]["tracked"]
        if len(trk) == len(frames):
            per_frame["tracked"] = np.where(pose_res["per_frame"]["valid"][:, None], trk, np.nan)
        out.update(blink_count_error(final.eyelids.numpy(), res.coeffs.eyelids.numpy(), valid=track.valid))
    ident = identity_distance(frames, reference_descriptor(crop.crop), max_frames=identity_frames)
    out["identity_distance"] = ident["identity_distance"]
    out["face_detected_ratio_dlib"] = ident["face_detected_ratio_dlib"]
    return out, frames, per_frame
