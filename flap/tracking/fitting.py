"""Landmark fitting of FLAME to a video: one shape β per clip, per-frame pose, jaw, expression, camera.

Model (per frame ``t``): FLAME landmarks ``L(β, ψ_t, θ_t, jaw_t, eyes_t, eyelids_t)`` (``(68, 3)``,
metres; 0-16 the contour, 17-67 the 51 static points), projected with the
weak-perspective camera of :mod:`flap.tracking.camera` (``[s, tx, ty]``).

Energy (summed over the frames of a chunk, residuals in percent of the face size in pixels so the
weights do not depend on resolution)::

    E = Σ_t Σ_k w_k |100 (Π(L_k) - l_k) / d_t|²          landmark reprojection (51 static + 17 contour)
      + w_β |β|² + w_ψ Σ_t |ψ_t|² + w_jaw Σ_t |jaw_t,yz|²     priors (β, ψ in units of their std)
      + w_smooth Σ_t |z_t - z_{t-1}|² + w_smooth_ψ Σ_t |ψ_t - ψ_{t-1}|²     temporal smoothness

where ``z_t`` = (rotation rad, log camera scale, translation in face sizes, jaw rad).

Procedure (all tensors batched over frames, float64):

1. closed-form affine-camera initialisation of rotation and camera for every frame
   (:func:`flap.tracking.camera.affine_camera_init`);
2. β from a few key frames spread over the clip: alternate per-frame Levenberg-Marquardt (pose, jaw,
   camera, ψ) with a closed-form joint solve of β and every ψ_t (landmarks are linear in both for
   a fixed pose; Schur complement over the per-frame blocks);
3. chunks of consecutive frames, β fixed, each initialised from its affine pose and the previous
   chunk's last jaw/ψ, by batched Levenberg-Marquardt: rotation and jaw derivatives by forward
   differences, camera and ψ derivatives exact; the smoothness term couples a frame to its
   neighbours' current values (Jacobi), so each step is a batch of small ``(9 + n_ψ)²`` solves;
4. eyelids and gaze are read from the landmarks (:mod:`flap.tracking.eyes`) and held fixed during
   the fit; frames without a face are filled by linear interpolation of the coefficients.

The fit runs on :class:`flap.tracking.landmark_model.FlameLandmarks` (landmark vertices only).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from flap.flame.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_rotation_6d
from flap.signals import interpolate_missing
from flap.tracking.camera import affine_camera_init, project
from flap.tracking.fit_config import FitConfig, FitResult
from flap.tracking.landmark_model import FlameLandmarks

__all__ = ["FitConfig", "FitResult", "fit_landmarks"]

#: Landmark residuals are measured in percent of the face size ``d_t`` (hence 100² on the squares).
DATA_SCALE = 1e4


def _point_weights(cfg: FitConfig) -> torch.Tensor:
    if cfg.point_weights is not None:
        w = torch.as_tensor(cfg.point_weights, dtype=torch.float32)
        if w.shape != (68,):
            raise ValueError(f"FitConfig.point_weights must have 68 entries, got {tuple(w.shape)}")
        return w
    w = torch.ones(68)
    w[:17] = cfg.w_contour
    return w


#: Layout of the per-frame parameter vector x (B, 9 + n_exp) optimised by Levenberg-Marquardt.
ROT, LOG_S, DT, JAW, EXP0 = slice(0, 3), 3, slice(4, 6), slice(6, 9), 9
#: Pose columns compared between neighbouring frames by the smoothness term (all but ψ).
N_POSE = 9


class _Chunk:
    """Observations of a batch of frames and the fixed inputs of the fit (float64)."""

    def __init__(self, target, face_size, cam0, weights, eyes, eyelids, ref_size):
        self.target = target  # (B, 68, 2) px
        self.face_size = face_size  # (B,) px
        self.t0 = cam0[:, 1:]  # (B, 2) px, translation of the initialisation
        self.eyes, self.eyelids = eyes, eyelids
        # residual weights: sqrt(DATA_SCALE w_k / (Σw d_t²)) so that Σ r² is the data term
        self.sqrt_w = (
            DATA_SCALE * weights[None] / (weights.sum() * face_size[:, None] ** 2)
        ).sqrt()  # (B, 68)
        # d(pose quantity compared over time)/d(x): 1, except translation in reference face sizes
        self.smooth_scale = torch.ones(len(face_size), N_POSE, dtype=target.dtype)
        self.smooth_scale[:, DT] = (face_size / ref_size)[:, None]
        self.ref_size = ref_size

    def __len__(self) -> int:
        return self.target.shape[0]

    def camera(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3)`` ``[s px/m, tx px, ty px]`` from the parameters."""
        return torch.cat([x[:, LOG_S : LOG_S + 1].exp(), self.t0 + x[:, DT] * self.face_size[:, None]], dim=1)

    def smooth_quantities(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 9)``: rotation, log-scale, translation in reference face sizes, jaw."""
        z = x[:, :N_POSE].clone()
        z[:, DT] = self.camera(x)[:, 1:] / self.ref_size
        return z


def _landmarks(flame, x, shape, chunk):
    lmk, _ = flame(
        shape=shape.expand(len(x), -1) if shape.ndim == 1 else shape, expression=x[:, EXP0:], global_rot=x[:, ROT], jaw=x[:, JAW],
        eyes=chunk.eyes, eyelids=chunk.eyelids,
    )  # fmt: skip
    return lmk


def _data_residual(flame, x, shape, chunk):
    """``(B, 136)`` weighted pixel residuals (their squared sum is the data term)."""
    proj = project(_landmarks(flame, x, shape, chunk), chunk.camera(x))
    return ((proj - chunk.target) * chunk.sqrt_w[..., None]).reshape(len(x), -1)


def _data_jacobian(flame, x, shape, chunk, eps=1e-6):
    """Residual ``(B, 136)`` and its Jacobian ``(B, 136, P)``: rotation and jaw by forward differences,
    camera analytically, ψ exactly (:meth:`FlameLandmarks.expression_jacobian`)."""
    b, p = x.shape
    cols = [0, 1, 2, 6, 7, 8]
    xs = x[:, None].repeat(1, len(cols) + 1, 1)
    for i, c in enumerate(cols):
        xs[:, i + 1, c] += eps
    lmk = _landmarks(flame, xs.reshape(-1, p), shape, _Rep(chunk, len(cols) + 1)).reshape(
        b, len(cols) + 1, 68, 3
    )
    cam = chunk.camera(x)
    proj = project(lmk, cam[:, None])  # (B, 7, 68, 2)
    sw = chunk.sqrt_w[:, None, :, None]
    res = (proj[:, 0] - chunk.target) * sw[:, 0]
    jac = x.new_zeros(b, 68, 2, p)
    jac[..., cols] = ((proj[:, 1:] - proj[:, :1]) / eps * sw).permute(0, 2, 3, 1)
    base = lmk[:, 0]
    jac[..., LOG_S] = (
        cam[:, None, None, 0] * torch.stack([base[..., 0], -base[..., 1]], -1) * chunk.sqrt_w[..., None]
    )
    jac[:, :, 0, 4] = chunk.face_size[:, None] * chunk.sqrt_w
    jac[:, :, 1, 5] = chunk.face_size[:, None] * chunk.sqrt_w
    d_lmk = flame.expression_jacobian(x[:, ROT], x[:, JAW], chunk.eyes)[..., : p - EXP0]  # (B, 68, 3, n)
    jac[..., EXP0:] = (
        cam[:, None, None, :1]
        * torch.stack([d_lmk[:, :, 0], -d_lmk[:, :, 1]], 2)
        * chunk.sqrt_w[..., None, None]
    )
    return res.reshape(b, -1), jac.reshape(b, 136, p)


class _Rep:
    """A chunk whose per-frame inputs are repeated ``k`` times (for batched finite differences)."""

    def __init__(self, chunk, k):
        rep = lambda v: None if v is None else v.repeat_interleave(k, dim=0)  # noqa: E731
        self.eyes, self.eyelids = rep(chunk.eyes), rep(chunk.eyelids)


def _frame_cost(res, x, chunk, cfg, smooth, nb):
    """Per-frame energy ``(B,)`` with neighbours held fixed (Jacobi form of the smoothness term)."""
    cost = (res**2).sum(1) + cfg.w_exp * (x[:, EXP0:] ** 2).sum(1) + cfg.w_jaw * (x[:, 7:9] ** 2).sum(1)
    if smooth:
        (zv, zc), (ev, ec) = nb
        cost = cost + cfg.w_smooth * _sq_to_neighbours(chunk.smooth_quantities(x), zv, zc)
        cost = cost + cfg.w_smooth_exp * _sq_to_neighbours(x[:, EXP0:], ev, ec)
    return cost


def _sq_to_neighbours(z, z_nb, count):
    """Σ over the neighbours n of |z_t - z_n|², from the neighbour values ``z_nb`` ``(B, N, k)``."""
    return ((z[:, None] - z_nb) ** 2).sum(-1).mul(_mask(count, z_nb.shape[1])).sum(1)


def _mask(count, n):
    return (torch.arange(n, device=count.device)[None] < count[:, None]).to(count.dtype)


def _neighbour_values(z, prev):
    """Values of each frame's neighbours ``(B, 2, k)`` (left first; unused slots repeat) and their count."""
    b = len(z)
    left = torch.cat([z[:1] if prev is None else prev[None], z[:-1]], 0)
    right = torch.cat([z[1:], z[-1:]], 0)
    vals = torch.stack([left, right], 1)
    count = z.new_full((b,), 2.0)
    if prev is None:  # frame 0 has only its right neighbour: put it first
        vals[0, 0] = vals[0, 1]
        count[0] -= 1
    count[-1] -= 1
    if b == 1 and prev is None:
        count[0] = 0
    return vals, count


