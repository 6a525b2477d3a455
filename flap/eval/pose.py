"""Pose-following and expression-following errors: requested vs tracked FLAME coefficients.

FLAP's central claim is precise head-pose control (paper Sec. 4.1, Fig. 1/4); the paper shows it
in pictures only. Here the generated video is tracked with the FLAME tracker and its per-frame
pitch / yaw / roll (degrees, :meth:`HeadCoeffs.pose_degrees`) are compared with the requested ones.
"""

from __future__ import annotations

import numpy as np
import torch

from flap.flame.coeffs import HeadCoeffs, jaw_opening
from flap.flame.rotations import axis_angle_to_degrees, axis_angle_to_matrix
from flap.signals import pearson, resample_to_length

__all__ = [
    "AXES",
    "align_sequences",
    "pose_following",
    "jaw_following",
    "lip_following",
    "expression_following",
    "jaw_yaw_coupling",
]

AXES = ("pitch", "yaw", "roll")
#: a requested axis moving less than this (standard deviation, degrees) has no defined correlation
_MIN_STD_DEG = 1e-3


def align_sequences(
    requested: HeadCoeffs, tracked: HeadCoeffs, valid=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Put both coefficient sequences on the requested frame timeline.

    When the frame counts or rates differ, the tracked sequence is linearly resampled over the
    shorter common duration (rotations as axis-angle, fine for the small per-frame steps of a
    video), and the requested one is cut to that duration.

    Args:
        valid: optional ``(T_tracked,)`` bool, frames where the tracker found a face.

    Returns:
        ``(req (N,120) float64, trk (N,120) float64, keep (N,) bool, info)``; ``info`` gives the
        frame counts.

    Raises:
        ValueError: ``valid`` does not have one entry per tracked frame.
    """
    req, trk = requested.numpy().astype(np.float64), tracked.numpy().astype(np.float64)
    mask = np.ones(len(trk), bool) if valid is None else np.asarray(valid, bool).ravel()
    if len(mask) != len(trk):
        raise ValueError(f"valid has {len(mask)} entries, the tracked sequence has {len(trk)} frames")
    dur = min(requested.duration, tracked.duration)
    n = max(1, min(len(req), int(round(dur * requested.fps))))
    req = req[:n]
    n_trk = max(1, min(len(trk), int(round(dur * tracked.fps))))
    if n_trk != n or tracked.fps != requested.fps:
        trk = resample_to_length(trk[:n_trk], n)
        keep = resample_to_length(mask[:n_trk].astype(float), n) > 0.999
    else:
        trk, keep = trk[:n], mask[:n]
    info = {"frames_requested": len(requested), "frames_tracked": len(tracked), "frames_compared": n}
    return req, trk, keep, info


def _wrap_deg(d: np.ndarray) -> np.ndarray:
    return (d + 180.0) % 360.0 - 180.0


def pose_following(requested: HeadCoeffs, tracked: HeadCoeffs, valid=None) -> dict:
    """Head-pose following error of a generated video.

    Args:
        requested: the conditions given to the generator (``global_rot`` used).
        tracked: coefficients tracked from the generated video.
        valid: optional ``(T_tracked,)`` bool, frames where the tracker found a face (others are
            left out of the statistics).

    Returns:
        dict with ``pose_error_deg`` (the headline number: mean geodesic angle between the
        requested and tracked head rotations, i.e. the angle of ``R_req^T R_trk``; it does not
        depend on the Euler decomposition and a one-axis failure is not diluted by the other two
        axes), ``pose_error_deg_max``, ``mae_deg`` (per-axis MAE averaged over pitch, yaw, roll, as
        in head-pose estimation benchmarks), ``mae_deg_<axis>``, ``corr_<axis>`` (Pearson; ``nan``
        when the requested axis is constant), ``bias_deg_<axis>`` (mean signed error),
        ``mae_centered_deg`` (error after removing that constant bias), frame counts, and
        ``per_frame`` = ``{"requested": (N,3), "tracked": (N,3)}`` degrees for plots.
    """
    req, trk, keep, info = align_sequences(requested, tracked, valid)
    if not keep.any():
        raise ValueError("pose_following: no frame with a tracked face to compare")
    req_rot = torch.from_numpy(req[:, 0:3])
    trk_rot = torch.from_numpy(trk[:, 0:3])
    req_deg = axis_angle_to_degrees(req_rot).numpy()  # same conversion as HeadCoeffs.pose_degrees()
    trk_deg = axis_angle_to_degrees(trk_rot).numpy()
    err = _wrap_deg(trk_deg - req_deg)[keep]
    rel = axis_angle_to_matrix(req_rot).transpose(-1, -2) @ axis_angle_to_matrix(trk_rot)
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    geo = torch.rad2deg(torch.arccos(cos)).numpy()[keep]
    out: dict = {
        "pose_error_deg": float(geo.mean()),
        "pose_error_deg_max": float(geo.max()),
        "mae_deg": float(np.abs(err).mean()),
    }
    bias = err.mean(0)
    out["mae_centered_deg"] = float(np.abs(err - bias).mean())
    for i, ax in enumerate(AXES):
        out[f"mae_deg_{ax}"] = float(np.abs(err[:, i]).mean())
        out[f"bias_deg_{ax}"] = float(bias[i])
        out[f"corr_{ax}"] = pearson(req_deg[keep, i], trk_deg[keep, i], min_std=_MIN_STD_DEG)
        out[f"requested_range_deg_{ax}"] = float(np.ptp(req_deg[keep, i]))
    out.update(info, frames_valid=int(keep.sum()))
    out["per_frame"] = {"requested": req_deg, "tracked": trk_deg, "valid": keep}
    return out


def jaw_following(requested: HeadCoeffs, tracked: HeadCoeffs, valid=None) -> dict:
    """Correlation (and MAE in degrees) between requested and tracked jaw opening.

    Returns:
        ``{"jaw_corr", "jaw_mae_deg", "per_frame": {"requested", "tracked"} (N,) radians}``;
        ``jaw_corr`` is ``nan`` when the requested jaw does not move.
    """
    req, trk, keep, _ = align_sequences(requested, tracked, valid)
    jr, jt = jaw_opening(req), jaw_opening(trk)
    return {
        "jaw_corr": pearson(jr[keep], jt[keep]),
        "jaw_mae_deg": float(np.degrees(np.abs(jr - jt)[keep]).mean()),
        "per_frame": {"requested": jr, "tracked": jt},
    }


def lip_following(requested: HeadCoeffs, lip_gap, valid=None) -> dict:
    """Correlation of the requested jaw opening with the seen inner-lip gap (:func:`flap.signals.inner_lip_gap`).

    The model-free companion of :func:`jaw_following`: both should agree when the tracker reads the
    mouth faithfully; a high ``jaw r`` with a ``lip r`` near 0 is a tracker artefact.

    Args:
        requested: ``(T, 120)`` coefficients the frames were generated from.
        lip_gap: ``(T_frames,)`` metres; frames beyond the shorter sequence are ignored.
        valid: ``(T_frames,)`` bool, frames with landmarks.

    Returns:
        ``{"lip_corr"}`` (``nan`` when the requested jaw does not move or fewer than 3 frames are valid).
    """
    jaw = jaw_opening(requested.numpy().astype(np.float64))
    gap = np.asarray(lip_gap, np.float64).ravel()
    n = min(len(jaw), len(gap))
    keep = np.isfinite(gap[:n]) & (np.ones(n, bool) if valid is None else np.asarray(valid, bool).ravel()[:n])
    return {"lip_corr": pearson(jaw[:n][keep], gap[:n][keep])}  # nan below 3 frames or without motion


def expression_following(requested: HeadCoeffs, tracked: HeadCoeffs, top_k: int = 10, valid=None) -> dict:
    """Mean Pearson correlation over the ``top_k`` expression coefficients that vary most in the request.

    Returns:
        ``{"expression_corr", "expression_coeffs": [indices]}``; ``nan`` if no coefficient varies.
    """
    req, trk, keep, _ = align_sequences(requested, tracked, valid)
    er, et = req[keep, 20:120], trk[keep, 20:120]
    order = np.argsort(-er.std(0))[:top_k]
    order = [int(i) for i in order if er[:, i].std() > 1e-6]
    cors = [pearson(er[:, i], et[:, i]) for i in order]
    cors = [c for c in cors if np.isfinite(c)]
    return {"expression_corr": float(np.mean(cors)) if cors else float("nan"), "expression_coeffs": order}


def jaw_yaw_coupling(sequences, min_yaw_std_deg: float = 4.0) -> dict:
    """How much the tracked jaw opening moves with the head's yaw, pooled over sequences.

    A check of the tracker (or of data), not of a generator: in real talking-head footage the jaw
    opening should not depend on how far the head is turned, so a clear negative coupling means the
    tracker reads a turned mouth as more closed, and any "jaw r" measured while the head turns
    (e.g. the ``turn_left`` control run) inherits that bias. Each sequence is centred on its own
    means (person and speech style drop out); sequences whose yaw barely moves are skipped.

    Args:
        sequences: iterable of ``(T_i, 120)`` FLAME coefficient arrays (tracked), radians.
        min_yaw_std_deg: skip sequences whose yaw standard deviation is below this (degrees).

    Returns:
        ``{"corr", "slope_deg_per_deg", "frames", "sequences", "per_frame"}``: Pearson r and
        least-squares slope of the centred jaw opening (degrees) against the centred ``|yaw|``
        (degrees, Euler yaw as in :func:`pose_following`); ``per_frame`` = ``{"abs_yaw", "jaw"}``,
        the pooled centred ``(N,)`` values in degrees, for plots.

    Raises:
        ValueError: no sequence has enough yaw motion.
    """
    jaws, yaws = [], []
    for coeffs in sequences:
        coeffs = np.asarray(coeffs, np.float64)
        yaw = np.abs(axis_angle_to_degrees(torch.from_numpy(coeffs[:, 0:3])).numpy()[:, 1])
        if yaw.std() < min_yaw_std_deg:
            continue
        jaw = np.degrees(jaw_opening(coeffs))
        jaws.append(jaw - jaw.mean())
        yaws.append(yaw - yaw.mean())
    if not jaws:
        raise ValueError(f"jaw_yaw_coupling: no sequence with yaw std >= {min_yaw_std_deg} deg")
    jaw, yaw = np.concatenate(jaws), np.concatenate(yaws)
    return {"corr": pearson(yaw, jaw), "slope_deg_per_deg": float(np.dot(yaw, jaw) / max(np.dot(yaw, yaw), 1e-12)),
            "frames": int(jaw.size), "sequences": len(jaws), "per_frame": {"abs_yaw": yaw, "jaw": jaw}}
