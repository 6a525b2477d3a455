"""A FLAME-format proxy head model, built deterministically from MIT-licensed FLAME-topology data.

**This is not FLAME.** The real FLAME model (Li et al. 2017) cannot be redistributed or fetched
here. The proxy has the official ``generic_model.pkl`` keys, shapes and dtypes, so every code path
(loading, LBS, landmarks, tracking, previews) is exercised exactly as with the real file, and its
bases are hand-designed so that fitting it to real landmarks means something:

* ``v_template`` (5023, 3) and ``f`` (9976, 3): RingNet's ``FLAME_sample.ply`` (MIT).
* ``J_regressor`` (5, 5023), sparse: each joint is the mean of a few surface vertices chosen so that
  the root sits at the neck base, the neck joint at the skull base, the jaw pivot below the ears
  (temporomandibular joint) and each eye joint at its eyeball centre (FLAME's left eyeball is
  vertices 3931–4476, the right 4477–5022, spheres of 12.5 mm radius).
* ``weights`` (5023, 5): eyeballs bound to their eye joint only; the lower lip, chin and lower
  cheeks to the jaw (the lips are told apart by geodesic distance to the two branches of the mouth
  opening, so rotating the jaw opens the mouth); the rest of the head to the neck joint, blending to
  the root down the neck. Supports are compact: the forehead never moves with the jaw.
* ``shapedirs`` (5023, 3, 400): 300 identity components (global scale / width / height / depth,
  then regional ones: jaw width, nose, chin, brows, cheekbones, then smooth random regional fields
  with decaying magnitude) and 100 expression components: 0 smile, 1 mouth stretch, 2 lip pucker,
  3 brow raise, 4 brow furrow, 5 cheek puff, 6 lower lip down, 7 frown, 8 upper lip raise, 9 lip
  press, 10 asymmetric smile, 11 squint, 12 nose wrinkle, then smooth random local face fields.
  Unit coefficients move vertices by a few millimetres, like FLAME's.
* ``posedirs`` (5023, 3, 36): zeros (no pose correctives).
* ``l_eyelid`` / ``r_eyelid`` (5023, 3): eyelid blendshapes; weight 1 brings the upper lid margin
  down onto the lower lid.

Build it with ``python -m flap.flame.proxy`` (or :func:`ensure_proxy_model`); it is written to
``flame_assets/proxy/generic_model.pkl`` in about a second. Put real FLAME files in ``flame_assets/``
and they are used instead.
"""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from flap.flame.assets import SAMPLE_MESH, flame_dir, load_landmark_embeddings, read_ply
from flap.flame.safe_pickle import safe_load_pickle
from flap.io.atomic import atomic_output

__all__ = ["build_proxy_arrays", "write_proxy_model", "ensure_proxy_model", "PROXY_VERSION"]

PROXY_VERSION = 1
LEFT_EYEBALL = slice(3931, 4477)
RIGHT_EYEBALL = slice(4477, 5023)
N_SHAPE, N_EXP = 300, 100


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below ``edge0``, 1 above ``edge1``, C1-smooth in between (exactly 0/1 outside)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _bump(points: np.ndarray, centre, radius: float) -> np.ndarray:
    """Compactly supported smooth bump ``(1 - (d/r)^2)^2`` around ``centre``, zero beyond ``radius``."""
    d2 = ((points - np.asarray(centre)) ** 2).sum(-1) / radius**2
    return np.clip(1.0 - d2, 0.0, None) ** 2


def _landmarks(v: np.ndarray, f: np.ndarray, emb: dict) -> np.ndarray:
    """68 landmark positions on the template (contour at zero yaw, then the 51 static points)."""
    static = (v[f[emb["static_faces"]]] * emb["static_bary"][..., None]).sum(1)
    contour = (v[f[emb["dynamic_faces"][0]]] * emb["dynamic_bary"][0][..., None]).sum(1)
    return np.concatenate([contour, static], 0)


def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _edge_graph(v: np.ndarray, f: np.ndarray) -> sp.csr_matrix:
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    w = np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)
    g = sp.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(len(v), len(v))).tocsr()
    return g.maximum(g.T)