def _levenberg_marquardt(flame, x, shape, chunk, cfg, iters, smooth, prev=None):
    """Per-frame Levenberg-Marquardt on ``x`` ``(B, P)``; frames coupled by smoothness through their
    neighbours' current values (Jacobi), so each step is a batch of small ``P × P`` solves."""
    b, p = x.shape
    lam = x.new_full((b,), 1e-3)
    eye = torch.eye(p, dtype=x.dtype)
    prior = torch.zeros(p, dtype=x.dtype)
    prior[EXP0:] = cfg.w_exp
    prior[7:9] = cfg.w_jaw
    for _ in range(iters):
        nb = None
        if smooth:
            zq = chunk.smooth_quantities(x)
            zv, zc = _neighbour_values(zq, None if prev is None else prev[0])
            ev, ec = _neighbour_values(x[:, EXP0:], None if prev is None else prev[1])
            nb = ((zv, zc), (ev, ec))
        res, jac = _data_jacobian(flame, x, shape, chunk)
        h = jac.transpose(1, 2) @ jac + torch.diag_embed(prior.expand(b, -1))
        g = (jac.transpose(1, 2) @ res[..., None])[..., 0] + prior * x
        if smooth:
            ds = chunk.smooth_scale  # (B, 9) dz/dx
            z = chunk.smooth_quantities(x)
            zc_ = zc * cfg.w_smooth
            h[:, :N_POSE, :N_POSE] += torch.diag_embed(zc_[:, None] * ds**2)
            g[:, :N_POSE] += cfg.w_smooth * ds * ((z[:, None] - zv) * _mask(zc, 2)[..., None]).sum(1)
            h[:, EXP0:, EXP0:] += (cfg.w_smooth_exp * ec)[:, None, None] * eye[EXP0:, EXP0:]
            g[:, EXP0:] += cfg.w_smooth_exp * ((x[:, None, EXP0:] - ev) * _mask(ec, 2)[..., None]).sum(1)
        cost = _frame_cost(res, x, chunk, cfg, smooth, nb)
        damp = torch.diag_embed(lam[:, None] * h.diagonal(dim1=1, dim2=2).clamp_min(1e-9))
        step = torch.linalg.solve(h + damp, -g)
        x_new = x + step
        new_cost = _frame_cost(_data_residual(flame, x_new, shape, chunk), x_new, chunk, cfg, smooth, nb)
        better = new_cost < cost
        x = torch.where(better[:, None], x_new, x)
        lam = torch.where(better, lam / 3, lam * 4).clamp(1e-7, 1e7)
    return x


