"""Mesh previews of controls: a pose script or a HeadCoeffs sequence as a flat-shaded FLAME video.

Users see the motion before spending diffusion time (issue "Controls", "Preview"). The FLAME forward
runs in batches over frames, the framing (centre, scale) is fixed for the whole clip, and frames are
rendered by :mod:`flap.render` and streamed to :func:`flap.io.write_video`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from flap.control.pose import apply_pose_track
from flap.control.script import load_pose_script
from flap.flame.coeffs import DEFAULT_FPS, HeadCoeffs
from flap.flame.model import FlameModel
from flap.io import write_video
from flap.io.formats import SAMPLE_RATE
from flap.render import frame_mesh, mesh_framing, render_mesh

__all__ = ["coeffs_vertices", "iter_preview_frames", "script_coeffs", "write_preview"]


def script_coeffs(
    script, num_frames: int | None = None, fps: float = DEFAULT_FPS, duration: float | None = None
):
    """Neutral coefficients with a pose script applied: what the script does on its own.

    Args:
        script: bundled name, path, mapping or :class:`~flap.control.script.PoseScript`.
        num_frames: number of frames; or give ``duration`` in seconds (``T = round(duration · fps)``);
            default: up to the first frame at or after the script's last keyframe.
        fps: frames per second.

    Returns:
        :class:`HeadCoeffs` ``(T, 120)``.
    """
    parsed = load_pose_script(script)
    if num_frames is None:
        if duration is None:  # up to the first frame at or after the last keyframe
            num_frames = math.ceil(parsed.duration(fps) * fps - 1e-9) + 1
        else:
            num_frames = max(1, round(float(duration) * fps))
    coeffs = HeadCoeffs.neutral(num_frames, fps)
    return apply_pose_track(coeffs, parsed.sample(num_frames, fps), mode=parsed.mode)


def coeffs_vertices(
    coeffs: HeadCoeffs, model=None, shape: torch.Tensor | None = None, batch_size: int = 256
) -> Iterator[torch.Tensor]:
    """FLAME vertices for ``coeffs``, yielded in batches ``(b, 5023, 3)`` (metres, FLAME frame).

    Args:
        coeffs: the condition sequence.
        model: a :class:`~flap.flame.FlameModel`; default ``FlameModel()`` (real FLAME if installed,
            else the proxy).
        shape: optional identity β ``(n_shape,)``.
        batch_size: frames per FLAME forward.
    """
    if model is None:
        model = FlameModel()
    device = model.v_template.device
    with torch.no_grad():
        for start in range(0, coeffs.num_frames, batch_size):
            part = coeffs[start : start + batch_size].to(device=device, dtype=torch.float32)
            inputs = part.to_flame_inputs(shape)
            if not getattr(model, "has_eyelids", True):
                inputs.pop("eyelids")
            yield model(**inputs).vertices


def _annotate(frame: np.ndarray, text: str) -> None:
    scale = frame.shape[0] / 512.0
    org = (int(6 * scale) + 2, frame.shape[0] - int(10 * scale) - 2)
    cv2.putText(frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, max(scale, 0.35), (255, 255, 255), 1, cv2.LINE_AA)


def iter_preview_frames(
    coeffs: HeadCoeffs,
    model=None,
    size: tuple[int, int] = (256, 256),
    shape: torch.Tensor | None = None,
    annotate: bool = True,
    fill: float = 0.7,
    batch_size: int = 256,
    **render_kwargs,
) -> Iterator[np.ndarray]:
    """Yield preview frames ``(H, W, 3)`` uint8 RGB, one per coefficient frame.

    The framing comes from the neutral head (zero pose) so every preview of the same model looks
    alike and the head moves inside a fixed frame. ``annotate`` writes the time and pitch / yaw /
    roll degrees in a corner. Other keyword arguments go to :func:`flap.render.render_mesh`.
    """
    if model is None:
        model = FlameModel()
    rest = next(coeffs_vertices(HeadCoeffs.neutral(1, coeffs.fps), model, shape))[0].cpu().numpy()
    center, scale = mesh_framing(rest, size, fill=fill)
    faces = model.faces.cpu().numpy()
    pyr = coeffs.pose_degrees().cpu().numpy() if annotate else None
    t = 0
    for verts in coeffs_vertices(coeffs, model, shape, batch_size):
        px = frame_mesh(verts.cpu().numpy(), size, center=center, scale=scale)
        for frame_px in px:
            frame = render_mesh(frame_px, faces, size=size, **render_kwargs)
            if annotate:
                p, y, r = np.round(pyr[t]) + 0.0  # + 0.0 turns -0 into 0
                _annotate(frame, f"{t / coeffs.fps:5.2f}s  p{p:+.0f} y{y:+.0f} r{r:+.0f}")
            t += 1
            yield frame


def write_preview(
    path: str | os.PathLike,
    coeffs: HeadCoeffs,
    model=None,
    size: tuple[int, int] = (256, 256),
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    inputs=(),
    **kwargs,
) -> Path:
    """Render ``coeffs`` as a mesh video to ``path`` (H.264 mp4 at ``coeffs.fps``, written atomically).

    Args:
        path: output ``.mp4``.
        coeffs: the sequence to preview (e.g. :func:`script_coeffs` or the output of
            :func:`flap.control.apply_controls`).
        model: FlameModel (default: real FLAME if installed, else the proxy).
        size: ``(H, W)`` pixels.
        audio: optional mono float32 track to mux (e.g. the speech clip), at ``sample_rate`` Hz.
        inputs: input paths that must not be overwritten (``ValueError`` if ``path`` is one).
        **kwargs: passed to :func:`iter_preview_frames` (``annotate``, ``shape``, ``color``...).

    Returns:
        The written path.
    """
    frames = iter_preview_frames(coeffs, model=model, size=size, **kwargs)
    return write_video(path, frames, coeffs.fps, audio=audio, sample_rate=sample_rate, inputs=inputs)
