"""Self-reenactment protocol (FOMM, LivePortrait and talking-head papers): regenerate a real clip.

For each real clip: the reference is its first frame, the condition is the clip's tracked FLAME
coefficients, and the generated frames are compared with the real ones on face crops of the
generator's size. FLAP's condition (paper Eq. 3) has head rotation but no image translation or
scale, and the training data is cut with a face-following crop (:mod:`flap.data.crop`, paper
Sec. 5.1), so a generated head stays centred in its crop. Two crops of the real frames:

* ``crop="tracked"`` (default): the training data's crop, a square head box per frame, smoothed
  over time (:func:`flap.data.crop.smooth_track`), so real and generated heads are both centred
  and PSNR/SSIM compare what the condition determines.
* ``crop="fixed"``: the first frame's square (:func:`flap.portrait.crop_portrait`) on every frame,
  as a user's portrait is animated; a real head that drifts in the frame then costs PSNR that no
  condition can recover (the demo's held-out head drifts ~10 px of 128: 13.8 dB against 27.8 dB
  for the ``vae`` row).

Three kinds of frames are scored the same way:

* ``real``: the real crops themselves. PSNR/SSIM/LMD are trivially ∞/1/0; APD, AED, jaw
  correlation and identity distance show the tracker's own noise on crops of that size: the floor
  of each error.
* ``vae``: the real crops encoded and decoded by the checkpoint's VAE: the ceiling any generator
  with that VAE can reach.
* the checkpoint: frames generated from the first frame and the tracked coefficients.

Metrics (:mod:`flap.eval.frame_metrics`, :mod:`flap.eval.dlib_face`): PSNR, SSIM, LMD against the
real crops; APD, AED and jaw correlation of the frames' tracked coefficients against the condition;
``lip_corr``, the seen inner-lip gap against the condition's jaw opening (no FLAME fit involved,
:func:`flap.eval.pose.lip_following`); ``identity_distance`` to the first frame; face rates of
MediaPipe and dlib.
"""

from __future__ import annotations

import numpy as np
import torch

from flap.eval.dlib_face import identity_distance
from flap.eval.frame_metrics import aed, apd, lmd, psnr_ssim
from flap.eval.pose import jaw_following, lip_following
from flap.flame.coeffs import HeadCoeffs
from flap.signals import inner_lip_gap

__all__ = ["CROPS", "track_frames", "score_frames", "vae_roundtrip", "real_crops", "reenact_clip"]


def track_frames(frames: np.ndarray, fps: float, tracker):
    """Track ``uint8 (T, H, W, 3)`` frames in memory: ``(TrackingResult | None, LandmarkTrack)``.

    The result is ``None`` when MediaPipe finds no face in any frame.
    """
    from flap.tracking.landmarks import detect_landmarks

    track = detect_landmarks(frames, fps, allow_no_face=True, source="<frames>")
    if not track.valid.any():
        return None, track
    return tracker.track_landmarks(track), track


def score_frames(
    frames: np.ndarray,
    real: np.ndarray,
    real_lmk68: np.ndarray,
    condition: HeadCoeffs,
    reference_descriptor: np.ndarray,
    tracker,
    identity_frames: int = 16,
) -> dict:
    """Every self-reenactment metric of ``frames`` ``(T, S, S, 3)`` against the real crops ``real``.

    Args:
        real_lmk68: ``(T, 68, 2)`` landmarks of the real crops (NaN where missing).
        condition: the coefficients the frames were generated from ``(T, 120)``.
        reference_descriptor: dlib descriptor ``(128,)`` of the reference (the first real crop).

    Returns:
        ``{"psnr", "ssim", "lmd", "apd_deg", "aed", "jaw_corr", "lip_corr", "identity_distance",
        "face_detected_ratio", "face_detected_ratio_dlib", "frames"}`` (``nan`` where undefined).
    """
    out: dict = psnr_ssim(frames, real)
    res, track = track_frames(frames, condition.fps, tracker)
    out["face_detected_ratio"] = float(track.valid.mean())
    if res is None:
        out.update(lmd=float("nan"), apd_deg=float("nan"), aed=float("nan"), jaw_corr=float("nan"),
                   lip_corr=float("nan"))
    else:
        valid = track.valid[: len(condition)]
        out["lmd"] = lmd(track.lmk68, real_lmk68, track.valid)
        out["apd_deg"] = apd(res.coeffs, condition, valid)
        out["aed"] = aed(res.coeffs, condition, valid)
        out["jaw_corr"] = jaw_following(condition, res.coeffs, track.valid)["jaw_corr"]
        gap = inner_lip_gap(track.lmk68, res.camera[:, 0].numpy())
        out["lip_corr"] = lip_following(condition, gap, track.valid)["lip_corr"]
    ident = identity_distance(frames, reference_descriptor, max_frames=identity_frames)
    out["identity_distance"] = ident["identity_distance"]
    out["face_detected_ratio_dlib"] = ident["face_detected_ratio_dlib"]
    return out


