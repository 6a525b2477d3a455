"""Preview speed: a 10 s look_around.yaml preview (250 frames at 25 fps, 256 px) to mp4.

Figures (issue "Controls": the preview must render in under 10 s on this CPU):

* ``preview_s``: wall time of FLAME forward (batched) + rendering + H.264 encoding, model loaded;
  ``preview_cpu_s`` the process CPU time of the same (less sensitive to a shared machine);
* ``realtime_ratio``: ``preview_s`` / clip duration (below 1 = faster than real time);
* ``render_ms_per_frame``: CPU time of :func:`flap.render.render_mesh` on one posed head, and
  ``zbuffer_vs_painter``: its time over a painter's-algorithm reference (faces sorted far-to-near,
  each filled with ``cv2.fillConvexPoly``) timed in the same process on the same mesh.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.timing import median_time  # noqa: E402


def _painter_reference(px: np.ndarray, faces: np.ndarray, size) -> np.ndarray:
    """Reference renderer for the ratio only: back-face culling + painter's algorithm with OpenCV."""
    canvas = np.zeros((*size, 3), dtype=np.uint8)
    tri = px[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    keep = n[:, 2] < 0
    tri, n = tri[keep], n[keep]
    shade = 0.25 + 0.75 * np.clip(-n[:, 2] / np.linalg.norm(n, axis=1), 0, 1)
    order = np.argsort(-tri[:, :, 2].mean(axis=1))
    pts = np.rint(tri[order, :, :2] * 16).astype(np.int32)
    for p, s in zip(pts, (200 * shade[order]).astype(int).tolist()):
        cv2.fillConvexPoly(canvas, p, (s, s, s), cv2.LINE_8, 4)
    return canvas


def run(seconds: float = 10.0, fps: float = 25.0, size: int = 256) -> dict:
    import torch

    from flap.control import apply_controls
    from flap.control.preview import coeffs_vertices, write_preview
    from flap.flame.coeffs import HeadCoeffs
    from flap.flame.model import FlameModel
    from flap.render import frame_mesh, render_mesh

    model = FlameModel()
    coeffs = apply_controls(
        HeadCoeffs.neutral(round(seconds * fps), fps), pose="look_around", blinks_per_minute=15
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        write_preview(Path(tmp) / "look_around.mp4", coeffs, model=model, size=(size, size))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    verts = next(coeffs_vertices(coeffs[30:31], model))[0].numpy()
    px = frame_mesh(verts, (size, size))
    faces = model.faces.numpy()
    t_z, t_p = [], []
    for _ in range(3):  # interleaved so machine noise hits both alike
        t_z.append(median_time(lambda: render_mesh(px, faces, size=(size, size)), 10, clock=time.process_time, warmup=True))
        t_p.append(median_time(lambda: _painter_reference(px, faces, (size, size)), 10, clock=time.process_time, warmup=True))
    return {
        "frames": coeffs.num_frames,
        "size_px": size,
        "torch_threads": torch.get_num_threads(),
        "preview_s": round(wall, 2),
        "preview_cpu_s": round(cpu, 2),
        "realtime_ratio": round(wall / seconds, 3),
        "render_ms_per_frame": round(statistics.median(t_z) * 1e3, 2),
        "painter_ms_per_frame": round(statistics.median(t_p) * 1e3, 2),
        "zbuffer_vs_painter": round(statistics.median(z / p for z, p in zip(t_z, t_p)), 3),
    }


if __name__ == "__main__":
    print(run())
