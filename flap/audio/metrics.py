"""Checks of audio-driven coefficients: jaw opening and lagged Pearson correlation (issue 4 held-out test)."""

from __future__ import annotations

import numpy as np
import torch

from flap.flame.coeffs import HeadCoeffs

__all__ = ["jaw_opening", "lagged_pearson", "best_lag_pearson"]


def jaw_opening(coeffs: HeadCoeffs | torch.Tensor | np.ndarray) -> np.ndarray:
    """Jaw opening per frame: the jaw's rotation about x (FLAME: positive opens), radians, ``(T,)``.

    Accepts a :class:`HeadCoeffs` or a ``(T, 120)`` array.
    """
    data = coeffs.data if isinstance(coeffs, HeadCoeffs) else torch.as_tensor(np.asarray(coeffs))
    return data[:, 15].detach().cpu().double().numpy()


def lagged_pearson(pred: np.ndarray, ref: np.ndarray, lag: int) -> float:
    """Pearson r of ``pred[t + lag]`` against ``ref[t]`` over the overlapping frames (nan if constant)."""
    pred, ref = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
    n = min(len(pred), len(ref))
    pred, ref = pred[:n], ref[:n]
    a, b = (pred[lag:], ref[: n - lag]) if lag >= 0 else (pred[: n + lag], ref[-lag:])
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def best_lag_pearson(pred: np.ndarray, ref: np.ndarray, max_lag: int = 2) -> tuple[float, int]:
    """Highest Pearson r over lags ``-max_lag … max_lag`` frames: returns ``(r, lag)``."""
    scores = [(lagged_pearson(pred, ref, lag), lag) for lag in range(-max_lag, max_lag + 1)]
    scores = [s for s in scores if np.isfinite(s[0])]
    return max(scores) if scores else (float("nan"), 0)