@torch.no_grad()
def _solve_shape_expression(flame, x, chunk, cfg, n_shape):
    """Closed-form β (shared) and ψ_t (per frame) for fixed poses: ridge least squares with a Schur complement.

    For a fixed pose the landmarks are jointly linear in β and ψ (blend shapes are added before
    skinning, and they move the joints linearly): exact Jacobians from
    :meth:`FlameLandmarks.blend_jacobian`.

    Returns:
        ``(β (n_shape,), x with ψ replaced)``.
    """
    b, p = x.shape
    k = n_shape
    x0 = x.clone()
    x0[:, EXP0:] = 0.0
    cam = chunk.camera(x)
    lmk0 = _landmarks(flame, x0, x.new_zeros(k), chunk)
    r0 = ((project(lmk0, cam) - chunk.target) * chunk.sqrt_w[..., None]).reshape(b, -1)  # (B, 136)
    d_shape = flame.blend_jacobian("shape", x[:, ROT], x[:, JAW], chunk.eyes)[..., :k]  # (B, 68, 3, k)
    gb = (
        cam[:, None, None, :1]
        * torch.stack([d_shape[:, :, 0], -d_shape[:, :, 1]], 2)
        * chunk.sqrt_w[..., None, None]
    )
    gb = gb.reshape(b, 136, k)
    d_lmk = flame.expression_jacobian(x[:, ROT], x[:, JAW], chunk.eyes)[..., : p - EXP0]
    ge = (
        cam[:, None, None, :1]
        * torch.stack([d_lmk[:, :, 0], -d_lmk[:, :, 1]], 2)
        * chunk.sqrt_w[..., None, None]
    )
    ge = ge.reshape(b, 136, -1)  # (B, 136, n)
    n = ge.shape[-1]
    a_ee = ge.transpose(1, 2) @ ge + cfg.w_exp * torch.eye(n, dtype=x.dtype)
    a_eb = ge.transpose(1, 2) @ gb  # (B, n, k)
    b_e = -(ge.transpose(1, 2) @ r0[..., None])  # (B, n, 1)
    inv_eb = torch.linalg.solve(a_ee, torch.cat([a_eb, b_e], dim=2))  # (B, n, k+1)
    a_bb = (gb.transpose(1, 2) @ gb).sum(0) + cfg.w_shape * b * torch.eye(k, dtype=x.dtype)
    b_b = -(gb.transpose(1, 2) @ r0[..., None]).sum(0)  # (k, 1)
    schur = a_bb - (a_eb.transpose(1, 2) @ inv_eb[..., :k]).sum(0)
    rhs = b_b - (a_eb.transpose(1, 2) @ inv_eb[..., k:]).sum(0)
    shape = torch.linalg.solve(schur, rhs)[:, 0]
    x = x.clone()
    x[:, EXP0:] = inv_eb[..., k] - inv_eb[..., :k] @ shape
    return shape, x


