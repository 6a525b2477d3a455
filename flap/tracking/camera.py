"""Weak-perspective (scaled orthographic) camera used by the FLAME tracker.

A FLAME point ``(X, Y, Z)`` (metres, y up, z towards the viewer) maps to pixel coordinates
``u = s X + tx``, ``v = -s Y + ty`` (x right, y down), with ``s`` the scale in pixels per metre and
``(tx, ty)`` the image position of the FLAME origin in pixels. Depth is ``-s Z`` (larger = farther),
as :func:`flap.render.render_mesh` expects. A talking head is small compared with its distance
from the camera, so the perspective effect is ignored (as in DECA / EMOCA, which track with the
same model); the per-frame camera is stored as ``(T, 3) = [s, tx, ty]``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["affine_camera_init", "project", "to_pixel_frame"]


def project(points: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    """Project FLAME points ``(..., N, 3)`` metres with cameras ``(..., 3) = [s, tx, ty]`` → ``(..., N, 2)`` px."""
    s = camera[..., None, 0]
    u = s * points[..., 0] + camera[..., None, 1]
    v = -s * points[..., 1] + camera[..., None, 2]
    return torch.stack([u, v], dim=-1)


def to_pixel_frame(points, camera) -> np.ndarray:
    """FLAME points ``(N, 3)`` and one camera ``(3,)`` → ``(N, 3)`` [x px, y px, depth px] for rendering."""
    p = torch.as_tensor(np.asarray(points), dtype=torch.float64)
    c = torch.as_tensor(np.asarray(camera), dtype=torch.float64)
    uv = project(p, c)
    depth = -c[0] * p[:, 2:3]
    return torch.cat([uv, depth], dim=-1).numpy()


def affine_camera_init(model_points: np.ndarray, image_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form rotation and camera from 3D↔2D correspondences (affine camera, then orthonormalised).

    Solves ``q ≈ A P + b`` in least squares for each frame (``q`` with y flipped up), takes the
    rotation whose first two rows are closest to ``A / s`` (SVD) and ``s`` the mean row norm.

    Args:
        model_points: ``(N, 3)`` or ``(T, N, 3)`` FLAME points in metres (e.g. the neutral landmarks).
        image_points: ``(T, N, 2)`` pixel coordinates (x right, y down); NaN rows are ignored.

    Returns:
        ``(R, camera)``: rotations ``(T, 3, 3)`` (FLAME frame, applied about the origin) and cameras
        ``(T, 3) = [s px/m, tx px, ty px]`` such that ``project(P @ R.T, camera) ≈ q``.
    """
    q = np.asarray(image_points, dtype=np.float64)
    p_all = np.asarray(model_points, dtype=np.float64)
    if p_all.ndim == 2:
        p_all = np.broadcast_to(p_all, (q.shape[0],) + p_all.shape)
    rots = np.zeros((q.shape[0], 3, 3))
    cams = np.zeros((q.shape[0], 3))
    for t in range(q.shape[0]):
        ok = np.isfinite(q[t]).all(axis=1)
        p = p_all[t][ok]
        qt = q[t][ok] * np.array([1.0, -1.0])
        pm, qm = p.mean(0), qt.mean(0)
        a, *_ = np.linalg.lstsq(p - pm, qt - qm, rcond=None)  # (3, 2): qt ≈ (p - pm) a
        a = a.T  # (2, 3)
        s = 0.5 * (np.linalg.norm(a[0]) + np.linalg.norm(a[1]))
        m = np.vstack([a / s, np.cross(a[0], a[1]) / (s * s)])
        u, _, vt = np.linalg.svd(m)
        r = u @ vt
        if np.linalg.det(r) < 0:
            u[:, -1] *= -1
            r = u @ vt
        rots[t] = r
        center = qm - s * (r @ pm)[:2]
        cams[t] = [s, center[0], -center[1]]
    return rots, cams
