"""Sampled head motion: the part of a speaker's head motion that the audio does not predict (issue 13).

A regressor from speech predicts the *typical* head motion for a sound; real speakers move more, and
most of that motion is not in the audio (the same sentence is said with different nods). Audio2Flame
therefore adds, on top of its prediction, a sampled motion whose size fills the gap to the training
speakers' typical spread, in the spirit of the stochastic pose generators of SadTalker (PoseVAE) and
Audio2Head:

- per axis (pitch / yaw / roll, degrees), a stationary Gaussian process: white noise smoothed by a
  Gaussian kernel of ``smooth_frames`` frames (autocorrelation ``exp(-k² / (4 s²))`` at lag ``k``), fitted
  to the autocorrelation of the training speakers' tracked head rotation (:func:`fit_head_motion`);
- with standard deviation ``sqrt(max(std_deg² − s_pred², 0))`` per clip, where ``std_deg`` is the mean
  over the training clips of the tracked speakers' standard deviation over time and ``s_pred`` the
  prediction's own: a prediction that already moves as much gets nothing;
- scaled per frame by the speech activity of the audio (:func:`speech_activity`): the head moves
  while the person speaks and stays with the prediction in silence;
- composed on SO(3) with the predicted rotation, ``R = R(sampled) @ R(predicted)`` (never by adding
  angles); the jaw, expression, eyes and eyelids are untouched.

Small pure functions; the model applies them in :meth:`flap.audio.model.Audio2Flame.predict`.
"""

from __future__ import annotations

import numpy as np
import torch

from flap.flame.coeffs import SLICES, HeadCoeffs
from flap.flame.rotations import compose_axis_angle, degrees_to_axis_angle
from flap.signals import speech_envelope

__all__ = ["fit_head_motion", "smoothed_noise", "speech_activity", "add_head_motion"]


