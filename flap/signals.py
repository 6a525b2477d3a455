"""Small signal helpers shared by the audio, tracking and evaluation code: correlation, lags,
resampling, gap filling, speech envelope and landmark measures (the weight-free metrics).

All functions take numpy arrays and return plain floats (``nan`` where a quantity is undefined,
for example the correlation of a constant signal), so results serialise to JSON directly.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "pearson",
    "best_lag_correlation",
    "resample_to_length",
    "speech_envelope",
    "inner_lip_gap",
    "mouth_opening",
    "interocular_distance",
    "landmark_jitter",
    "interpolate_missing",
]

# iBUG-68 indices (docs/DESIGN.md: 36-47 eyes, 48-67 mouth)
_OUTER_EYE_CORNERS = (36, 45)
_INNER_LIP_TOP, _INNER_LIP_BOTTOM = (61, 62, 63), (67, 66, 65)
_MOUTH_CORNERS = (48, 54)


def pearson(a, b, min_std: float = 1e-8) -> float:
    """Pearson correlation of two equal-length 1-D signals.

    Returns ``nan`` when a signal is (numerically) constant, i.e. its standard deviation is below
    ``min_std`` (in the signal's units), or with fewer than 3 samples.

    Raises:
        ValueError: lengths differ.
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"pearson: signals have different lengths {a.shape[0]} and {b.shape[0]}")
    if a.size < 3 or a.std() < min_std or b.std() < min_std:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    return float(np.clip((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()), -1.0, 1.0))


def best_lag_correlation(signal, reference, max_lag: int) -> tuple[float, int]:
    """Largest Pearson correlation of ``signal[t + lag]`` with ``reference[t]`` over ``|lag| <= max_lag``.

    A positive lag means ``signal`` follows ``reference`` (e.g. the mouth opens after the sound).

    Returns:
        ``(r, lag_frames)``; ``(nan, 0)`` when no lag has a defined correlation.
    """
    s, r = np.asarray(signal, np.float64).ravel(), np.asarray(reference, np.float64).ravel()
    n = min(len(s), len(r))
    s, r = s[:n], r[:n]
    best, best_lag = float("nan"), 0
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            c = pearson(s[lag:], r[: n - lag]) if n - lag >= 3 else float("nan")
        else:
            c = pearson(s[: n + lag], r[-lag:]) if n + lag >= 3 else float("nan")
        if np.isfinite(c) and (not np.isfinite(best) or c > best):
            best, best_lag = c, lag
    return best, best_lag


def resample_to_length(x, length: int) -> np.ndarray:
    """Linearly resample a ``(T, ...)`` sequence to ``length`` samples over the same time span."""
    x = np.asarray(x, np.float64)
    if len(x) == length:
        return x
    if len(x) == 1:
        return np.repeat(x, length, axis=0)
    src = np.linspace(0.0, 1.0, len(x))
    dst = np.linspace(0.0, 1.0, length)
    flat = x.reshape(len(x), -1)
    out = np.stack([np.interp(dst, src, flat[:, j]) for j in range(flat.shape[1])], axis=1)
    return out.reshape(length, *x.shape[1:])


