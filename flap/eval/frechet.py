"""Fréchet distance between two Gaussians fitted to features: the core of FID and FVD.

``d² = |μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½)`` (Heusel et al. 2017, "GANs trained by a two
time-scale update rule", Sec. 4; Unterthiner et al. 2018 for FVD). FLAP reports FID and FVD as in
the paper's Table 1 (Sec. 5.2).

The trace of the matrix square root is computed from the eigenvalues of the symmetric positive
semi-definite matrix ``Σ₁^½ Σ₂ Σ₁^½`` (same spectrum as ``Σ₁ Σ₂``), in float64, which is stabler
than a general ``sqrtm`` and never produces complex parts.
"""

from __future__ import annotations

import numpy as np

__all__ = ["feature_statistics", "frechet_distance", "frechet_distance_from_features"]


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``features`` ``(N, D)``, float64.

    Raises:
        ValueError: ``features`` is not 2-D, has fewer than 2 rows, or contains NaN/inf.
    """
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2:
        raise ValueError(f"feature_statistics: expected features of shape (N, D), got {feats.shape}")
    if feats.shape[0] < 2:
        raise ValueError(
            f"feature_statistics: need at least 2 feature vectors for a covariance, got {feats.shape[0]}"
        )
    if not np.isfinite(feats).all():
        raise ValueError("feature_statistics: features contain NaN or inf")
    return feats.mean(axis=0), np.cov(feats, rowvar=False).reshape(feats.shape[1], feats.shape[1])


def _sqrt_psd(mat: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped)."""
    vals, vecs = np.linalg.eigh((mat + mat.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    Args:
        mu1, mu2: means ``(D,)``.
        sigma1, sigma2: covariances ``(D, D)`` (symmetric positive semi-definite).

    Returns:
        ``|μ₁−μ₂|² + tr(Σ₁) + tr(Σ₂) − 2 tr((Σ₁Σ₂)^½)`` as a Python float (≥ 0 up to rounding).

    Raises:
        ValueError: shapes disagree.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    for name, arr, want in (("mu2", mu2, (d,)), ("sigma1", s1, (d, d)), ("sigma2", s2, (d, d))):
        if arr.shape != want:
            raise ValueError(f"frechet_distance: {name} must have shape {want} to match mu1, got {arr.shape}")
    root1 = _sqrt_psd(s1)
    inner = root1 @ s2 @ root1
    vals = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = np.sqrt(np.clip(vals, 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def frechet_distance_from_features(features_a, features_b) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets ``(N, D)`` and ``(M, D)``."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))
