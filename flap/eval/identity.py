"""Identity preservation: cosine similarity of face-recognition embeddings to the reference portrait."""

from __future__ import annotations

import numpy as np

from flap.eval.extractors import FeatureExtractor

__all__ = ["identity_similarity"]


def identity_similarity(
    face_crops: np.ndarray, reference_crop: np.ndarray, extractor: FeatureExtractor
) -> dict:
    """Mean and minimum cosine similarity between each frame's face embedding and the reference's.

    Args:
        face_crops: ``(T, H, W, 3)`` uint8 aligned face crops of the generated video.
        reference_crop: ``(H, W, 3)`` uint8 face crop of the reference image.
        extractor: a user-supplied face-recognition network (e.g. ArcFace TorchScript).

    Returns:
        ``{"identity_cos_mean", "identity_cos_min"}`` in [-1, 1] (1 = same embedding).
    """
    emb = extractor(np.asarray(face_crops))
    ref = extractor(np.asarray(reference_crop)[None])[0]
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    ref = ref / max(np.linalg.norm(ref), 1e-12)
    cos = emb @ ref
    return {"identity_cos_mean": float(cos.mean()), "identity_cos_min": float(cos.min())}
