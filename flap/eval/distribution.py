"""FID and FVD between generated and real videos (paper Table 1, Sec. 5.2) from extracted features."""

from __future__ import annotations

import numpy as np

from flap.eval.extractors import FeatureExtractor
from flap.eval.frechet import frechet_distance_from_features

__all__ = ["fid", "fvd", "video_clips"]


def fid(
    generated: list[np.ndarray], real: list[np.ndarray], extractor: FeatureExtractor, max_frames: int = 0
) -> dict:
    """Fréchet Inception Distance over all frames of the generated vs the real videos.

    Args:
        generated, real: lists of ``(T, H, W, 3)`` uint8 videos (or single images as ``(1, H, W, 3)``).
        extractor: Inception feature extractor (2048-D pool features).
        max_frames: if > 0, use at most this many evenly spaced frames per video.

    Returns:
        ``{"fid", "frames_generated", "frames_real"}``.
    """

    def frames(videos):
        sel = [
            v[np.linspace(0, len(v) - 1, min(len(v), max_frames)).round().astype(int)]
            if max_frames > 0
            else v
            for v in videos
        ]
        return np.concatenate(sel)

    fa, fb = extractor(frames(generated)), extractor(frames(real))
    return {
        "fid": frechet_distance_from_features(fa, fb),
        "frames_generated": len(fa),
        "frames_real": len(fb),
    }


def video_clips(video: np.ndarray, clip_len: int, stride: int) -> np.ndarray:
    """Non-overlapping (``stride == clip_len``) or strided clips ``(N, clip_len, H, W, 3)`` of a video.

    Raises:
        ValueError: the video is shorter than ``clip_len``.
    """
    if len(video) < clip_len:
        raise ValueError(f"video_clips: video has {len(video)} frames, a clip needs {clip_len}")
    starts = range(0, len(video) - clip_len + 1, max(1, stride))
    return np.stack([video[s : s + clip_len] for s in starts])


def fvd(
    generated: list[np.ndarray],
    real: list[np.ndarray],
    extractor: FeatureExtractor,
    clip_len: int = 16,
    stride: int = 8,
) -> dict:
    """Fréchet Video Distance between clips of the generated and real videos (I3D features).

    Returns:
        ``{"fvd", "clips_generated", "clips_real"}``.
    """
    fa = extractor(np.concatenate([video_clips(v, clip_len, stride) for v in generated]))
    fb = extractor(np.concatenate([video_clips(v, clip_len, stride) for v in real]))
    return {"fvd": frechet_distance_from_features(fa, fb), "clips_generated": len(fa), "clips_real": len(fb)}
