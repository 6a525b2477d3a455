"""Training data for :class:`~flap.audio.model.Audio2Flame`: (speech, tracked HeadCoeffs) pairs.

A *clip* is a media file with sound (video or audio) plus the HeadCoeffs the FLAME tracker wrote for
it (``tools/track_flame.py``; one ``<stem>.npz`` or ``<stem>.safetensors`` per clip, at the video's
fps). Features are computed once per clip with exactly ``len(coeffs)`` frames. Training samples are
random crops of ``crop_frames`` frames; validation uses whole clips.

Augmentation (log-mel only): a random gain in dB (features shifted, floored at the silence level)
and digital-silence padding at the clip ends, whose targets repeat the clip's first/last frame with
a closed jaw (:func:`rest_pose`), so the model sees true silence with a closed, still mouth. The
closed jaw is one level for all clips, the ``rest_quantile``-th percentile of the training jaw
opening: tracked rest levels differ between speakers and an audio-only model cannot tell the
speaker during silence, so it is taught one firmly closed mouth.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from flap.audio.features import build_features, extract_features
from flap.audio.io import SAMPLE_RATE, load_audio
from flap.audio.synthetic import synthetic_pairs
from flap.flame.coeffs import SLICES, HeadCoeffs

__all__ = ["Clip", "find_clips", "center_pose", "CropDataset", "ClipDataset", "Audio2FlameDataModule"]


@dataclass
class Clip:
    """One training clip: ``features (T, D)`` float32, ``coeffs (T, 120)`` float32, its name and fps."""

    name: str
    features: np.ndarray
    coeffs: np.ndarray
    fps: float


def find_clips(media: list[str], tracked_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """Match media files (glob patterns) with tracked coefficients ``tracked_dir/<stem>.{npz,safetensors}``.

    Returns ``[(stem, media_path, coeffs_path), ...]`` sorted by stem; media without coefficients are
    skipped.

    Raises:
        FileNotFoundError: ``tracked_dir`` missing, or no media file has tracked coefficients.
    """
    tracked_dir = Path(tracked_dir)
    if not tracked_dir.is_dir():
        raise FileNotFoundError(f"find_clips: tracked coefficient folder not found: {tracked_dir}")
    files = sorted({Path(p) for pattern in media for p in glob.glob(str(pattern))})
    found = []
    for path in files:
        for suffix in (".npz", ".safetensors"):
            coeffs = tracked_dir / f"{path.stem}{suffix}"
            if coeffs.is_file():
                found.append((path.stem, path, coeffs))
                break
    if not found:
        raise FileNotFoundError(
            f"find_clips: none of the {len(files)} media files matching {list(media)} has tracked coefficients "
            f"(<stem>.npz / .safetensors) in {tracked_dir}"
        )
    return sorted(found)


def rest_jaw(coeffs: np.ndarray, quantile: float = 5.0) -> np.ndarray:
    """Closed-mouth jaw ``(3,)``: the jaw of the frame at the ``quantile``-th percentile of jaw opening.

    ``coeffs`` ``(T, 120)``, e.g. all training frames stacked. Jaw opening = rotation about x (rad).
    """
    opening = coeffs[:, SLICES["jaw"].start]
    idx = int(np.argmin(np.abs(opening - np.percentile(opening, quantile))))
    return coeffs[idx, SLICES["jaw"]].copy()


def center_pose(coeffs: HeadCoeffs) -> HeadCoeffs:
    """Return a copy whose head pose is the clip's motion around its own mean orientation.

    The mean pitch / yaw / roll (degrees, :meth:`HeadCoeffs.pose_degrees`) over the clip is subtracted
    from every frame's; nothing else changes. A speaker's habitual orientation to the camera (the
    prepared clips' mean yaw spans -26° to +19°) is not in the audio, and a regressor trained on raw
    poses learns it from the voice instead (issue 13: a -25.6° yaw excursion on the demo speech).
    Standard deviations over time, which the audio can carry, are unchanged.

    Args:
        coeffs: ``(T, 120)`` tracked coefficients of one clip (not modified).

    Returns:
        a new :class:`HeadCoeffs` ``(T, 120)`` whose pitch / yaw / roll have zero mean over the clip.
    """
    out = coeffs.clone()
    pyr = out.pose_degrees().double()
    return out.set_pose_degrees((pyr - pyr.mean(0, keepdim=True)).numpy())


def rest_pose(frame: np.ndarray, jaw: np.ndarray) -> np.ndarray:
    """Target for digital silence: ``frame (1, 120)`` with its jaw replaced by ``jaw (3,)``."""
    out = frame.copy()
    out[:, SLICES["jaw"]] = jaw
    return out


class CropDataset(Dataset):
    """Random ``crop_frames`` crops of the clips (``length`` samples per epoch).

    Items: ``{"features": (crop, D), "coeffs": (crop, 120), "mask": (crop,) bool}`` float32; clips shorter
    than the crop are zero-padded with ``mask`` False.
    """

    def __init__(
        self,
        clips: list[Clip],
        crop_frames: int,
        length: int,
        silence_feature: np.ndarray | None = None,
        silence_pad: int = 0,
        gain_db: float = 0.0,
        floor: float | None = None,
        seed: int = 0,
        silence_jaw: np.ndarray | None = None,
    ):
        if not clips:
            raise ValueError("CropDataset: no training clips")
        self.clips, self.crop, self.length = clips, int(crop_frames), int(length)
        self.silence_feature, self.silence_pad = silence_feature, int(silence_pad)
        self.gain_db, self.floor, self.seed = float(gain_db), floor, seed
        self.silence_jaw = silence_jaw
        self._epoch_rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.length

    def _padded(self, clip: Clip, rng) -> tuple[np.ndarray, np.ndarray]:
        feats, coeffs = clip.features, clip.coeffs
        if self.silence_pad > 0 and self.silence_feature is not None:
            before, after = rng.integers(0, self.silence_pad + 1, size=2)
            sil = np.broadcast_to(self.silence_feature, (1, feats.shape[1]))
            feats = np.concatenate([np.repeat(sil, before, 0), feats, np.repeat(sil, after, 0)])
            jaw = rest_jaw(coeffs) if self.silence_jaw is None else self.silence_jaw
            first, last = rest_pose(coeffs[:1], jaw), rest_pose(coeffs[-1:], jaw)
            coeffs = np.concatenate([np.repeat(first, before, 0), coeffs, np.repeat(last, after, 0)])
        return feats, coeffs

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, index, int(self._epoch_rng.integers(1 << 31))))
        clip = self.clips[int(rng.integers(len(self.clips)))]
        feats, coeffs = self._padded(clip, rng)
        t = feats.shape[0]
        start = int(rng.integers(0, max(1, t - self.crop + 1)))
        f, c = feats[start : start + self.crop], coeffs[start : start + self.crop]
        if self.gain_db > 0 and self.floor is not None:
            f = np.maximum(f + rng.uniform(-self.gain_db, self.gain_db), self.floor)
        mask = np.zeros(self.crop, bool)
        mask[: f.shape[0]] = True
        pad = self.crop - f.shape[0]
        return {
            "features": torch.from_numpy(np.pad(f, ((0, pad), (0, 0))).astype(np.float32)),
            "coeffs": torch.from_numpy(np.pad(c, ((0, pad), (0, 0))).astype(np.float32)),
            "mask": torch.from_numpy(mask),
        }


class ClipDataset(Dataset):
    """Whole clips (validation): items as :class:`CropDataset` plus ``"name"``; use ``batch_size=1``."""

    def __init__(self, clips: list[Clip]):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        return {
            "features": torch.from_numpy(clip.features),
            "coeffs": torch.from_numpy(clip.coeffs),
            "mask": torch.ones(clip.features.shape[0], dtype=torch.bool),
            "name": clip.name,
        }


class Audio2FlameDataModule(L.LightningDataModule):
    """Pairs of speech and tracked coefficients for Audio2Flame training.

    Args:
        media: glob patterns of media files with sound (e.g. ``["../shared/data/video/grid/*.mpg"]``).
        tracked_dir: folder of tracked HeadCoeffs, ``<media stem>.npz`` / ``.safetensors``.
        val_names: clip stems held out for validation (never trained on).
        exclude_names: clip stems ignored entirely.
        features: feature config for :func:`flap.audio.features.build_features` (default log-mel).
        crop_frames: training crop length (frames).
        batch_size: training batch size.
        samples_per_epoch: training crops per epoch.
        silence_pad: up to this many frames of digital silence added at each clip end (0 = off).
        rest_quantile: percentile of the training jaw opening used as the closed jaw of silence targets.
        center_pose: train (and validate) on each clip's head motion around its mean orientation
            (:func:`center_pose`) instead of the raw camera-relative pose.
        gain_db: random gain ± dB (log-mel only; 0 = off).
        synthetic: if > 0, ignore ``media``/``tracked_dir`` and use that many
            :func:`flap.audio.synthetic.synthetic_pairs` (tests, smoke runs).
        num_workers: DataLoader workers.
        seed: sampling seed.

    Raises:
        FileNotFoundError: (in ``setup``) no clip found; ValueError: a ``val_names`` entry matches no clip.
    """

    def __init__(
        self,
        media: list[str] | None = None,
        tracked_dir: str | None = None,
        val_names=(),
        exclude_names=(),
        features: dict | None = None,
        crop_frames: int = 50,
        batch_size: int = 8,
        samples_per_epoch: int = 256,
        silence_pad: int = 25,
        gain_db: float = 6.0,
        synthetic: int = 0,
        rest_quantile: float = 5.0,
        center_pose: bool = False,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        self.media, self.tracked_dir = list(media or []), tracked_dir
        self.val_names, self.exclude_names = list(val_names or []), list(exclude_names or [])
        self.feature_config = dict(features or {"type": "logmel"})
        self.crop_frames, self.batch_size, self.samples_per_epoch = crop_frames, batch_size, samples_per_epoch
        self.silence_pad, self.gain_db, self.synthetic = silence_pad, gain_db, synthetic
        self.num_workers, self.seed, self.rest_quantile = num_workers, seed, float(rest_quantile)
        self.center_pose = bool(center_pose)
        self.train_clips: list[Clip] = []
        self.val_clips: list[Clip] = []
        self.extractor = None

    # ------------------------------------------------------------------ loading
    def _raw_pairs(self):
        if self.synthetic:
            for name, audio, coeffs in synthetic_pairs(int(self.synthetic), seed=self.seed):
                yield name, audio, coeffs
            return
        if self.tracked_dir is None:
            raise FileNotFoundError(
                "Audio2FlameDataModule: set tracked_dir (tracked HeadCoeffs) or synthetic > 0"
            )
        for name, media, coeffs_path in find_clips(self.media, self.tracked_dir):
            coeffs = HeadCoeffs.load(coeffs_path)
            yield name, load_audio(media, fps=coeffs.fps), coeffs

    def setup(self, stage: str | None = None) -> None:
        if self.train_clips:
            return
        self.extractor = build_features(self.feature_config)
        clips = []
        for name, audio, coeffs in self._raw_pairs():
            if name in self.exclude_names:
                continue
            if self.center_pose:
                coeffs = center_pose(coeffs)
            feats = extract_features(
                audio, self.extractor, SAMPLE_RATE, coeffs.fps, num_frames=coeffs.num_frames
            )
            clips.append(Clip(name, feats, coeffs.numpy().astype(np.float32), coeffs.fps))
        names = {c.name for c in clips}
        missing = [n for n in self.val_names if n not in names]
        if missing:
            raise ValueError(
                f"Audio2FlameDataModule: val_names {missing} match no clip (clips: {sorted(names)})"
            )
        self.train_clips = [c for c in clips if c.name not in self.val_names]
        self.val_clips = [c for c in clips if c.name in self.val_names]
        if not self.train_clips:
            raise ValueError("Audio2FlameDataModule: every clip is held out, nothing left to train on")

    @property
    def feature_dim(self) -> int:
        return self.extractor.dim

    @property
    def fps(self) -> float:
        return self.train_clips[0].fps

    def silence_feature(self) -> np.ndarray:
        """``(D,)`` feature of digital silence for this extractor."""
        return extract_features(np.zeros(SAMPLE_RATE, np.float32), self.extractor, fps=self.fps)[5]

    def normalization_stats(self) -> dict[str, np.ndarray]:
        """Mean/std over all training frames (``feature_mean/std (D,)``, ``coeff_mean/std (120,)``) and
        ``pad_feature (D,)``, the feature of digital silence (:meth:`silence_feature`)."""
        feats = np.concatenate([c.features for c in self.train_clips])
        coeffs = np.concatenate([c.coeffs for c in self.train_clips])
        return {
            "pad_feature": self.silence_feature(),
            "feature_mean": feats.mean(0),
            "feature_std": feats.std(0),
            "coeff_mean": coeffs.mean(0),
            "coeff_std": coeffs.std(0),
        }

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        is_logmel = self.extractor.kind == "logmel"
        ds = CropDataset(
            self.train_clips,
            self.crop_frames,
            self.samples_per_epoch,
            self.silence_feature(),
            self.silence_pad,
            self.gain_db if is_logmel else 0.0,
            getattr(self.extractor, "floor_db", None),
            self.seed,
            rest_jaw(np.concatenate([c.coeffs for c in self.train_clips]), self.rest_quantile),
        )
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        """Held-out clips (whole); the training clips if nothing is held out."""
        return DataLoader(ClipDataset(self.val_clips or self.train_clips), batch_size=1, num_workers=0)