def speech_envelope(audio, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """RMS loudness of ``audio`` per video frame: ``(num_frames,)``.

    Frame ``t`` covers ``[t / fps - 1/fps, t / fps + 1/fps)`` seconds (two frame periods, centred);
    samples outside the audio count as silence.
    """
    audio = np.asarray(audio, np.float64).ravel()
    hop = sample_rate / fps
    out = np.zeros(num_frames)
    for t in range(num_frames):
        lo, hi = int(round((t - 1) * hop)), int(round((t + 1) * hop))
        seg = audio[max(lo, 0) : max(min(hi, len(audio)), 0)]
        out[t] = np.sqrt((seg * seg).sum() / max(hi - lo, 1))
    return out


def interocular_distance(landmarks) -> np.ndarray:
    """Outer eye-corner distance (iBUG 36-45) per frame, ``(T,)``, in landmark units (pixels)."""
    lm = np.asarray(landmarks, np.float64)
    return np.linalg.norm(lm[:, _OUTER_EYE_CORNERS[0], :2] - lm[:, _OUTER_EYE_CORNERS[1], :2], axis=-1)


def inner_lip_gap(landmarks, scale=None) -> np.ndarray:
    """Mouth opening read from 2D landmarks alone: mean distance of the three inner-lip pairs, ``(T,)``.

    A check that needs no FLAME fit: the tracker splits a mouth opening between the jaw rotation and
    ψ, and that split can drift (docs/DESIGN.md, the contour note), while the gap between the inner
    lips is what a viewer sees. Divided by the weak-perspective ``scale`` (px per metre,
    ``TrackingResult.camera[:, 0]``) it is in metres and does not change with the face's size in
    the frame or with head yaw (unlike :func:`mouth_opening`, whose inter-ocular distance shrinks
    as the head turns).

    Args:
        landmarks: ``(T, 68, 2|3)`` iBUG-68 pixels (NaN rows where no face was found).
        scale: optional ``(T,)`` px per metre; ``None`` returns pixels.

    Raises:
        ValueError: wrong landmark shape, or ``scale`` of another length.
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1] != 68:
        raise ValueError(f"inner_lip_gap: expected (T, 68, 2) iBUG-68 landmarks, got {lm.shape}")
    gap = np.linalg.norm(lm[:, _INNER_LIP_TOP, :2] - lm[:, _INNER_LIP_BOTTOM, :2], axis=-1).mean(1)
    if scale is None:
        return gap
    scale = np.asarray(scale, np.float64).ravel()
    if len(scale) != len(lm):
        raise ValueError(f"inner_lip_gap: {len(lm)} frames of landmarks but {len(scale)} scales")
    return gap / scale


def mouth_opening(landmarks) -> np.ndarray:
    """Inner-lip gap divided by the inter-ocular distance, per frame ``(T,)`` (unitless).

    Args:
        landmarks: ``(T, 68, 2|3)`` iBUG-68 landmarks (pixels).
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1] != 68:
        raise ValueError(f"mouth_opening: expected (T, 68, 2) iBUG-68 landmarks, got {lm.shape}")
    return inner_lip_gap(lm) / np.maximum(interocular_distance(lm), 1e-9)


def landmark_jitter(landmarks, valid=None) -> dict[str, float]:
    """Temporal jitter: mean norm of the landmarks' second difference (acceleration) per frame.

    ``‖l[t+1] − 2 l[t] + l[t−1]‖`` averaged over points and frames, in pixels and divided by the
    inter-ocular distance (``jitter_iod``, unitless; lower is steadier). Frames next to an invalid
    frame (``valid[t] == False``) are left out.

    Args:
        landmarks: ``(T, K, 2|3)`` pixels.
        valid: optional ``(T,)`` bool.

    Returns:
        ``{"jitter_px", "jitter_iod", "frames"}`` (nan with fewer than 3 usable frames).
    """
    lm = np.asarray(landmarks, np.float64)[..., :2]
    t = len(lm)
    ok = np.ones(t, bool) if valid is None else np.asarray(valid, bool)
    if t < 3:
        return {"jitter_px": float("nan"), "jitter_iod": float("nan"), "frames": 0}
    acc = np.linalg.norm(lm[2:] - 2 * lm[1:-1] + lm[:-2], axis=-1).mean(-1)  # (T-2,)
    use = ok[2:] & ok[1:-1] & ok[:-2]
    if not use.any():
        return {"jitter_px": float("nan"), "jitter_iod": float("nan"), "frames": 0}
    res = {"jitter_px": float(acc[use].mean()), "frames": int(use.sum())}
    if lm.shape[1] == 68:
        iod = interocular_distance(lm)[1:-1]
        res["jitter_iod"] = float((acc[use] / np.maximum(iod[use], 1e-9)).mean())
    else:
        res["jitter_iod"] = float("nan")
    return res


def interpolate_missing(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill invalid frames of ``(T, ...)`` by linear interpolation over time (nearest at the ends).

    Raises:
        ValueError: no valid frame.
    """
    values = np.array(values, dtype=np.float64, copy=True)
    valid = np.asarray(valid, dtype=bool)
    if not valid.any():
        raise ValueError("interpolate_missing: no valid frame to interpolate from")
    if valid.all():
        return values
    t = np.arange(len(valid))
    flat = values.reshape(len(valid), -1)
    for j in range(flat.shape[1]):
        flat[~valid, j] = np.interp(t[~valid], t[valid], flat[valid, j])
    return flat.reshape(values.shape)