def _face_size(lmk: np.ndarray) -> np.ndarray:
    """Face size in pixels per frame: diagonal of the bounding box of the 51 static points."""
    pts = lmk[:, 17:]
    return np.linalg.norm(np.nanmax(pts, axis=1) - np.nanmin(pts, axis=1), axis=-1)


def _initial_pose(flame: FlameLandmarks, shape: torch.Tensor, lmk: np.ndarray):
    """Affine-camera rotation and camera for every frame, accounting for FLAME's rotation about the root joint."""
    with torch.no_grad():
        neutral, joints = flame(shape=shape[None])
    p = neutral[0].double().numpy()
    root = joints[0, 0].double().numpy()
    rots, cams = affine_camera_init(p[17:], lmk[:, 17:])
    # FLAME rotates about the root joint: R (p - J0) + J0 = R p + (J0 - R J0); the affine camera
    # was solved for R p, so remove the projected shift from its translation
    shift = root[None] - np.einsum("tij,j->ti", rots, root)
    cams[:, 1] -= cams[:, 0] * shift[:, 0]
    cams[:, 2] += cams[:, 0] * shift[:, 1]
    rot_aa = matrix_to_axis_angle(torch.from_numpy(rots))
    return rot_aa, torch.from_numpy(cams)


@contextlib.contextmanager
def _torch_threads(n: int | None):
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def fit_landmarks(
    model,
    lmk68: np.ndarray,
    valid: np.ndarray,
    cfg: FitConfig | None = None,
    eyes_aa: torch.Tensor | None = None,
    eyelids: torch.Tensor | None = None,
    flame: FlameLandmarks | None = None,
) -> FitResult:
    """Fit FLAME to 2D landmarks of a clip (algorithm in the module docstring; paper Sec. 5.1 data tracking).

    Args:
        model: :class:`flap.flame.model.FlameModel` (proxy or real).
        lmk68: ``(T, 68, 2)`` iBUG-68 pixels (x right, y down); NaN rows for missing frames.
        valid: ``(T,)`` bool, frames with landmarks.
        cfg: :class:`FitConfig`.
        eyes_aa: optional ``(T, 2, 3)`` eyeball axis-angle (left, right), held fixed.
        eyelids: optional ``(T, 2)`` eyelid weights, held fixed (ignored when the model has none).
        flame: a prebuilt :class:`FlameLandmarks` of ``model`` (saves a few ms per call); its
            ``contour`` must be ``cfg.contour``.

    Returns:
        :class:`FitResult`.

    Raises:
        ValueError: wrong shapes, no valid frame, or ``flame.contour`` differs from ``cfg.contour``.
    """
    cfg = cfg or FitConfig()
    if flame is not None and flame.contour != cfg.contour:
        raise ValueError(f"fit_landmarks: flame has contour={flame.contour!r} but cfg.contour={cfg.contour!r}")
    with _torch_threads(cfg.threads), torch.no_grad():
        return _fit(model, lmk68, valid, cfg, eyes_aa, eyelids, flame)


