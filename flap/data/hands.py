"""Hand filtering with Grounding DINO (paper Sec. 5.1: clips where hands occlude the face are removed).

A zero-shot detector (transformers ``GroundingDinoForObjectDetection``, loaded from a LOCAL folder,
never downloaded) scores every ``every``-th frame for the prompt ``"hand. finger."``. A checked
frame is a *hand frame* when its best detection score exceeds ``threshold``; an unchecked frame
inherits the decision of the checked frames around it (dropped if either neighbour is a hand
frame). Kept frames are grouped into contiguous segments; segments shorter than
``min_segment_frames`` are cut. Every decision is returned so the manifest can record it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flap.io.runtime import resolve_device

__all__ = ["HandDetector", "FrameDecision", "decide_frames", "kept_segments"]


class HandDetector:
    """Grounding DINO hand scores for RGB frames.

    Args:
        model_dir: local folder with a ``GroundingDinoForObjectDetection`` (``config.json`` +
            weights) and its processor (tokenizer + image processor), as written by ``save_pretrained``.
        prompt: text prompt; lower case, classes separated by ``". "``.
        batch_size: frames per forward pass.
        device: torch device (default: CUDA if available, else CPU).

    Raises:
        FileNotFoundError: ``model_dir`` is not a folder with a ``config.json``.
    """

    def __init__(self, model_dir: str | os.PathLike, prompt: str = "hand. finger.", batch_size: int = 8,
                 device: str | torch.device | None = None):
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"HandDetector: {model_dir} must be a local Grounding DINO folder with config.json "
                "(save_pretrained output); nothing is downloaded"
            )
        self.device = resolve_device(device)
        self.processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        self.model = GroundingDinoForObjectDetection.from_pretrained(model_dir, local_files_only=True)
        self.model.to(self.device).eval()
        self.prompt = prompt
        self.batch_size = int(batch_size)

    @torch.no_grad()
    def scores(self, frames: np.ndarray) -> np.ndarray:
        """Best detection score (sigmoid of the max token logit over all queries) per frame.

        Args:
            frames: ``uint8 (N, H, W, 3)`` RGB.

        Returns:
            ``float32 (N,)`` in [0, 1]; 0 for an empty input.
        """
        out = []
        for i in range(0, len(frames), self.batch_size):
            batch = [np.ascontiguousarray(f) for f in frames[i:i + self.batch_size]]
            inputs = self.processor(images=batch, text=[self.prompt] * len(batch), return_tensors="pt")
            inputs = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in inputs.items()}
            logits = self.model(**inputs).logits  # (B, queries, text tokens)
            mask = inputs["attention_mask"].bool()[:, None, : logits.shape[-1]]
            logits = logits[..., : mask.shape[-1]].masked_fill(~mask, float("-inf"))
            out.append(torch.sigmoid(logits.flatten(1).amax(dim=1)).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


@dataclass
class FrameDecision:
    """Hand decision for one frame: ``checked`` (was it scored), ``score`` (None if not), ``keep``."""

    frame: int
    checked: bool
    score: float | None
    keep: bool

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return {"frame": self.frame, "checked": self.checked,
                "score": None if self.score is None else float(self.score), "keep": self.keep}


def decide_frames(num_frames: int, checked: np.ndarray, scores: np.ndarray, threshold: float) -> list[FrameDecision]:
    """Per-frame keep/drop decisions from the scores of the checked frames.

    Args:
        num_frames: number of frames T.
        checked: ``(N,)`` sorted frame indices that were scored.
        scores: ``(N,)`` their hand scores in [0, 1].
        threshold: a checked frame with ``score > threshold`` is a hand frame.

    Returns:
        ``T`` decisions; an unchecked frame is dropped when the checked frame before it or after it
        is a hand frame (no checked frames at all: everything kept).
    """
    checked = np.asarray(checked, dtype=np.int64)
    hand = np.asarray(scores, dtype=np.float64) > threshold
    by_frame = dict(zip(checked.tolist(), np.asarray(scores, dtype=np.float64).tolist()))
    decisions = []
    for t in range(num_frames):
        if t in by_frame:
            decisions.append(FrameDecision(t, True, by_frame[t], by_frame[t] <= threshold))
            continue
        j = np.searchsorted(checked, t)
        near = [k for k in (j - 1, j) if 0 <= k < len(checked)]
        decisions.append(FrameDecision(t, False, None, not any(hand[k] for k in near)))
    return decisions


def kept_segments(keep: np.ndarray, min_length: int = 1) -> list[tuple[int, int]]:
    """Contiguous runs of kept frames as half-open ``(start, end)`` index pairs of length ≥ ``min_length``.

    Example: ``keep = [1, 1, 0, 1, 1, 1]``, ``min_length = 3`` → ``[(3, 6)]``.
    """
    keep = np.asarray(keep, dtype=bool)
    edges = np.diff(np.concatenate([[0], keep.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends) if e - s >= min_length]
