"""Fréchet distance (FID/FVD core) against a direct scipy.linalg.sqrtm computation."""

import numpy as np
import pytest
import scipy.linalg

from flap.eval.frechet import feature_statistics, frechet_distance, frechet_distance_from_features


def _scipy_frechet(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("dim,n", [(8, 200), (64, 500), (3, 50)])
def test_matches_scipy_sqrtm(dim, n):
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim))
    b = rng.normal(0.3, 1.5, size=(n, dim)) @ rng.normal(size=(dim, dim))
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    expected = _scipy_frechet(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, abs=1e-6, rel=1e-9)
    assert frechet_distance_from_features(a, b) == pytest.approx(expected, abs=1e-6, rel=1e-9)


def test_identical_and_shifted_gaussians():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(300, 5))
    assert frechet_distance_from_features(feats, feats) == pytest.approx(0.0, abs=1e-9)
    # a pure mean shift of (1, 2, 0, 0, 0) adds |Δμ|² = 5 and nothing else
    assert frechet_distance_from_features(feats, feats + [1, 2, 0, 0, 0]) == pytest.approx(5.0, abs=1e-9)
    # 1-D closed form: (μ1-μ2)² + (σ1-σ2)²
    assert frechet_distance([0.0], [[4.0]], [1.0], [[9.0]]) == pytest.approx(1.0 + 1.0)


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        feature_statistics(np.zeros(4))
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
