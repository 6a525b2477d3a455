"""Lightning DataModule for Progressively Focused Training (paper Sec. 4.3; Hydra ``conf/data/*.yaml``)."""

from __future__ import annotations

import os

import lightning as L
from torch.utils.data import DataLoader

from flap.data.datasets import ImagePairDataset, VideoClipDataset

__all__ = ["FLAPDataModule"]


class FLAPDataModule(L.LightningDataModule):
    """Image pairs (stages 1-2) or frame windows (stage 3) from a prepared dataset.

    Args:
        root: folder written by ``python -m flap.data.prepare``.
        mode: ``"pairs"`` (:class:`ImagePairDataset`) or ``"video"`` (:class:`VideoClipDataset`).
        motion_top_fraction: pairs only; keep the clips with the largest head-motion variance
            (stage 1: 0.2; ``None`` = all clips).
        num_frames, stride: video only; frames per window and step between windows.
        batch_size, num_workers: DataLoader settings (per process under DDP; Lightning adds the
            distributed sampler).
        seed: sampling seed (reference frames; shuffling uses Lightning's seed).
        shuffle: shuffle the training set.

    Raises:
        ValueError: unknown ``mode``.
    """

    def __init__(self, root: str | os.PathLike, mode: str = "pairs", motion_top_fraction: float | None = None,
                 num_frames: int = 16, stride: int = 4, batch_size: int = 4, num_workers: int = 0,
                 seed: int = 0, shuffle: bool = True, min_gap: int = 0):
        super().__init__()
        if mode not in ("pairs", "video"):
            raise ValueError(f"FLAPDataModule: mode must be 'pairs' or 'video', got {mode!r}")
        self.save_hyperparameters()
        self.train_set = None

    def setup(self, stage: str | None = None) -> None:
        """Index the prepared clips (cheap: reads meta.json and coeffs.npz only)."""
        if self.train_set is not None:
            return
        h = self.hparams
        if h.mode == "pairs":
            self.train_set = ImagePairDataset(h.root, h.motion_top_fraction, seed=h.seed, min_gap=h.min_gap)
        else:
            self.train_set = VideoClipDataset(h.root, h.num_frames, h.stride, seed=h.seed)

    def train_dataloader(self) -> DataLoader:
        """Training batches (dicts of stacked tensors, see the datasets)."""
        h = self.hparams
        return DataLoader(self.train_set, batch_size=h.batch_size, shuffle=h.shuffle, num_workers=h.num_workers,
                          drop_last=len(self.train_set) >= h.batch_size, persistent_workers=h.num_workers > 0)
