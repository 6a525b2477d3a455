"""Evaluation cost on this CPU (same-process references, no weights needed).

* Fréchet distance at D=512: FLAP's eigen-decomposition route vs ``scipy.linalg.sqrtm`` (the
  reference implementation of clean-fid / pytorch-fid), same inputs; ratio < 1 means faster.
* Weight-free per-video metrics (pose / jaw / expression following, lip-sync proxy, jitter) on a
  10 s clip at 25 fps, from already-tracked coefficients: time per frame.
* SyncNet windows per second (random weights, the published network size), against the
  tracker-free part of the evaluation.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.timing import median_time  # noqa: E402


def run(dim: int = 512, frames: int = 250, repeats: int = 3) -> dict:
    import scipy.linalg

    from flap.eval.frechet import frechet_distance
    from flap.eval.pose import expression_following, jaw_following, pose_following
    from flap.eval.syncnet import SyncNetModel, sync_scores
    from flap.flame.coeffs import HeadCoeffs
    from flap.signals import best_lag_correlation, landmark_jitter, mouth_opening, speech_envelope

    rng = np.random.default_rng(0)
    a = rng.normal(size=(4 * dim, dim))
    b = rng.normal(size=(4 * dim, dim)) @ rng.normal(size=(dim, dim)) / np.sqrt(dim)
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)

    def scipy_ref():
        covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
        return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * covmean))

    t_flap = median_time(lambda: frechet_distance(mu1, s1, mu2, s2), repeats)
    t_scipy = median_time(scipy_ref, repeats)
    diff = abs(frechet_distance(mu1, s1, mu2, s2) - scipy_ref())

    req = HeadCoeffs(torch.from_numpy(rng.normal(scale=0.1, size=(frames, 120))), 25.0)
    trk = HeadCoeffs(req.data + 0.01 * torch.randn(frames, 120, dtype=req.data.dtype), 25.0)
    lm = rng.normal(size=(frames, 68, 2)) + np.linspace(0, 300, 68)[None, :, None]
    audio = rng.normal(size=int(frames / 25 * 16000)).astype(np.float32)

    def weight_free():
        pose_following(req, trk)
        jaw_following(req, trk)
        expression_following(req, trk)
        env = speech_envelope(audio, 16000, 25.0, frames)
        best_lag_correlation(mouth_opening(lm), env, 5)
        landmark_jitter(lm)

    t_free = median_time(weight_free, repeats)

    torch.manual_seed(0)
    model = SyncNetModel().eval()
    n = 25
    crops = rng.integers(0, 255, (n, 224, 224, 3), dtype=np.uint8)
    t_sync = median_time(lambda: sync_scores(model, crops, audio[: n * 640], fps=25.0), 1)
    return {
        "frechet_dim": dim,
        "frechet_flap_s": t_flap,
        "frechet_scipy_sqrtm_s": t_scipy,
        "frechet_time_ratio_vs_scipy": t_flap / t_scipy,
        "frechet_abs_diff_vs_scipy": diff,
        "weight_free_metrics_ms_per_frame": 1000 * t_free / frames,
        "syncnet_windows_per_s": (n - 5) / t_sync,
        "syncnet_vs_weight_free_time_ratio_per_frame": (t_sync / (n - 5)) / (t_free / frames),
    }


if __name__ == "__main__":
    torch.set_num_threads(1)
    for k, v in run().items():
        print(f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}")
