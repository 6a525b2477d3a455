"""Synthetic (audio, HeadCoeffs) pairs for tests and smoke runs: the jaw follows the speech loudness.

A voiced "syllable" signal (harmonics at a random pitch, amplitude-modulated by a smooth random
envelope with pauses) and coefficients whose jaw opening, first expression coefficient and a small
head nod follow the same envelope (delayed by ``lag_frames``). Nothing here is real speech; it
exists to check that the training and inference plumbing learns an audio→jaw mapping.
"""

from __future__ import annotations

import numpy as np
import torch

from flap.flame.coeffs import DEFAULT_FPS, HeadCoeffs
from flap.io.formats import SAMPLE_RATE

__all__ = ["synthetic_pair", "synthetic_pairs"]


def _f32(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def _envelope(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Per-frame syllable envelope in [0, 1]: bumps of 3–8 frames separated by 0–10 frame pauses."""
    env = np.zeros(num_frames)
    t = int(rng.integers(3, 12))  # leading pause
    while t < num_frames - 3:
        width = int(rng.integers(3, 9))
        bump = np.sin(np.linspace(0, np.pi, width)) * rng.uniform(0.5, 1.0)
        env[t : t + width] = bump[: num_frames - t]
        t += width + int(rng.integers(0, 11))
    env[-5:] = 0.0  # trailing pause
    return env


def synthetic_pair(
    seconds: float = 3.0, fps: float = DEFAULT_FPS, sr: int = SAMPLE_RATE, seed: int = 0, lag_frames: int = 0
) -> tuple[np.ndarray, HeadCoeffs]:
    """One pair: ``audio (round(seconds*sr),) float32`` and ``HeadCoeffs (round(seconds*fps), 120)``."""
    rng = np.random.default_rng(seed)
    t_frames = int(round(seconds * fps))
    n = int(round(seconds * sr))
    env = _envelope(t_frames, rng)
    time_s = np.arange(n) / sr
    env_audio = np.interp(time_s, (np.arange(t_frames) + 0.5) / fps, env)
    f0 = rng.uniform(100, 220)
    voice = sum(np.sin(2 * np.pi * f0 * k * time_s + rng.uniform(0, 6.28)) / k for k in range(1, 12))
    audio = (0.3 * env_audio * voice / 3.0 + rng.normal(0, 1e-3, n)).astype(np.float32)
    delayed = np.roll(env, lag_frames)
    if lag_frames > 0:
        delayed[:lag_frames] = 0.0
    coeffs = HeadCoeffs.neutral(t_frames, fps)
    coeffs.data[:, 15] = _f32(0.3 * delayed + rng.normal(0, 0.005, t_frames))  # jaw opening (rad)
    coeffs.data[:, 20] = _f32(1.5 * delayed)  # first expression coefficient
    coeffs.data[:, 0] = _f32(0.03 * np.convolve(delayed, np.ones(7) / 7, mode="same"))  # small nod
    coeffs.data[:, 21:30] = _f32(rng.normal(0, 0.05, (t_frames, 9)))
    return audio, coeffs


def synthetic_pairs(
    count: int, seconds: float = 3.0, fps: float = DEFAULT_FPS, sr: int = SAMPLE_RATE, seed: int = 0
) -> list[tuple[str, np.ndarray, HeadCoeffs]]:
    """``count`` pairs named ``synth_0 … synth_{count-1}``: ``[(name, audio, coeffs), ...]``."""
    return [(f"synth_{i}", *synthetic_pair(seconds, fps, sr, seed + i)) for i in range(count)]