def _fit(model, lmk68, valid, cfg, eyes_aa, eyelids, flame) -> FitResult:
    lmk68 = np.asarray(lmk68, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool) & np.isfinite(lmk68).all(axis=(1, 2))
    if lmk68.ndim != 3 or lmk68.shape[1:] != (68, 2):
        raise ValueError(f"fit_landmarks: expected landmarks (T, 68, 2), got {lmk68.shape}")
    if not valid.any():
        raise ValueError("fit_landmarks: no frame with landmarks to fit")
    flame = (flame or FlameLandmarks(model, contour=cfg.contour)).double()
    n_shape = min(cfg.n_shape, flame.n_shape)
    n_exp = min(cfg.n_exp, flame.n_exp)
    T = len(valid)
    idx = np.flatnonzero(valid)
    lmk = lmk68[idx]
    dt = torch.float64
    target_all = torch.from_numpy(lmk).to(dt)
    size_all = torch.from_numpy(_face_size(lmk)).to(dt)
    weights = _point_weights(cfg).to(dt)
    eyes_v = None if eyes_aa is None else torch.as_tensor(np.asarray(eyes_aa), dtype=dt)[idx]
    lids_v = None
    if eyelids is not None and flame.has_eyelids:
        lids_v = torch.as_tensor(np.nan_to_num(np.asarray(eyelids, dtype=np.float64)))[idx]
    shape = torch.zeros(n_shape, dtype=dt)
    ref = float(size_all.median())
    p = EXP0 + n_exp

    def start(sel, rot0, cam0, jaw, exp):
        chunk = _Chunk(
            target_all[sel], size_all[sel], cam0, weights,
            None if eyes_v is None else eyes_v[sel], None if lids_v is None else lids_v[sel], ref,
        )  # fmt: skip
        x = torch.zeros(len(sel), p, dtype=dt)
        x[:, ROT] = rot0
        x[:, LOG_S] = cam0[:, 0].log()
        x[:, JAW] = jaw
        x[:, EXP0:] = exp
        return chunk, x

    # -- stage 1: β from key frames spread over the clip (frames independent, no smoothness)
    key = np.unique(np.linspace(0, len(idx) - 1, min(cfg.shape_frames, len(idx))).round().astype(int))
    rot0, cam0 = _initial_pose(flame, shape, lmk[key])
    chunk, x = start(key, rot0, cam0, 0.0, 0.0)
    for _ in range(cfg.shape_rounds):
        x = _levenberg_marquardt(flame, x, shape, chunk, cfg, cfg.shape_iters, smooth=False)
        shape, x = _solve_shape_expression(flame, x, chunk, cfg, n_shape)

    # -- stage 2: chunks of consecutive (valid) frames, β fixed, warm-started from the previous chunk
    rot0, cam0 = _initial_pose(flame, shape, lmk)
    out = {k: [] for k in ("rot", "cam", "jaw", "exp")}
    prev, jaw_prev, exp_prev = None, 0.0, 0.0
    for first in range(0, len(idx), cfg.chunk_size):
        sel = np.arange(first, min(first + cfg.chunk_size, len(idx)))
        chunk, x = start(sel, rot0[sel], cam0[sel], jaw_prev, exp_prev)
        x = _levenberg_marquardt(
            flame, x, shape, chunk, cfg, cfg.iters, smooth=cfg.w_smooth > 0 or cfg.w_smooth_exp > 0, prev=prev
        )
        prev = (chunk.smooth_quantities(x)[-1], x[-1, EXP0:])
        jaw_prev, exp_prev = x[-1, JAW], x[-1, EXP0:]
        out["rot"].append(x[:, ROT])
        out["cam"].append(chunk.camera(x))
        out["jaw"].append(x[:, JAW])
        out["exp"].append(x[:, EXP0:])
    fitted = {k: torch.cat(v).numpy() for k, v in out.items()}

    # -- reprojection error on the fitted frames
    with torch.no_grad():
        lmk_fit, _ = flame(
            shape=shape.expand(len(idx), -1), expression=torch.from_numpy(fitted["exp"]),
            global_rot=torch.from_numpy(fitted["rot"]), jaw=torch.from_numpy(fitted["jaw"]),
            eyes=eyes_v, eyelids=lids_v,
        )  # fmt: skip
        proj = project(lmk_fit, torch.from_numpy(fitted["cam"])).numpy()
    error = np.full(T, np.nan)
    error[idx] = np.linalg.norm(proj - lmk, axis=-1).mean(axis=1)

    def full(x):
        arr = np.zeros((T,) + x.shape[1:])
        arr[idx] = x
        return torch.from_numpy(interpolate_missing(arr, valid)).float()

    eyes_aa_full = torch.zeros(T, 2, 3) if eyes_aa is None else torch.as_tensor(eyes_aa, dtype=torch.float32)
    eyes_6d = matrix_to_rotation_6d(axis_angle_to_matrix(eyes_aa_full)).reshape(T, 12)
    lids = (
        torch.zeros(T, 2) if eyelids is None else torch.as_tensor(np.nan_to_num(eyelids), dtype=torch.float32)
    )
    return FitResult(
        shape=shape.float(),
        global_rot=full(fitted["rot"]),
        jaw=full(fitted["jaw"]),
        expression=full(fitted["exp"]),
        eyes_aa=eyes_aa_full,
        eyes_6d=eyes_6d,
        eyelids=lids,
        camera=full(fitted["cam"]),
        error_px=error,
        valid=valid,
    )
