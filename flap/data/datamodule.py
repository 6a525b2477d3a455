"""Lightning DataModule for Progressively Focused Training (paper Sec. 4.3; Hydra ``flap/conf/data/*.yaml``)."""

from __future__ import annotations

import os

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler

from flap.data.datasets import ImagePairDataset, VideoClipDataset

__all__ = ["FLAPDataModule", "EpochShuffleSampler"]


class EpochShuffleSampler(Sampler[int]):
    """Epoch-coded indices ``epoch * n + i`` over a permutation of ``range(n)`` that depends only on ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` at every epoch start, so a run resumed from a checkpoint
    sees the same order as an uninterrupted one (the default sampler draws from the global RNG).
    The datasets (:mod:`flap.data.datasets`) decode ``epoch`` from the index and draw a new
    reference frame (and augmentation) every epoch, still as a pure function of the index.
    Under DDP Lightning wraps it in a distributed sampler (each rank gets its share).

    Args:
        n: dataset length.
        seed: permutation seed.
        shuffle: permute (``False``: ``0..n-1`` in order, still epoch-coded).
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True):
        self.n, self.seed, self.epoch, self.shuffle = int(n), int(seed), 0, bool(shuffle)

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        return iter((order + self.epoch * self.n).tolist())


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
        seed: sampling seed (order, reference frames and augmentation, with the epoch).
        shuffle: shuffle the training set.
        min_gap: pairs only; see :class:`ImagePairDataset`.
        augment: pairs only; keyword arguments of :class:`flap.data.augment.PairAugment`
            (label-exact flip / rotation / jitter), ``None`` = off.
        holdout_tail: leave out the last fraction of every clip's frames (evaluation part).

    Raises:
        ValueError: unknown ``mode``.
    """

    def __init__(self, root: str | os.PathLike, mode: str = "pairs", motion_top_fraction: float | None = None,
                 num_frames: int = 16, stride: int = 4, batch_size: int = 4, num_workers: int = 0,
                 seed: int = 0, shuffle: bool = True, min_gap: int = 0, augment: dict | None = None,
                 holdout_tail: float = 0.0):
        super().__init__()
        if mode not in ("pairs", "video"):
            raise ValueError(f"FLAPDataModule: mode must be 'pairs' or 'video', got {mode!r}")
        root = str(root)  # plain types only in checkpoints (torch.load weights_only)
        augment = None if augment is None else {k: float(v) for k, v in dict(augment).items()}
        self.save_hyperparameters()
        self.train_set = None

    def setup(self, stage: str | None = None) -> None:
        """Index the prepared clips (cheap: reads meta.json and coeffs.npz only)."""
        if self.train_set is not None:
            return
        h = self.hparams
        if h.mode == "pairs":
            self.train_set = ImagePairDataset(h.root, h.motion_top_fraction, seed=h.seed, min_gap=h.min_gap,
                                              augment=h.augment, holdout_tail=h.holdout_tail)
        else:
            self.train_set = VideoClipDataset(h.root, h.num_frames, h.stride, seed=h.seed,
                                              holdout_tail=h.holdout_tail)

    def train_dataloader(self) -> DataLoader:
        """Training batches (dicts of stacked tensors, see the datasets)."""
        h = self.hparams
        sampler = EpochShuffleSampler(len(self.train_set), h.seed, shuffle=h.shuffle)
        return DataLoader(self.train_set, batch_size=h.batch_size, sampler=sampler, num_workers=h.num_workers,
                          drop_last=len(self.train_set) >= h.batch_size, persistent_workers=h.num_workers > 0)
