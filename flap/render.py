"""Preview renderer: flat-shaded, depth-ordered triangle meshes drawn with OpenCV (no GPU, no pytorch3d).

Used for tracker overlays (a fitted FLAME mesh over the video frame) and pose previews (a pose script
or a :class:`~flap.flame.HeadCoeffs` sequence as a mesh video) so users see the motion before spending
diffusion time (issue "Controls", "Preview").

Coordinate frames
-----------------
* **Pixel frame** (input of :func:`render_mesh`): ``x`` pixels to the right, ``y`` pixels down,
  ``depth`` along the viewing direction, **larger = farther** from the camera (any unit; only the
  order and the normal direction matter). It is FLAME's frame rotated 180° about ``x``, so the
  triangle winding (counter-clockwise seen from outside) is kept and a face turned towards the
  camera has a normal with a negative depth component.
* **FLAME frame** (input of :func:`frame_mesh`): metres, ``y`` up, ``z`` towards the viewer (the
  camera looks along ``-z``).

Algorithm: per-face Lambert shading from the face normal, back faces culled, then a vectorised
z-buffer in numpy (:func:`rasterize`): every pixel centre inside a face's bounding box is tested
with barycentric coordinates, its depth interpolated, and the nearest face wins. A pixel is
covered when its centre (integer coordinates) lies inside or on a face. About 7 ms of CPU per
256 px frame of a FLAME head (~5 000 visible faces).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "DEFAULT_COLOR",
    "DEFAULT_LIGHT_DIR",
    "face_normals",
    "frame_mesh",
    "mesh_framing",
    "render_mesh",
    "rasterize",
    "render_mesh_sequence",
]

#: Default mesh colour, RGB uint8 (light clay).
DEFAULT_COLOR: tuple[int, int, int] = (200, 190, 180)
#: Default direction *towards* the light in the pixel frame (x right, y down, depth away from the
#: camera): from the upper left, in front of the face.
DEFAULT_LIGHT_DIR: tuple[float, float, float] = (-0.3, -0.4, -1.0)

_CHUNK = 1 << 22  # candidate pixels per vectorised batch (bounds memory for large faces)


def _as_numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor on any device
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"{name}: expected a numeric array, got {type(x).__name__}")
    return arr


def _check_size(size, name: str = "size") -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected (H, W) positive integers, got {size!r}") from exc
    if h <= 0 or w <= 0:
        raise ValueError(f"{name}: expected (H, W) positive integers, got {size!r}")
    return h, w


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit face normals ``(F, 3)`` of a triangle mesh, ``(v1 - v0) × (v2 - v0)`` normalised.

    Args:
        vertices: ``(V, 3)`` float positions (any frame, any unit).
        faces: ``(F, 3)`` integer vertex indices.

    Degenerate faces get a zero normal.
    """
    return _triangle_normals(vertices[faces])


def _triangle_normals(tri: np.ndarray) -> np.ndarray:
    """Unit normals ``(F, 3)`` of triangles ``(F, 3, 3)``; zero for degenerate ones."""
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    n = np.empty_like(e1)
    n[:, 0] = e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1]
    n[:, 1] = e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2]
    n[:, 2] = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    norm = np.sqrt(np.einsum("ij,ij->i", n, n))[:, None]
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)