def _mouth_branches(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the upper and lower branch of the mouth opening (the boundary loop near the lips)."""
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(e, axis=0, return_counts=True)
    boundary = uniq[counts == 1]
    verts = np.unique(boundary)
    # The mouth loop is the boundary component highest up (the other one is the neck cut).
    g = sp.coo_matrix((np.ones(len(boundary)), (boundary[:, 0], boundary[:, 1])), shape=(len(v), len(v)))
    _, labels = sp.csgraph.connected_components(g, directed=False)
    comps = {lab: verts[labels[verts] == lab] for lab in np.unique(labels[verts])}
    mouth = max(comps.values(), key=lambda idx: v[idx, 1].mean())
    p = v[mouth]
    left, right = p[:, 0].max(), p[:, 0].min()
    # Split the loop by the straight line through its two corners.
    c_l, c_r = p[p[:, 0].argmax()], p[p[:, 0].argmin()]
    line_y = c_r[1] + (p[:, 0] - c_r[0]) * (c_l[1] - c_r[1]) / max(left - right, 1e-9)
    return mouth[p[:, 1] > line_y], mouth[p[:, 1] < line_y]


def _select_mean(v: np.ndarray, targets, k: int = 4) -> np.ndarray:
    """J_regressor row: uniform weights on the ``k`` vertices nearest each target point."""
    row = np.zeros(len(v))
    for t in targets:
        idx = np.argsort(((v - np.asarray(t)) ** 2).sum(-1))[:k]
        row[idx] += 1.0
    return row / row.sum()


def _skinning(v, f, lmk, mouth_up, mouth_lo, jaw_pivot, neck_y, root_y) -> np.ndarray:
    nv = len(v)
    x, y, z = v.T
    mouth_c = lmk[48:68].mean(0)
    # Lips and chin: geodesic distance to the upper vs lower branch of the mouth opening.
    g = _edge_graph(v, f)
    near = np.where(np.linalg.norm(v - mouth_c, axis=1) < 0.05)[0]
    sub = g[near][:, near]
    loc = {gi: li for li, gi in enumerate(near)}
    d_up = dijkstra(sub, indices=[loc[i] for i in mouth_up], min_only=True)
    d_lo = dijkstra(sub, indices=[loc[i] for i in mouth_lo], min_only=True)
    ratio = np.full(nv, np.nan)
    ratio[near] = d_up / np.maximum(d_up + d_lo, 1e-9)
    j_lip = np.zeros(nv)
    j_lip[near] = _smoothstep(0.35, 0.65, np.nan_to_num(ratio[near], nan=0.5))
    # Elsewhere: below a line through the mouth corners rising towards the jaw pivots.
    corner_x = abs(lmk[54, 0] - lmk[48, 0]) / 2
    ear_x = abs(jaw_pivot[0]) + 0.065
    t = _smoothstep(corner_x, ear_x, np.abs(x - mouth_c[0]))
    line = mouth_c[1] * (1 - t) + (jaw_pivot[1] - 0.01) * t
    j_geo = _smoothstep(0.0, 0.012, line - y)
    j_geo *= _smoothstep(jaw_pivot[2] - 0.03, jaw_pivot[2] + 0.005, z)  # front of the pivots only
    chin_y = lmk[8, 1]
    j_geo *= _smoothstep(chin_y - 0.045, chin_y - 0.015, y)  # fades down the throat
    m = 1.0 - _smoothstep(0.022, 0.032, np.linalg.norm((v - mouth_c)[:, :2], axis=1))
    jaw = m * j_lip + (1 - m) * j_geo
    s_neck = _smoothstep(root_y + 0.01, neck_y, y)
    w = np.zeros((nv, 5))
    w[:, 0] = (1 - jaw) * (1 - s_neck)
    w[:, 1] = (1 - jaw) * s_neck
    w[:, 2] = jaw
    w[LEFT_EYEBALL] = 0
    w[RIGHT_EYEBALL] = 0
    w[LEFT_EYEBALL, 3] = 1
    w[RIGHT_EYEBALL, 4] = 1
    return w


def _eyelid(v, lmk, outer, up, inner, lo, eyeball) -> np.ndarray:
    """Blendshape closing one eye: the upper lid margin comes down onto the lower lid."""
    c_out, c_in = lmk[outer], lmk[inner]
    axis = c_in[0] - c_out[0]
    t = (v[:, 0] - c_out[0]) / axis
    tu = (lmk[up][:, 0] - c_out[0]) / axis
    tl = (lmk[lo][:, 0] - c_out[0]) / axis
    order_u, order_l = np.argsort(tu), np.argsort(tl)
    ts_u = np.concatenate([[0.0], tu[order_u], [1.0]])
    ts_l = np.concatenate([[0.0], tl[order_l], [1.0]])
    y_u = np.interp(t, ts_u, np.concatenate([[c_out[1]], lmk[up][order_u, 1], [c_in[1]]]))
    y_l = np.interp(t, ts_l, np.concatenate([[c_out[1]], lmk[lo][order_l, 1], [c_in[1]]]))
    gap = np.clip(y_u - y_l, 0.0, None)
    y = v[:, 1]
    along = _smoothstep(-0.25, 0.05, t) * (1 - _smoothstep(0.95, 1.25, t))
    above_mid = _smoothstep((y_u + y_l) / 2 - 0.0005, (y_u + y_l) / 2 + 0.0005, y)
    profile = 1.0 - _smoothstep(y_u + 0.0015, y_u + 0.012, y)
    centre = v[eyeball].mean(0)
    front = _smoothstep(centre[2] - 0.004, centre[2] + 0.002, v[:, 2])
    wgt = along * above_mid * profile * front
    d = np.zeros_like(v)
    d[:, 1] = -gap * wgt * 1.05
    d[:, 2] = -0.15 * gap * wgt
    d[LEFT_EYEBALL] = 0
    d[RIGHT_EYEBALL] = 0
    return d


def _orthonormal_scaled(fields: list[np.ndarray], mags: np.ndarray) -> np.ndarray:
    """Gram-Schmidt the displacement fields in order, then give each its max displacement ``mags``."""
    mat = np.stack([fl.reshape(-1) for fl in fields], 1)
    q, _ = np.linalg.qr(mat)
    q *= np.sign((q * mat).sum(0, keepdims=True) + 1e-30)
    out = q.reshape(-1, 3, len(fields))
    peak = np.linalg.norm(out, axis=1).max(0)
    return out * (mags / np.maximum(peak, 1e-12))


def _random_fields(v, rng, count, centres_pool, radius_range, mask) -> list[np.ndarray]:
    fields = []
    for _ in range(count):
        fld = np.zeros_like(v)
        for _ in range(3):
            c = centres_pool[rng.integers(len(centres_pool))] + rng.normal(0, 0.01, 3)
            r = rng.uniform(*radius_range)
            fld += _bump(v, c, r)[:, None] * rng.normal(0, 1, 3)
        fields.append(fld * mask[:, None])
    return fields


def build_proxy_arrays(mesh_path: str | os.PathLike | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Build the proxy model's arrays (official FLAME keys; see the module docstring).

    Args:
        mesh_path: a FLAME-topology PLY (default: RingNet's sample mesh shipped with the package).
        seed: seed of the random regional components (the build is deterministic for a seed).

    Returns:
        dict with ``v_template`` (5023,3) float64, ``f`` (9976,3) uint32, ``shapedirs`` (5023,3,400),
        ``posedirs`` (5023,3,36), ``J_regressor`` (5,5023) ``scipy.sparse.csc_matrix``, ``weights``
        (5023,5), ``kintree_table`` (2,5) int64, ``l_eyelid``/``r_eyelid`` (5023,3).
    """
    v32, f = read_ply(mesh_path or SAMPLE_MESH)
    if v32.shape != (5023, 3):
        raise ValueError(f"{mesh_path}: expected a FLAME-topology mesh with 5023 vertices, got {v32.shape}")
    v = v32.astype(np.float64)
    emb = load_landmark_embeddings()
    lmk = _landmarks(v, f, emb)
    rng = np.random.default_rng(seed)
    eye_l, eye_r = v[LEFT_EYEBALL].mean(0), v[RIGHT_EYEBALL].mean(0)
    eye_y = (eye_l[1] + eye_r[1]) / 2

    # ---- joints
    nose_tip = lmk[30]
    jaw_target_y, jaw_target_z = eye_y - 0.03, nose_tip[2] - 0.095
    side = np.abs(v[:, 0]).max()
    jreg = np.zeros((5, len(v)))
    neck_cut = v[:, 1] < v[:, 1].min() + 0.012
    jreg[0, neck_cut] = 1.0 / neck_cut.sum()
    jreg[1] = _select_mean(v, [(s * side, lmk[8, 1] + 0.005, jaw_target_z - 0.02) for s in (1, -1)])
    jreg[2] = _select_mean(v, [(s * side, jaw_target_y, jaw_target_z) for s in (1, -1)])
    jreg[3, LEFT_EYEBALL] = 1.0 / (LEFT_EYEBALL.stop - LEFT_EYEBALL.start)
    jreg[4, RIGHT_EYEBALL] = 1.0 / (RIGHT_EYEBALL.stop - RIGHT_EYEBALL.start)
    joints = jreg @ v

    # ---- skinning
    mouth_up, mouth_lo = _mouth_branches(v, f)
    weights = _skinning(v, f, lmk, mouth_up, mouth_lo, joints[2], joints[1, 1], joints[0, 1])
    jaw_w = weights[:, 2]
    upper_lip = (1 - jaw_w) * _bump(v, lmk[[48, 54, 51, 62]].mean(0), 0.03)
    lower_lip = jaw_w * _bump(v, lmk[[48, 54, 57, 66]].mean(0), 0.03)
    eyeballs = np.zeros(len(v), bool)
    eyeballs[LEFT_EYEBALL] = eyeballs[RIGHT_EYEBALL] = True
    normals = _vertex_normals(v, f)
    face_mask = _smoothstep(lmk[8, 2] - 0.06, lmk[8, 2] - 0.02, v[:, 2]) * (~eyeballs)

    # ---- identity basis
    centre = v.mean(0)
    shape_fields = [
        v - centre,
        (v - centre) * [1, 0, 0],
        (v - centre) * [0, 1, 0],
        (v - centre) * [0, 0, 1],
        _bump(v, lmk[8], 0.07)[:, None] * (v - lmk[8]) * [1, 0, 0],  # jaw width
        _bump(v, lmk[30], 0.03)[:, None] * [0, 0, 1.0],  # nose length
        _bump(v, lmk[33], 0.02)[:, None] * (v - lmk[33]) * [1, 0, 0],  # nose width
        _bump(v, lmk[8], 0.035)[:, None] * [0, -0.4, 1.0],  # chin protrusion
        _bump(v, lmk[17:27].mean(0), 0.04)[:, None] * [0, 0, 1.0],  # brow ridge
        _bump(v, lmk[[36, 45]].mean(0), 0.06)[:, None] * (v - lmk[27]) * [1, 0, 0],  # eye spacing
        (_bump(v, lmk[1], 0.03) + _bump(v, lmk[15], 0.03))[:, None] * normals,  # cheekbones
        _bump(v, lmk[48:60].mean(0), 0.025)[:, None] * (v - lmk[48:60].mean(0)) * [1, 0, 0],  # mouth width
    ]
    shape_fields += _random_fields(v, rng, N_SHAPE - len(shape_fields), v[~eyeballs], (0.03, 0.07), ~eyeballs)
    shape_mags = 0.006 / np.sqrt(1 + np.arange(N_SHAPE) / 4.0)
    shapedirs = _orthonormal_scaled(shape_fields, shape_mags)
    for eb in (LEFT_EYEBALL, RIGHT_EYEBALL):
        socket = _bump(v, v[eb].mean(0), 0.03)
        socket[eyeballs] = 0
        rigid = (shapedirs * socket[:, None, None]).sum(0) / socket.sum()
        shapedirs[eb] = rigid[None]

    # ---- expression basis
    def side_bump(i, r):
        return _bump(v, lmk[i], r)

    corners = side_bump(48, 0.02)[:, None] * [-1, 0, 0] + side_bump(54, 0.02)[:, None] * [1, 0, 0]
    cheeks = (_bump(v, (lmk[48] + lmk[3]) / 2, 0.025) + _bump(v, (lmk[54] + lmk[13]) / 2, 0.025))[:, None]
    lips = (upper_lip + lower_lip)[:, None]
    brows = _bump(v, lmk[17:27].mean(0) + [0, 0.01, 0], 0.05) * _smoothstep(eye_y + 0.004, eye_y + 0.012, v[:, 1])
    inner_brows = side_bump(21, 0.015) + side_bump(22, 0.015)
    lower_lids = side_bump(40, 0.012) + side_bump(41, 0.012) + side_bump(46, 0.012) + side_bump(47, 0.012)
    corner_l, corner_r = side_bump(54, 0.02)[:, None], side_bump(48, 0.02)[:, None]
    exp_fields = [
        (corner_l + corner_r) * [0, 1.0, -0.3] + 0.6 * corners + 0.4 * cheeks * [0, 1, 0],  # 0 smile
        1.2 * corners * [1, 0, 0] + (corner_l + corner_r) * [0, -0.2, -0.3],  # 1 mouth stretch
        lips * [0, 0, 1.0] - 0.3 * lips * (v - lmk[[48, 54]].mean(0)) / 0.025 * [1, 0, 0],  # 2 pucker
        brows[:, None] * [0, 1.0, 0.1],  # 3 brow raise
        inner_brows[:, None] * [0, -1.0, 0] - inner_brows[:, None] * np.sign(v[:, :1]) * [0.6, 0, 0],  # 4 furrow
        cheeks * normals,  # 5 cheek puff
        lower_lip[:, None] * [0, -1.0, 0.2] + 0.25 * upper_lip[:, None] * [0, 1.0, 0],  # 6 lower lip down
        (corner_l + corner_r) * [0, -1.0, 0],  # 7 frown
        upper_lip[:, None] * [0, 1.0, 0.2],  # 8 upper lip raise
        lips * [0, 0, -1.0],  # 9 lip press
        corner_l * [0.5, 1.0, -0.3],  # 10 asymmetric smile (left)
        lower_lids[:, None] * [0, 1.0, 0] + 0.3 * cheeks * [0, 1, 0],  # 11 squint
        _bump(v, lmk[29], 0.015)[:, None] * [0, 1.0, 0.3],  # 12 nose wrinkle
    ]
    exp_fields = [fl * (~eyeballs)[:, None] for fl in exp_fields]
    face_pts = v[(face_mask > 0.5) & (v[:, 1] < eye_y + 0.05) & (v[:, 1] > lmk[8, 1])]
    exp_fields += _random_fields(v, rng, N_EXP - len(exp_fields), face_pts, (0.015, 0.035), face_mask)
    exp_mags = np.concatenate([np.full(13, 0.005), 0.003 / np.sqrt(1 + np.arange(N_EXP - 13) / 8.0)])
    expdirs = _orthonormal_scaled(exp_fields, exp_mags)

    return {
        "v_template": v,
        "f": f.astype(np.uint32),
        "shapedirs": np.concatenate([shapedirs, expdirs], axis=-1),
        "posedirs": np.zeros((len(v), 3, 36)),
        "J_regressor": sp.csc_matrix(jreg),
        "weights": weights,
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "l_eyelid": _eyelid(v, lmk, 45, [44, 43], 42, [46, 47], LEFT_EYEBALL),
        "r_eyelid": _eyelid(v, lmk, 36, [37, 38], 39, [41, 40], RIGHT_EYEBALL),
        "proxy_version": np.array(PROXY_VERSION),
    }


def write_proxy_model(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write the proxy model as a FLAME-style pickle (protocol 2), atomically. Returns the path."""
    path = Path(path)
    arrays = build_proxy_arrays(seed=seed)
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        pickle.dump(arrays, fh, protocol=2)
    return path


def default_proxy_path() -> Path:
    return flame_dir() / "proxy" / "generic_model.pkl"


def ensure_proxy_model(path: str | os.PathLike | None = None) -> Path:
    """Return the proxy model path, building it first if it is missing or out of date."""
    path = Path(path) if path is not None else default_proxy_path()
    if path.is_file():
        try:
            if int(safe_load_pickle(path).get("proxy_version", -1)) == PROXY_VERSION:
                return path
        except Exception:  # noqa: BLE001 - a broken cache file is rebuilt
            pass
    return write_proxy_model(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description="Build the FLAME-format proxy model (NOT FLAME) into flame_assets/proxy/generic_model.pkl."
    )
    parser.add_argument("--out", type=Path, default=None, help="output .pkl (default: %(default)s → flame_assets)")
    parser.add_argument("--force", action="store_true", help="rebuild even if an up-to-date file exists")
    args = parser.parse_args(argv)
    out = args.out or default_proxy_path()
    path = write_proxy_model(out) if args.force else ensure_proxy_model(out)
    print(f"proxy FLAME-format model: {path}")


if __name__ == "__main__":
    main()