@torch.no_grad()
def vae_roundtrip(vae, crops: np.ndarray, chunk: int = 16) -> np.ndarray:
    """Encode (posterior mode) and decode ``uint8 (T, S, S, 3)`` crops with a diffusers VAE; same shape out."""
    device, dtype = next(vae.parameters()).device, vae.dtype
    out = []
    for s in range(0, len(crops), chunk):
        x = torch.from_numpy(np.ascontiguousarray(crops[s : s + chunk])).permute(0, 3, 1, 2)
        x = x.to(device, dtype) / 127.5 - 1.0
        img = vae.decode(vae.encode(x).latent_dist.mode()).sample.float().clamp(-1, 1)
        out.append(((img + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)


#: Crops of the real frames (module docstring).
CROPS = ("tracked", "fixed")


def real_crops(frames: np.ndarray, size: int, crop: str = "tracked", scale: float = 1.8, sigma: float = 3.0,
               detector=None):
    """The reference :class:`~flap.portrait.PortraitCrop` (first frame) and every real frame's crop ``(T, S, S, 3)``.

    Args:
        frames: ``uint8 (T, H, W, 3)`` RGB.
        size: crop side in pixels.
        crop: ``"tracked"`` (a smoothed head box per frame, as :mod:`flap.data.prepare` cuts the
            training data) or ``"fixed"`` (the first frame's box on every frame).
        scale: crop side / face-box side (``PrepareConfig.crop_scale``).
        sigma: temporal smoothing of the tracked box, frames (``PrepareConfig.smooth_sigma``).
        detector: ``frame -> (x0, y0, w, h) | None``; default MediaPipe.

    Raises:
        flap.tracking.NoFaceError: no face in the first frame.
        ValueError: unknown ``crop``.
    """
    from flap.portrait import PortraitCrop, crop_portrait
    from flap.tracking.faces import crop_frames

    if crop not in CROPS:
        raise ValueError(f"self-reenactment: crop must be one of {CROPS}, got {crop!r}")
    portrait = crop_portrait(frames[0], size, scale=scale, detector=detector, name="first frame")
    if crop == "fixed":
        return portrait, crop_frames(frames, np.tile(np.asarray(portrait.box), (len(frames), 1)), size)
    from flap.data.crop import MediaPipeFaceDetector, detect_face_boxes, smooth_track

    raw = detect_face_boxes(frames, detector or MediaPipeFaceDetector(), scale=scale)
    raw[0] = portrait.box  # the reference is the portrait crop the generator is given
    boxes = smooth_track(raw, sigma)
    real = crop_frames(frames, boxes, size)
    return PortraitCrop(image=frames[0], crop=real[0], box=tuple(float(v) for v in boxes[0])), real


def reenact_clip(
    frames: np.ndarray,
    fps: float,
    pipe,
    tracker,
    sampling: dict,
    identity_frames: int = 16,
    name: str = "clip",
    crop: str = "tracked",
) -> tuple[dict, dict]:
    """Run the protocol on one clip for the ``real``, ``vae`` and generated frames.

    Args:
        frames: ``uint8 (T, H, W, 3)`` real frames (already cut to the benchmark's length).
        pipe: a :class:`~flap.pipeline.FLAPPipeline`.
        tracker: a :class:`~flap.tracking.FlameTracker`.
        sampling: keyword arguments of :meth:`FLAPPipeline.iter_frames` (``num_inference_steps``,
            ``guidance_scale``, ``strength``, ``window``, ``overlap``) plus ``seed``.
        crop: how the real frames are cut, ``"tracked"`` or ``"fixed"`` (module docstring).

    Returns:
        ``({"real": {...}, "vae": {...}, "generated": {...}, "frames", "fps"}, {"real", "vae",
        "generated"} crops ``(T, S, S, 3)`` for picture strips)``.

    Raises:
        ValueError: no face in the clip (names it), or an unknown ``crop``.
    """
    from flap.eval.dlib_face import face_descriptor

    res, _ = track_frames(frames, fps, tracker)
    if res is None:
        raise ValueError(f"self-reenactment: no face in {name}")
    condition = res.coeffs
    portrait, real = real_crops(frames, pipe.image_size, crop=crop)
    _, real_track = track_frames(real, fps, tracker)
    ref = face_descriptor(real[0])
    if ref is None:
        from flap.eval.dlib_face import reference_descriptor

        ref = reference_descriptor(real[0])
    sampling = dict(sampling)
    generator = torch.Generator().manual_seed(int(sampling.pop("seed", 0)))
    generated = np.stack(
        list(pipe.iter_frames(portrait, condition, generator=generator, paste=False, progress=False, **sampling))
    )
    crops = {"real": real, "vae": vae_roundtrip(pipe.vae, real), "generated": generated}
    scores = {
        key: score_frames(c, real, real_track.lmk68, condition, ref, tracker, identity_frames)
        for key, c in crops.items()
    }
    return {**scores, "frames": len(frames), "fps": fps, "name": name}, crops