def _autocorrelation(x: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Autocorrelation of a 1-D series (its mean removed) at ``lags`` (frames, each < len(x))."""
    x = x - x.mean()
    energy = float((x * x).sum())
    if energy == 0.0:
        return np.zeros(len(lags))
    return np.array([(x[:-k] * x[k:]).sum() / energy for k in lags])


def fit_head_motion(poses_deg: list[np.ndarray], max_lag: int = 25) -> dict[str, list[float]]:
    """Fit the sampled-motion parameters to tracked head rotations of real speakers.

    Args:
        poses_deg: one ``(T_i, 3)`` array per clip, pitch / yaw / roll in degrees (clips of any length;
            those not longer than a lag are left out of that lag's autocorrelation).
        max_lag: fit the autocorrelation at lags ``1..max_lag`` frames.

    Returns:
        ``{"std_deg": [pitch, yaw, roll], "smooth_frames": [pitch, yaw, roll]}``: the mean over clips of
        the standard deviation over time (degrees), and per axis the Gaussian smoothing width ``s``
        (frames, 0.25 grid in [0.5, 20]) whose autocorrelation ``exp(-k² / (4 s²))`` is nearest (least
        squares) to the clips' mean autocorrelation.

    Raises:
        ValueError: no clips, or a clip that is not ``(T, 3)`` with ``T ≥ 2``.
    """
    if not poses_deg:
        raise ValueError("fit_head_motion: no clips")
    for i, p in enumerate(poses_deg):
        if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] < 2:
            raise ValueError(f"fit_head_motion: clip {i}: expected (T >= 2, 3) degrees, got {p.shape}")
    lags = np.arange(1, max_lag + 1)
    widths = np.arange(0.5, 20.0 + 1e-9, 0.25)
    model = np.exp(-(lags[None, :] ** 2) / (4.0 * widths[:, None] ** 2))  # (W, L)
    std, smooth = [], []
    for axis in range(3):
        std.append(float(np.mean([p[:, axis].std() for p in poses_deg])))
        total, count = np.zeros(len(lags)), np.zeros(len(lags))
        for p in poses_deg:
            n = int(np.sum(lags < len(p)))  # lags this clip is long enough for
            total[:n] += _autocorrelation(p[:, axis], lags[:n])
            count[:n] += 1
        ok = count > 0
        acf = np.divide(total, count, out=np.zeros(len(lags)), where=ok)
        smooth.append(float(widths[np.argmin(((model[:, ok] - acf[ok]) ** 2).sum(1))]))
    return {"std_deg": std, "smooth_frames": smooth}


def smoothed_noise(num_frames: int, smooth_frames: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(T,)`` stationary Gaussian noise of unit variance, white noise smoothed by a Gaussian kernel.

    The kernel (width ``smooth_frames`` frames, cut at ±4 widths) is scaled to unit energy, so every frame
    has variance exactly 1 and lag-``k`` correlation ``exp(-k² / (4 s²))`` (up to the cut). Drawn on the CPU
    in float64. ``smooth_frames <= 0`` gives white noise.
    """
    half = max(0, int(np.ceil(4.0 * smooth_frames)))
    k = torch.arange(-half, half + 1, dtype=torch.float64)
    w = torch.exp(-(k**2) / (2.0 * smooth_frames**2)) if smooth_frames > 0 else (k == 0).double()
    w = w / w.square().sum().sqrt()
    e = torch.randn(num_frames + 2 * half, generator=generator, dtype=torch.float64)
    return torch.nn.functional.conv1d(e[None, None], w.flip(0)[None, None])[0, 0]


def speech_activity(
    audio: np.ndarray,
    sr: int,
    fps: float,
    num_frames: int,
    floor_db: float = -50.0,
    range_db: float = 35.0,
    smooth_seconds: float = 0.4,
) -> np.ndarray:
    """``(num_frames,)`` speech activity in [0, 1] per video frame, from the audio's loudness.

    A frame is active when its RMS level (:func:`flap.signals.speech_envelope`, two frame periods
    centred on it) is above ``floor_db`` dBFS and within ``range_db`` dB of the loudest frame; the 0/1
    track is then averaged over a moving window of ``smooth_seconds`` so the motion fades in and out.
    Digital silence gives zeros.

    Args:
        audio: ``(N,)`` float mono at ``sr`` Hz.
    """
    level = 20.0 * np.log10(speech_envelope(audio, sr, fps, num_frames) + 1e-12)
    active = (level > floor_db) & (level > level.max() - range_db)
    width = max(1, int(round(smooth_seconds * fps)))
    padded = np.pad(active.astype(np.float64), (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def add_head_motion(
    coeffs: HeadCoeffs,
    std_deg,
    smooth_frames,
    generator: torch.Generator | None = None,
    activity: np.ndarray | None = None,
) -> HeadCoeffs:
    """Return a copy of ``coeffs`` whose head rotation gets the sampled motion described in the module.

    Args:
        coeffs: ``(T, 120)`` predicted coefficients.
        std_deg: ``(3,)`` target standard deviation over time of pitch / yaw / roll, degrees.
        smooth_frames: ``(3,)`` Gaussian smoothing widths in frames of ``coeffs.fps``.
        generator: CPU random generator (seed it for a reproducible sample).
        activity: ``(T,)`` factor in [0, 1] per frame (:func:`speech_activity`); ``None`` = 1.

    Raises:
        ValueError: ``std_deg`` or ``smooth_frames`` not 3 finite non-negative numbers, or ``activity``
            not ``(T,)``.
    """
    std = np.asarray(std_deg, dtype=np.float64)
    smooth = np.asarray(smooth_frames, dtype=np.float64)
    for name, v in (("std_deg", std), ("smooth_frames", smooth)):
        if v.shape != (3,) or not np.all(np.isfinite(v)) or np.any(v < 0):
            raise ValueError(f"add_head_motion: {name} must be 3 finite numbers >= 0, got {v.tolist()}")
    out = coeffs.clone()
    t = coeffs.num_frames
    pred_std = coeffs.pose_degrees().double().std(dim=0, unbiased=False).numpy() if t > 1 else np.zeros(3)
    fill = np.sqrt(np.clip(std**2 - pred_std**2, 0.0, None))
    noise = torch.stack([fill[a] * smoothed_noise(t, float(smooth[a]), generator) for a in range(3)], dim=1)
    if activity is not None:
        activity = np.asarray(activity, dtype=np.float64)
        if activity.shape != (t,):
            raise ValueError(f"add_head_motion: activity must have shape ({t},), got {activity.shape}")
        noise = noise * torch.from_numpy(activity)[:, None]
    rot = out.data[:, SLICES["global_rot"]].double()
    out.data[:, SLICES["global_rot"]] = compose_axis_angle(rot, degrees_to_axis_angle(noise)).to(out.data.dtype)
    return out
