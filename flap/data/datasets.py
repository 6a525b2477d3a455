"""Training datasets over a prepared FLAP dataset (:mod:`flap.data.prepare`), paper Sec. 4.3 / 5.1.

* :class:`ImagePairDataset` (stages 1 and 2): a target frame and a random reference frame of the
  same clip, with the target's FLAME condition. Stage 1 restricts the clips to the top
  ``motion_top_fraction`` by head-motion variance.
* :class:`VideoClipDataset` (stage 3): ``num_frames`` consecutive kept frames (inside one
  hand-filter segment), their conditions, and a random reference frame of the clip.

Images are float ``(3, H, W)`` in ``[-1, 1]``; conditions are ``(120,)`` / ``(F, 120)`` float32
(:class:`~flap.flame.coeffs.HeadCoeffs` layout).

Sampling is a pure function of ``(seed, epoch, index)`` so a resumed run sees the same samples,
and a new epoch draws new reference frames (and augmentations): the datasets accept *epoch-coded*
indices ``k = epoch * len(dataset) + index`` (:class:`flap.data.datamodule.EpochShuffleSampler`
yields them); a plain index ``0 <= k < len`` is epoch 0.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from flap.data.augment import PairAugment
from flap.data.motion import top_fraction
from flap.flame.coeffs import HeadCoeffs

__all__ = ["PreparedClip", "load_prepared_clips", "read_frame", "split_epoch_index", "ImagePairDataset",
           "VideoClipDataset"]


@dataclass
class PreparedClip:
    """One kept clip of a prepared dataset.

    Attributes:
        clip_id: folder name under ``root/clips``.
        folder: the clip folder.
        frames: ``int64 (K,)`` kept frame indices (files ``frames/%06d.png``).
        segments: half-open ``(start, end)`` runs of kept frames.
        coeffs: ``float32 (T, 120)`` FLAME condition of every frame.
        motion_variance: head-motion variance (see :mod:`flap.data.motion`).
    """

    clip_id: str
    folder: Path
    frames: np.ndarray
    segments: list[tuple[int, int]]
    coeffs: np.ndarray
    motion_variance: float


def load_prepared_clips(root: str | os.PathLike, motion_top_fraction: float | None = None,
                        holdout_tail: float = 0.0) -> list[PreparedClip]:
    """Kept clips of a prepared dataset (those with ``clips/<id>/meta.json``), sorted by id.

    Args:
        root: output folder of :func:`flap.data.prepare.prepare_dataset`.
        motion_top_fraction: keep only this top fraction of clips by head-motion variance
            (stage 1; ``None`` = all).
        holdout_tail: leave out the last ``ceil(holdout_tail * K)`` kept frames of every clip
            (kept for evaluation, e.g. self-reenactment on frames the model never saw); 0 = none.

    Raises:
        FileNotFoundError: no kept clip under ``root/clips``, or a clip without ``coeffs.npz``
            (prepared without a FLAME tracker).
    """
    root = Path(root)
    metas = sorted((root / "clips").glob("*/meta.json"))
    if not metas:
        raise FileNotFoundError(f"no prepared clips under {root / 'clips'} (run python -m flap.data.prepare)")
    clips = []
    for meta_path in metas:
        meta = json.loads(meta_path.read_text())
        folder = meta_path.parent
        if not (folder / "coeffs.npz").is_file():
            raise FileNotFoundError(
                f"{folder}: coeffs.npz missing (the clip was prepared without a FLAME tracker; "
                "re-run the preparation with --tracker auto)"
            )
        segments = [tuple(s) for s in meta["segments"]]
        frames = np.concatenate([np.arange(s, e) for s, e in segments]).astype(np.int64)
        if holdout_tail > 0:
            frames = frames[:max(1, len(frames) - int(np.ceil(len(frames) * holdout_tail)))]
            cut = int(frames[-1]) + 1
            segments = [(a, min(b, cut)) for a, b in segments if a < cut]
        coeffs = HeadCoeffs.load(folder / "coeffs.npz").numpy().astype(np.float32)
        clips.append(PreparedClip(folder.name, folder, frames, segments, coeffs, float(meta["motion_variance"])))
    if motion_top_fraction is not None:
        keep = set(top_fraction({c.clip_id: c.motion_variance for c in clips}, motion_top_fraction))
        clips = [c for c in clips if c.clip_id in keep]
    return clips


def read_frame(clip: PreparedClip, index: int) -> torch.Tensor:
    """Frame ``index`` of ``clip`` as float ``(3, H, W)`` in ``[-1, 1]``.

    Raises:
        FileNotFoundError: the frame file is missing (a dropped frame or a damaged dataset).
    """
    path = clip.folder / "frames" / f"{int(index):06d}.png"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"{path}: frame missing or unreadable")
    return torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1])).permute(2, 0, 1).float().div(127.5).sub(1.0)


def split_epoch_index(k: int, n: int) -> tuple[int, int]:
    """Epoch-coded index ``k = epoch * n + i`` -> ``(epoch, i)``.

    Raises:
        IndexError: ``k < 0``.
    """
    if k < 0:
        raise IndexError(f"dataset index must be >= 0, got {k}")
    return divmod(int(k), int(n))


class ImagePairDataset(Dataset):
    """(reference, target) frame pairs of the same clip, for stages 1 and 2.

    Item ``k = epoch * len + i``: the target is the ``i``-th kept frame over all clips; the
    reference frame is drawn from the same clip (paper Sec. 4.3) with
    ``rng = np.random.default_rng((seed, epoch, i))``, which then draws the augmentation.

    Args:
        root: prepared dataset folder.
        motion_top_fraction: see :func:`load_prepared_clips` (stage 1: 0.2).
        seed: sampling seed.
        min_gap: the reference is at least this many frames away from the target when possible.
        augment: label-exact augmentation of the pair (:class:`~flap.data.augment.PairAugment`,
            or its keyword arguments); ``None`` = off.
        holdout_tail: see :func:`load_prepared_clips`.

    Items: ``{"reference": (3, H, W), "target": (3, H, W), "coeffs": (120,), "reference_coeffs": (120,)}``.
    """

    def __init__(self, root: str | os.PathLike, motion_top_fraction: float | None = None, seed: int = 0,
                 min_gap: int = 0, augment: PairAugment | dict | None = None, holdout_tail: float = 0.0):
        self.clips = load_prepared_clips(root, motion_top_fraction, holdout_tail)
        self.index = [(c, int(t)) for c, clip in enumerate(self.clips) for t in clip.frames]
        self.seed = int(seed)
        self.min_gap = int(min_gap)
        self.augment = PairAugment(**augment) if isinstance(augment, dict) else augment

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        epoch, i = split_epoch_index(k, len(self.index))
        c, t = self.index[i]
        clip = self.clips[c]
        rng = np.random.default_rng((self.seed, epoch, i))
        far = clip.frames[np.abs(clip.frames - t) >= self.min_gap]
        ref = int(rng.choice(far if len(far) else clip.frames))
        reference, target = read_frame(clip, ref), read_frame(clip, t)
        ref_coeffs, coeffs = clip.coeffs[ref], clip.coeffs[t]
        if self.augment is not None:
            reference, target, ref_coeffs, coeffs = self.augment(rng, reference, target, ref_coeffs, coeffs)
        return {
            "reference": reference,
            "target": target,
            "coeffs": torch.from_numpy(np.ascontiguousarray(coeffs, dtype=np.float32)),
            "reference_coeffs": torch.from_numpy(np.ascontiguousarray(ref_coeffs, dtype=np.float32)),
        }


class VideoClipDataset(Dataset):
    """Windows of ``num_frames`` consecutive kept frames, for stage 3 (temporal layers).

    Windows start every ``stride`` frames inside each hand-filter segment long enough.

    Args:
        root: prepared dataset folder.
        num_frames: frames per window ``F``.
        stride: step between window starts, in frames.
        seed: seed for the reference frame choice (with the epoch, as :class:`ImagePairDataset`).
        holdout_tail: see :func:`load_prepared_clips`.

    Items: ``{"reference": (3, H, W), "frames": (F, 3, H, W), "coeffs": (F, 120)}``.

    Raises:
        ValueError: no segment holds ``num_frames`` frames.
    """

    def __init__(self, root: str | os.PathLike, num_frames: int = 16, stride: int = 4, seed: int = 0,
                 holdout_tail: float = 0.0):
        self.clips = load_prepared_clips(root, holdout_tail=holdout_tail)
        self.num_frames = int(num_frames)
        self.windows = [(c, s) for c, clip in enumerate(self.clips) for a, b in clip.segments
                        for s in range(a, b - self.num_frames + 1, max(1, int(stride)))]
        if not self.windows:
            raise ValueError(f"VideoClipDataset: no kept segment of {root} has {num_frames} frames")
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        epoch, i = split_epoch_index(k, len(self.windows))
        c, s = self.windows[i]
        clip = self.clips[c]
        ref = int(np.random.default_rng((self.seed, epoch, i)).choice(clip.frames))
        idx = range(s, s + self.num_frames)
        return {
            "reference": read_frame(clip, ref),
            "frames": torch.stack([read_frame(clip, t) for t in idx]),
            "coeffs": torch.from_numpy(clip.coeffs[s:s + self.num_frames]),
        }
