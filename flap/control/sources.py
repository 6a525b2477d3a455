"""Coefficient sources and mixing: pose from one source, expression from another, per-part scaling.

Paper Sec. 4.1 / Fig. 4: head motion (``c_motion`` = ``global_rot``) and expression (``c_exp`` =
eyes, jaw, eyelids, ψ) are separate conditions, so they can come from different places: the
audio regressor, a tracked video or image, or user coefficients (a file or an array).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

import flap.tracking
from flap.control.pose import scale_rotation
from flap.flame.coeffs import C_EXP_SLICE, C_MOTION_SLICE, COND_DIM, SLICES, HeadCoeffs
from flap.io.formats import COEFF_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES

__all__ = [
    "COEFF_SUFFIXES",
    "IMAGE_SUFFIXES",
    "fit_length",
    "load_coeffs",
    "mix_pose_expression",
    "scale_parts",
]



def load_coeffs(source, fps: float | None = None, max_frames: int | None = None,
                name: str = "coefficient source") -> HeadCoeffs:
    """Turn a coefficient source into :class:`HeadCoeffs`.

    Args:
        source: a :class:`HeadCoeffs`; a ``.npz`` / ``.safetensors`` file written by
            :meth:`HeadCoeffs.save`; a video or image path (tracked with
            :func:`flap.tracking.track_video`, at the video's fps); or an array/tensor
            ``(T, 120)`` (full condition) or ``(T, 100)`` (expression ψ only, the rest neutral).
        fps: frame rate for arrays and images (default 25); ignored for files that store one.
        max_frames: track only the first frames of a video (``None`` = all).
        name: how error messages call the source (e.g. ``"driving video"``).

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: unsupported suffix or array shape (naming the file or the shape found).
        RuntimeError: a video/image source while the tracker is not installed.
    """
    fps_or_default = 25.0 if fps is None else fps
    if isinstance(source, HeadCoeffs):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{name} {str(path)!r}: no such file")
        suffix = path.suffix.lower()
        if suffix in COEFF_SUFFIXES:
            return HeadCoeffs.load(path)
        if suffix in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
            return _track(path, max_frames)
        raise ValueError(
            f"{name} {str(path)!r}: unsupported suffix {suffix!r}; expected coefficients "
            f"{COEFF_SUFFIXES}, an image {IMAGE_SUFFIXES} or a video {VIDEO_SUFFIXES}"
        )
    arr = source.detach().cpu() if isinstance(source, torch.Tensor) else torch.as_tensor(np.asarray(source))
    if arr.ndim == 2 and arr.shape[1] == COND_DIM:
        return HeadCoeffs(arr.clone(), fps_or_default)
    if arr.ndim == 2 and arr.shape[1] == SLICES["expression"].stop - SLICES["expression"].start:
        return HeadCoeffs.from_parts(fps_or_default, expression=arr)
    raise ValueError(
        f"coefficient array: expected (T, {COND_DIM}) or (T, 100) expression, got {tuple(arr.shape)}"
    )


def _track(path: Path, max_frames: int | None = None) -> HeadCoeffs:
    """Track a video or image file with FLAP's FLAME tracker (:func:`flap.tracking.track_video`)."""
    limit = {} if max_frames is None else {"max_frames": max_frames}
    return flap.tracking.track_video(path, **limit).coeffs


def fit_length(
    coeffs: HeadCoeffs, num_frames: int, fps: float | None = None, extend: str = "hold"
) -> HeadCoeffs:
    """Resample ``coeffs`` in time to ``num_frames`` frames at ``fps`` (default: its own fps).

    Frame ``i`` takes the source frame shown at time ``i / fps`` (nearest earlier frame; no
    blending, so rotations stay valid). Past the source's end: ``extend="hold"`` repeats the last
    frame, ``"loop"`` starts again from the first. A one-frame source (an image) is held.

    Raises:
        ValueError: empty source, ``num_frames < 0`` or unknown ``extend``.
    """
    if extend not in ("hold", "loop"):
        raise ValueError(f"fit_length: extend must be 'hold' or 'loop', got {extend!r}")
    if coeffs.num_frames == 0:
        raise ValueError("fit_length: the source has no frames")
    if num_frames < 0:
        raise ValueError(f"fit_length: num_frames must be >= 0, got {num_frames}")
    fps = coeffs.fps if fps is None else float(fps)
    src = np.floor(np.arange(num_frames) * coeffs.fps / fps + 1e-9).astype(np.int64)
    src = np.minimum(src, coeffs.num_frames - 1) if extend == "hold" else src % coeffs.num_frames
    return HeadCoeffs(coeffs.data[torch.as_tensor(src, device=coeffs.data.device)].clone(), fps)


def mix_pose_expression(pose: HeadCoeffs, expression: HeadCoeffs, extend: str = "hold") -> HeadCoeffs:
    """Head motion (``global_rot``) from ``pose`` and expression (``c_exp``) from ``expression``.

    The result has ``pose``'s length and fps; ``expression`` is resampled with :func:`fit_length`
    (``extend`` = ``"hold"`` or ``"loop"`` when it is shorter).
    """
    expr = fit_length(expression, pose.num_frames, pose.fps, extend).to(pose.data.dtype)
    out = pose.clone()
    out.data[:, C_EXP_SLICE] = expr.data[:, C_EXP_SLICE]
    return out


def scale_parts(
    coeffs: HeadCoeffs,
    expression_scale: float = 1.0,
    jaw_scale: float = 1.0,
    pose_scale: float = 1.0,
    eyelid_scale: float = 1.0,
) -> HeadCoeffs:
    """Return a copy with parts scaled: ψ × ``expression_scale``; jaw and head rotation angles ×
    ``jaw_scale`` / ``pose_scale`` (same axis, on SO(3), see :func:`flap.control.pose.scale_rotation`);
    eyelids × ``eyelid_scale`` clipped to [0, 1]. Scale 1 leaves a part unchanged, 0 neutralises it.

    Raises:
        ValueError: a negative or non-finite scale.
    """
    scales = {"expression_scale": expression_scale, "jaw_scale": jaw_scale, "pose_scale": pose_scale}
    scales["eyelid_scale"] = eyelid_scale
    for name, value in scales.items():
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"scale_parts: {name} must be a finite number >= 0, got {value}")
    out = coeffs.clone()
    d = out.data
    if expression_scale != 1.0:
        d[:, SLICES["expression"]] *= expression_scale
    if jaw_scale != 1.0:
        d[:, SLICES["jaw"]] = scale_rotation(d[:, SLICES["jaw"]], jaw_scale)
    if pose_scale != 1.0:
        d[:, C_MOTION_SLICE] = scale_rotation(d[:, C_MOTION_SLICE], pose_scale)
    if eyelid_scale != 1.0:
        d[:, SLICES["eyelids"]] = (d[:, SLICES["eyelids"]] * eyelid_scale).clamp(0.0, 1.0)
    return out