def _face_planes(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-face linear functions of the pixel position: barycentrics w0, w1 and depth.

    Returns ``(coef (F', 9), keep (F',) indices)`` for the non-degenerate faces, where
    ``w0 = c0 x + c1 y + c2``, ``w1 = c3 x + c4 y + c5``, ``depth = c6 x + c7 y + c8``.
    """
    (x0, x1, x2), (y0, y1, y2), (z0, z1, z2) = tri[..., 0].T, tri[..., 1].T, tri[..., 2].T
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    keep = np.flatnonzero(np.abs(area) > 1e-12)
    inv = 1.0 / area[keep]
    x0, x1, x2, y0, y1, y2, z0, z1, z2 = (a[keep] for a in (x0, x1, x2, y0, y1, y2, z0, z1, z2))
    a0, b0, c0 = (y1 - y2) * inv, (x2 - x1) * inv, (x1 * y2 - x2 * y1) * inv
    a1, b1, c1 = (y2 - y0) * inv, (x0 - x2) * inv, (x2 * y0 - x0 * y2) * inv
    dz0, dz1 = z0 - z2, z1 - z2
    coef = np.stack(
        [a0, b0, c0, a1, b1, c1, a0 * dz0 + a1 * dz1, b0 * dz0 + b1 * dz1, c0 * dz0 + c1 * dz1 + z2], axis=1
    )
    return coef, keep


def rasterize(tri: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer rasterisation of triangles in the pixel frame.

    Args:
        tri: ``(F, 3, 3)`` triangle corners ``[x px, y px, depth]`` (larger depth = farther).
        size: ``(H, W)`` of the canvas.

    Returns:
        ``(pixels (N,), faces (N,))``: flat pixel indices ``y * W + x`` that are covered, each once,
        and the index (into ``tri``) of the nearest face covering it. Pixel ``(x, y)`` is covered
        when its centre, the integer point ``(x, y)``, is inside or on the triangle.
    """
    h, w = size
    tri = np.asarray(tri, dtype=np.float64)
    x, y = np.ascontiguousarray(tri[:, :, 0]), np.ascontiguousarray(tri[:, :, 1])
    xmin = np.maximum(np.ceil(x.min(axis=1)), 0).astype(np.int64)
    xmax = np.minimum(np.floor(x.max(axis=1)), w - 1).astype(np.int64)
    ymin = np.maximum(np.ceil(y.min(axis=1)), 0).astype(np.int64)
    ymax = np.minimum(np.floor(y.max(axis=1)), h - 1).astype(np.int64)
    onscreen = np.flatnonzero((xmax >= xmin) & (ymax >= ymin))
    coef, keep = _face_planes(tri[onscreen])
    sel = onscreen[keep]
    xmin, ymin, bw = xmin[sel], ymin[sel], xmax[sel] - xmin[sel] + 1
    counts = bw * (ymax[sel] - ymin + 1)
    # Each plane evaluated at the face's bounding-box origin; candidates step from there.
    a0, b0, a1, b1, az, bz = coef[:, 0], coef[:, 1], coef[:, 3], coef[:, 4], coef[:, 6], coef[:, 7]
    w0_org = a0 * xmin + b0 * ymin + coef[:, 2]
    w1_org = a1 * xmin + b1 * ymin + coef[:, 5]
    z_org = az * xmin + bz * ymin + coef[:, 8]
    pix_parts, depth_parts, face_parts = [], [], []
    bounds = np.searchsorted(np.cumsum(counts), np.arange(1, counts.sum() // _CHUNK + 1) * _CHUNK)
    for chunk in np.split(np.arange(len(sel)), np.unique(bounds)):
        if not len(chunk):
            continue
        cnt = counts[chunk]
        idx = np.repeat(chunk, cnt)  # one entry per candidate pixel, indexing sel / coef
        off = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        lx, ly = np.divmod(off, bw[idx])[::-1]
        w0 = w0_org[idx] + a0[idx] * lx + b0[idx] * ly
        w1 = w1_org[idx] + a1[idx] * lx + b1[idx] * ly
        inside = np.flatnonzero((w0 >= -1e-9) & (w1 >= -1e-9) & (w0 + w1 <= 1.0 + 1e-9))
        idx, lx, ly = idx[inside], lx[inside], ly[inside]
        depth_parts.append(z_org[idx] + az[idx] * lx + bz[idx] * ly)
        pix_parts.append((ymin[idx] + ly) * w + xmin[idx] + lx)
        face_parts.append(sel[idx])
    if not pix_parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pix, depth, face = np.concatenate(pix_parts), np.concatenate(depth_parts), np.concatenate(face_parts)
    zbuf = np.full(h * w, np.inf)
    np.minimum.at(zbuf, pix, depth)
    nearest = np.flatnonzero(depth <= zbuf[pix])
    pix, first = np.unique(pix[nearest], return_index=True)  # ties (shared edges): one face per pixel
    return pix, face[nearest[first]]


def render_mesh(
    vertices_px,
    faces,
    image: np.ndarray | None = None,
    size: tuple[int, int] | None = None,
    color: Sequence[float] | np.ndarray = DEFAULT_COLOR,
    light_dir: Sequence[float] = DEFAULT_LIGHT_DIR,
    alpha: float = 1.0,
    ambient: float = 0.25,
    cull_back_faces: bool = True,
    background: Sequence[int] = (0, 0, 0),
) -> np.ndarray:
    """Draw a flat-shaded, depth-ordered triangle mesh over an image or a blank canvas.

    Args:
        vertices_px: ``(V, 3)`` vertex positions in the pixel frame: ``x`` px right, ``y`` px down,
            ``depth`` larger = farther (numpy array or torch tensor on any device).
        faces: ``(F, 3)`` integer vertex indices, counter-clockwise seen from outside (FLAME's
            ``f``), numpy or torch.
        image: ``(H, W, 3)`` uint8 RGB image to draw over (never modified), or ``None`` for a
            canvas of ``size`` filled with ``background``.
        size: ``(H, W)`` of the blank canvas; required when ``image`` is ``None``, must match the
            image otherwise.
        color: RGB base colour in 0..255, either one colour ``(3,)`` or one per face ``(F, 3)``.
        light_dir: direction *towards* the light in the pixel frame (normalised internally).
        alpha: opacity of the mesh over ``image`` in [0, 1].
        ambient: fraction of the colour kept on faces turned away from the light, in [0, 1].
        cull_back_faces: skip faces whose normal points away from the camera (depth component
            ≥ 0). Set ``False`` for meshes with inconsistent winding (faces are then lit two-sided).
        background: RGB colour of the blank canvas.

    Returns:
        ``(H, W, 3)`` uint8 RGB image (a new array).

    Raises:
        ValueError: wrong array shapes, face indices out of range, missing/mismatched ``size``,
            ``alpha`` or ``ambient`` outside [0, 1].
    """
    verts = _as_numpy(vertices_px, "render_mesh: vertices_px").astype(np.float64, copy=False)
    faces = _as_numpy(faces, "render_mesh: faces")
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ValueError(f"render_mesh: vertices_px must be (V, 3), got shape {verts.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(
            f"render_mesh: faces must be (F, 3) integers, got shape {faces.shape} dtype {faces.dtype}"
        )
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise ValueError(
            f"render_mesh: faces index vertices 0..{len(verts) - 1}, found indices {faces.min()}..{faces.max()}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"render_mesh: alpha must be in [0, 1], got {alpha}")
    if not 0.0 <= ambient <= 1.0:
        raise ValueError(f"render_mesh: ambient must be in [0, 1], got {ambient}")

    if image is None:
        if size is None:
            raise ValueError("render_mesh: give either image (H, W, 3) uint8 or size (H, W)")
        h, w = _check_size(size, "render_mesh: size")
        base = np.empty((h, w, 3), dtype=np.uint8)
        base[:] = np.asarray(background, dtype=np.uint8)
    else:
        base = _as_numpy(image, "render_mesh: image")
        if base.ndim != 3 or base.shape[2] != 3 or base.dtype != np.uint8:
            raise ValueError(
                f"render_mesh: image must be (H, W, 3) uint8, got shape {base.shape} dtype {base.dtype}"
            )
        if size is not None and _check_size(size, "render_mesh: size") != base.shape[:2]:
            raise ValueError(f"render_mesh: size {tuple(size)} does not match image shape {base.shape[:2]}")
    canvas = np.ascontiguousarray(base).copy()

    colors = np.asarray(color, dtype=np.float64)
    if colors.shape not in ((3,), (len(faces), 3)):
        raise ValueError(f"render_mesh: color must be (3,) or (F={len(faces)}, 3), got shape {colors.shape}")
    if not np.isfinite(verts).all():
        raise ValueError("render_mesh: vertices_px contains NaN or inf")
    if not len(faces):
        return canvas

    tri = verts[faces]
    normals = _triangle_normals(tri)
    if cull_back_faces:
        keep = normals[:, 2] < 0
    else:
        keep = np.ones(len(faces), dtype=bool)
        normals = np.where(normals[:, 2:3] > 0, -normals, normals)  # two-sided lighting
    idx = np.flatnonzero(keep)
    if not len(idx):
        return canvas

    light = np.asarray(light_dir, dtype=np.float64)
    light = light / max(np.linalg.norm(light), 1e-12)
    lambert = np.clip(normals[idx] @ light, 0.0, 1.0)
    shade = ambient + (1.0 - ambient) * lambert
    face_rgb = (colors if colors.ndim == 1 else colors[idx]) * shade[:, None]
    face_rgb = np.clip(np.rint(face_rgb), 0, 255).astype(np.uint8)

    h, w = canvas.shape[:2]
    pix, face = rasterize(tri[idx], (h, w))
    canvas.reshape(-1, 3)[pix] = face_rgb[face]

    if alpha < 1.0:
        canvas = cv2.addWeighted(canvas, alpha, np.ascontiguousarray(base), 1.0 - alpha, 0.0)
    return canvas


def mesh_framing(vertices_m, size: tuple[int, int], fill: float = 0.8) -> tuple[np.ndarray, float]:
    """Centre and scale that fit FLAME-frame vertices in a canvas (orthographic).

    Args:
        vertices_m: ``(V, 3)`` or ``(T, V, 3)`` vertices in metres (FLAME frame); with ``T`` frames
            the box covers all of them, so a sequence framed with one result does not jitter.
        size: ``(H, W)`` canvas size in pixels.
        fill: fraction of the smaller canvas side the mesh's larger x/y extent occupies, in (0, 1].

    Returns:
        ``(center (3,) metres, scale px per metre)``: the bounding-box centre and the scale.

    Raises:
        ValueError: bad shapes, empty mesh or ``fill`` outside (0, 1].
    """
    v = _as_numpy(vertices_m, "mesh_framing: vertices_m").astype(np.float64, copy=False)
    if v.ndim not in (2, 3) or v.shape[-1] != 3 or v.shape[-2] == 0:
        raise ValueError(f"mesh_framing: vertices_m must be (V, 3) or (T, V, 3), got shape {v.shape}")
    if not 0.0 < fill <= 1.0:
        raise ValueError(f"mesh_framing: fill must be in (0, 1], got {fill}")
    h, w = _check_size(size, "mesh_framing: size")
    flat = v.reshape(-1, 3)
    lo, hi = flat.min(axis=0), flat.max(axis=0)
    center = (lo + hi) / 2.0
    extent = max(hi[0] - lo[0], hi[1] - lo[1], 1e-9)
    return center, fill * min(h, w) / extent


def frame_mesh(
    vertices_m,
    size: tuple[int, int],
    center: Sequence[float] | np.ndarray | None = None,
    scale: float | None = None,
    fill: float = 0.8,
) -> np.ndarray:
    """Map FLAME-frame vertices (metres, y up, z towards the viewer) to the pixel frame, orthographically.

    ``x_px = W/2 + s (x - cx)``, ``y_px = H/2 - s (y - cy)`` (y flipped), ``depth = -s (z - cz)``
    (larger = farther), with ``s`` the scale in px per metre.

    Args:
        vertices_m: ``(V, 3)`` or ``(T, V, 3)`` vertices in metres (numpy or torch).
        size: ``(H, W)`` canvas size in pixels.
        center: ``(3,)`` point in metres mapped to the canvas centre; default: the bounding-box
            centre of all given vertices (see :func:`mesh_framing`).
        scale: pixels per metre; default: fit the mesh to ``fill`` of the canvas.
        fill: used only when ``center`` or ``scale`` is computed.

    Returns:
        Pixel-frame vertices with the input's shape, float64, ready for :func:`render_mesh`.
    """
    v = _as_numpy(vertices_m, "frame_mesh: vertices_m").astype(np.float64, copy=False)
    if v.ndim not in (2, 3) or v.shape[-1] != 3:
        raise ValueError(f"frame_mesh: vertices_m must be (V, 3) or (T, V, 3), got shape {v.shape}")
    h, w = _check_size(size, "frame_mesh: size")
    if center is None or scale is None:
        auto_center, auto_scale = mesh_framing(v, (h, w), fill)
        center = auto_center if center is None else center
        scale = auto_scale if scale is None else scale
    c = np.asarray(center, dtype=np.float64).reshape(3)
    out = np.empty_like(v)
    out[..., 0] = w / 2.0 + scale * (v[..., 0] - c[0])
    out[..., 1] = h / 2.0 - scale * (v[..., 1] - c[1])
    out[..., 2] = -scale * (v[..., 2] - c[2])
    return out


def render_mesh_sequence(
    vertices_m,
    faces,
    size: tuple[int, int] = (256, 256),
    images: np.ndarray | None = None,
    center: Sequence[float] | np.ndarray | None = None,
    scale: float | None = None,
    fill: float = 0.8,
    **render_kwargs,
) -> np.ndarray:
    """Render a FLAME-frame vertex sequence ``(T, V, 3)`` (metres) to frames ``(T, H, W, 3)`` uint8.

    One framing (centre and scale, see :func:`mesh_framing`) is used for every frame, computed from
    the whole sequence unless given, so the head does not jitter. ``images`` ``(T, H, W, 3)`` uint8,
    if given, are drawn under the mesh (``size`` is then taken from them). Other keyword arguments
    go to :func:`render_mesh` (``color``, ``light_dir``, ``alpha``...).
    """
    v = _as_numpy(vertices_m, "render_mesh_sequence: vertices_m").astype(np.float64, copy=False)
    if v.ndim != 3 or v.shape[-1] != 3:
        raise ValueError(f"render_mesh_sequence: vertices_m must be (T, V, 3), got shape {v.shape}")
    faces = _as_numpy(faces, "render_mesh_sequence: faces")
    if images is not None:
        images = _as_numpy(images, "render_mesh_sequence: images")
        if images.ndim != 4 or len(images) != len(v):
            raise ValueError(
                f"render_mesh_sequence: images must be (T={len(v)}, H, W, 3) uint8, got shape {images.shape}"
            )
        size = images.shape[1:3]
    px = frame_mesh(v, size, center=center, scale=scale, fill=fill)
    out = np.empty((len(v), *_check_size(size), 3), dtype=np.uint8)
    for t in range(len(v)):
        out[t] = render_mesh(
            px[t], faces, image=None if images is None else images[t], size=size, **render_kwargs
        )
    return out
