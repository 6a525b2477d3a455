"""FlameModel forward vs calling smplx's ``lbs`` directly on the same inputs (same process).

Figure for the README: the ratio of median times for 64 frames (issue: ≤ 1.2×). FlameModel adds the
68 landmarks (static + yaw-dependent contour) on top of LBS.
"""

from __future__ import annotations

import statistics
import time

import torch
from smplx.lbs import lbs


def _time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(frames: int = 64, repeats: int = 30) -> dict:
    from flap.flame.model import FlameModel

    flame = FlameModel()
    g = torch.Generator().manual_seed(0)
    shape = torch.randn(frames, flame.n_shape, generator=g)
    expression = torch.randn(frames, flame.n_exp, generator=g)
    eyelids = torch.rand(frames, 2, generator=g)
    pose = torch.randn(frames, 15, generator=g) * 0.2
    betas = torch.cat([shape, expression, eyelids], dim=1)

    def direct():
        with torch.no_grad():
            lbs(betas, pose, flame.v_template, flame.shapedirs, flame.posedirs,
                flame.J_regressor, flame.parents, flame.lbs_weights)

    def model():
        with torch.no_grad():
            flame(shape=shape, expression=expression, global_rot=pose[:, :3], neck=pose[:, 3:6],
                  jaw=pose[:, 6:9], eyes=pose[:, 9:], eyelids=eyelids)

    # Alternate the two call by call so that machine noise hits both alike; median of the ratios.
    direct(), model()
    t_direct, t_model = [], []
    for _ in range(repeats):
        t_direct.append(_time_once(direct))
        t_model.append(_time_once(model))
    td, tm = statistics.median(t_direct), statistics.median(t_model)
    ratio = statistics.median(m / d for m, d in zip(t_model, t_direct))
    return {
        "frames": frames,
        "smplx_lbs_ms": round(td * 1e3, 2),
        "flame_model_ms": round(tm * 1e3, 2),
        "ratio": round(ratio, 3),
    }


if __name__ == "__main__":
    print(run())
