"""Training a small ``AutoencoderKL`` for the CPU demo (the SD 1.5 VAE is not available offline).

FLAP runs its dual UNet in the latent space of a VAE (paper Sec. 4.1, Stable Diffusion's
``AutoencoderKL``). Its full-size weights cannot be downloaded here, so the demo checkpoint ships a
tiny ``AutoencoderKL`` trained on face-cropped frames of the real clips with the project's own
training entry point::

    python -m flap.train experiment=vae_tiny

This module holds the three pieces that command instantiates: :func:`tiny_vae_config` (the
architecture), :class:`FaceFrameDataModule` (face-cropped RGB frames, ``[-1, 1]``) and
:class:`VAELitModule` (reconstruction L1 + MSE + a small KL term; saves a diffusers folder).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch.utils.data import DataLoader, Dataset

from flap.data.crop import MediaPipeFaceDetector, crop_frames, detect_face_boxes, smooth_track
from flap.io import read_video

__all__ = [
    "tiny_vae_config",
    "build_vae",
    "load_face_frames",
    "load_prepared_frames",
    "FaceFrameDataset",
    "FaceFrameDataModule",
    "VAELitModule",
]


def tiny_vae_config(
    block_out_channels: Sequence[int] = (16, 32, 64, 64),
    latent_channels: int = 4,
    layers_per_block: int = 1,
    sample_size: int = 128,
    norm_num_groups: int = 8,
    mid_block_add_attention: bool = False,
) -> dict:
    """Config dict of a small ``AutoencoderKL``; the latent is ``1 / 2**(len(blocks)-1)`` of the image.

    The default (16, 32, 64, 64) gives a ``(4, 16, 16)`` latent for a ``128 x 128`` RGB image (the
    same 1/8 factor as Stable Diffusion's VAE). Without mid-block attention the VAE is fully
    convolutional, so it can be trained on random patches and applied to whole images.
    """
    n = len(block_out_channels)
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "up_block_types": ["UpDecoderBlock2D"] * n,
        "block_out_channels": list(block_out_channels),
        "layers_per_block": layers_per_block,
        "latent_channels": latent_channels,
        "norm_num_groups": norm_num_groups,
        "sample_size": sample_size,
        "mid_block_add_attention": mid_block_add_attention,
    }


def build_vae(config: dict | None = None, scaling_factor: float = 1.0) -> AutoencoderKL:
    """A randomly initialised ``AutoencoderKL``; ``config`` = keyword arguments of :func:`tiny_vae_config`."""
    return AutoencoderKL(**tiny_vae_config(**(config or {})), scaling_factor=scaling_factor)


def _expand(videos: str | Sequence[str]) -> list[Path]:
    patterns = [videos] if isinstance(videos, str | os.PathLike) else list(videos)
    paths: list[Path] = []
    for pattern in patterns:
        hits = sorted(glob.glob(os.path.expanduser(str(pattern)), recursive=True))
        if not hits:
            raise FileNotFoundError(f"FaceFrameDataModule: no video matches {pattern!r}")
        paths.extend(Path(h) for h in hits)
    return paths


def crop_face_video(frames: np.ndarray, size: int = 128, scale: float = 1.8, sigma: float = 3.0) -> np.ndarray:
    """Stable square face crop of every frame with :mod:`flap.data.crop` (MediaPipe, smoothed box).

    Args:
        frames: ``uint8 (T, H, W, 3)`` RGB.
        size: output side in pixels.
        scale: crop side / face-box side.
        sigma: temporal smoothing of the box, in frames.

    Returns:
        ``uint8 (T, size, size, 3)``.

    Raises:
        ValueError: no face in any frame.
    """
    detector = MediaPipeFaceDetector()
    try:
        track = detect_face_boxes(frames, detector, scale=scale)
    finally:
        detector.close()
    return crop_frames(frames, smooth_track(track, sigma=sigma), size)


def load_face_frames(
    videos: str | Sequence[str],
    crop: Callable[[np.ndarray], np.ndarray],
    frame_stride: int = 1,
    max_frames_per_video: int | None = None,
) -> np.ndarray:
    """Read videos, crop the face in every frame and stack the crops.

    Args:
        videos: paths or glob patterns (``**`` allowed).
        crop: ``uint8 (T, H, W, 3) -> uint8 (T, S, S, 3)`` face crop (e.g. :mod:`flap.data`'s).
        frame_stride: keep every ``frame_stride``-th frame.
        max_frames_per_video: cap per video after the stride (``None`` = all).

    Returns:
        ``uint8 (N, S, S, 3)`` RGB crops.

    Raises:
        FileNotFoundError: a pattern matches no file.
        flap.io.VideoReadError: an unreadable video.
    """
    out = []
    for path in _expand(videos):
        frames, _ = read_video(path)
        frames = frames[::frame_stride][:max_frames_per_video]
        out.append(np.asarray(crop(frames), dtype=np.uint8))
    return np.concatenate(out, axis=0)


def load_prepared_frames(root: str | os.PathLike, frame_stride: int = 1) -> list[np.ndarray]:
    """Face crops of a prepared dataset (``python -m flap.data.prepare``), one array per clip.

    The crops are the ones the UNets are trained on (same crop, size and 25 fps resampling).

    Args:
        root: prepared dataset folder (``root/clips/<id>/frames/*.png``, kept frames).
        frame_stride: keep every ``frame_stride``-th kept frame.

    Returns:
        ``[uint8 (K_i, S, S, 3)]`` RGB, clips sorted by id, frames in time order.

    Raises:
        FileNotFoundError: no prepared clip under ``root``.
    """
    import cv2

    from flap.data.datasets import load_prepared_clips

    out = []
    for clip in load_prepared_clips(root):
        paths = sorted((clip.folder / "frames").glob("*.png"))[::frame_stride]
        out.append(np.stack([cv2.imread(str(q), cv2.IMREAD_COLOR)[:, :, ::-1] for q in paths]))
    return out


def split_tail(clips: Sequence[np.ndarray], val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Hold out the last ``ceil(val_fraction * K)`` frames of every clip (at least one).

    Held-out frames are later in time than all training frames of their clip, so they are not
    near-duplicates of random neighbours (as with a random split of 25 fps frames).

    Returns:
        ``(train uint8 (N_t, S, S, 3), val uint8 (N_v, S, S, 3))``.
    """
    train, val = [], []
    for frames in clips:
        n_val = min(len(frames) - 1, max(1, int(np.ceil(len(frames) * val_fraction))))
        train.append(frames[:len(frames) - n_val])
        val.append(frames[len(frames) - n_val:])
    return np.concatenate(train), np.concatenate(val)


def to_model_range(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``uint8 (..., H, W, 3)`` RGB -> float ``(..., 3, H, W)`` in ``[-1, 1]``."""
    x = torch.as_tensor(np.asarray(frames)).float().div(127.5).sub(1.0)
    return x.movedim(-1, -3).contiguous()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float ``(..., 3, H, W)`` in ``[-1, 1]`` -> ``uint8 (..., H, W, 3)`` RGB (clipped)."""
    x = ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


class FaceFrameDataset(Dataset):
    """Face crops as ``(3, P, P)`` float tensors in ``[-1, 1]``, with random horizontal flips.

    Args:
        frames: ``uint8 (N, S, S, 3)`` RGB.
        flip: apply a horizontal flip with probability 0.5.
        patch_size: return a random ``P x P`` patch (``None`` = the whole ``S x S`` frame); cheap
            training of a fully convolutional VAE.
    """

    def __init__(self, frames: np.ndarray, flip: bool = True, patch_size: int | None = None):
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"FaceFrameDataset: expected frames (N, H, W, 3), got {frames.shape}")
        if patch_size is not None and not 0 < patch_size <= min(frames.shape[1:3]):
            raise ValueError(f"FaceFrameDataset: patch_size {patch_size} must be in 1..{min(frames.shape[1:3])}")
        self.frames = frames
        self.flip = flip
        self.patch_size = patch_size

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> torch.Tensor:
        frame = self.frames[i]
        if self.patch_size is not None:
            p = self.patch_size
            y0 = int(torch.randint(0, frame.shape[0] - p + 1, ()))
            x0 = int(torch.randint(0, frame.shape[1] - p + 1, ()))
            frame = frame[y0:y0 + p, x0:x0 + p]
        x = to_model_range(frame)
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x


class FaceFrameDataModule(L.LightningDataModule):
    """Face-cropped frames of real talking-head clips, for VAE training.

    Args:
        videos: paths or globs of the training clips (ignored with ``prepared_root``).
        crop: ``uint8 (T,H,W,3) -> uint8 (T,S,S,3)`` face crop (Hydra: a ``_partial_`` target).
        frame_stride, max_frames_per_video: sub-sampling (see :func:`load_face_frames`).
        val_fraction: share of frames held out for validation (whole frames, no flip).
        prepared_root: read the crops of a prepared dataset instead of cropping ``videos``
            (:func:`load_prepared_frames`).
        val_split: ``"random"`` (random frames) or ``"tail"`` (the last frames of every clip,
            :func:`split_tail`).
        val_max_frames: validate on at most this many held-out frames, evenly spaced over all of
            them (``None`` = all); a cheap periodic check, measure the final figure on all.
        patch_size: train on random ``P x P`` patches (``None`` = whole frames).
        batch_size, num_workers: loader settings.
        seed: split seed.
    """

    def __init__(
        self,
        videos: str | Sequence[str] | None = None,
        crop: Callable[[np.ndarray], np.ndarray] | None = None,
        frame_stride: int = 1,
        max_frames_per_video: int | None = None,
        val_fraction: float = 0.05,
        patch_size: int | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        prepared_root: str | None = None,
        val_split: str = "random",
        val_max_frames: int | None = None,
    ):
        super().__init__()
        if val_split not in ("random", "tail"):
            raise ValueError(f"FaceFrameDataModule: val_split must be 'random' or 'tail', got {val_split!r}")
        if prepared_root is None and (videos is None or crop is None):
            raise ValueError("FaceFrameDataModule: give videos + crop, or prepared_root")
        self.prepared_root, self.val_split, self.val_max_frames = prepared_root, val_split, val_max_frames
        self.patch_size = patch_size
        self.videos, self.crop = videos, crop
        self.frame_stride, self.max_frames_per_video = frame_stride, max_frames_per_video
        self.val_fraction, self.batch_size, self.num_workers, self.seed = val_fraction, batch_size, num_workers, seed
        self.train_set = self.val_set = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.prepared_root is not None:
            clips = load_prepared_frames(self.prepared_root, self.frame_stride)
        else:
            clips = [load_face_frames(v, self.crop, self.frame_stride, self.max_frames_per_video)
                     for v in _expand(self.videos)]
        if self.val_split == "tail":
            train, val = split_tail(clips, self.val_fraction)
        else:
            frames = np.concatenate(clips)
            n_val = max(1, int(round(len(frames) * self.val_fraction)))
            order = torch.randperm(len(frames), generator=torch.Generator().manual_seed(self.seed)).numpy()
            train, val = frames[order[n_val:]], frames[order[:n_val]]
        if self.val_max_frames is not None and len(val) > self.val_max_frames:
            val = val[np.linspace(0, len(val) - 1, self.val_max_frames).round().astype(int)]
        self.train_set = FaceFrameDataset(train, flip=True, patch_size=self.patch_size)
        self.val_set = FaceFrameDataset(val, flip=False)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True,
                          num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)


class VAELitModule(L.LightningModule):
    """Trains an ``AutoencoderKL``: ``L1 + mse_weight * MSE + kl_weight * KL`` on ``[-1, 1]`` images.

    The posterior is sampled during training and its mean used for validation. At the end of
    training ``python -m flap.train`` calls :meth:`export_pretrained`, which writes the VAE as a
    diffusers folder with ``scaling_factor`` set to ``1 / std`` of the validation latents (as in
    Stable Diffusion, so the latents the UNets see have unit variance).

    Decoder fine-tuning: with ``init_from`` (a trained VAE folder) and ``decoder_only=True`` the
    encoder is frozen, so the latents (and UNets trained on them) stay valid while the decoder
    improves; ``scaling_factor`` is then kept as loaded.

    Args:
        vae: a config dict for :func:`build_vae` (``None`` = :func:`tiny_vae_config`); ignored with
            ``init_from``.
        lr: AdamW learning rate.
        kl_weight, mse_weight: loss weights.
        init_from: local diffusers ``AutoencoderKL`` folder to start from.
        decoder_only: train ``post_quant_conv`` + decoder only.

    Raises:
        FileNotFoundError: ``init_from`` is not a diffusers VAE folder.
    """

    def __init__(
        self,
        vae: dict | None = None,
        lr: float = 1e-3,
        kl_weight: float = 1e-6,
        mse_weight: float = 1.0,
        init_from: str | None = None,
        decoder_only: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        if init_from is not None:
            if not (Path(init_from) / "config.json").is_file():
                raise FileNotFoundError(f"VAELitModule: init_from={init_from} is not a diffusers AutoencoderKL folder")
            self.vae = AutoencoderKL.from_pretrained(init_from, low_cpu_mem_usage=False)
        else:
            self.vae = build_vae(dict(vae) if vae is not None else None)
        if decoder_only:
            self.vae.encoder.requires_grad_(False)
            self.vae.quant_conv.requires_grad_(False)
        self.latent_std_sum = 0.0
        self.latent_std_n = 0

    def losses(self, x: torch.Tensor, sample: bool = True) -> dict[str, torch.Tensor]:
        """``x (B,3,H,W)`` in [-1,1] -> dict of ``loss``, ``l1``, ``mse``, ``kl`` (scalars)."""
        post = self.vae.encode(x).latent_dist
        z = post.sample() if sample else post.mode()
        rec = self.vae.decode(z).sample
        l1 = F.l1_loss(rec, x)
        mse = F.mse_loss(rec, x)
        kl = post.kl().mean() / z[0].numel()
        loss = l1 + self.hparams.mse_weight * mse + self.hparams.kl_weight * kl
        return {"loss": loss, "l1": l1, "mse": mse, "kl": kl, "z": z.detach()}

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        self.log_dict({f"train/{k}": v for k, v in out.items() if k != "z"}, prog_bar=True)
        return out["loss"]

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        out = self.losses(batch, sample=False)
        psnr = 10 * torch.log10(4.0 / out["mse"].clamp_min(1e-10))
        self.log_dict({"val/l1": out["l1"], "val/mse": out["mse"], "val/psnr": psnr}, prog_bar=True)
        self.latent_std_sum += float(out["z"].float().std()) * len(batch)
        self.latent_std_n += len(batch)

    def on_validation_epoch_start(self) -> None:
        self.latent_std_sum, self.latent_std_n = 0.0, 0

    def configure_optimizers(self):
        params = [p for p in self.vae.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=0.0)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the VAE's diffusers config (``scaling_factor`` included) in the Lightning checkpoint,
        so a snapshot exported from it (``tools/export_vae.py --keep-scaling``) keeps the latent scale
        of an ``init_from`` VAE that the UNets were trained on."""
        checkpoint["vae_config"] = dict(self.vae.config)

    def export_pretrained(self, save_dir: str | os.PathLike) -> Path:
        """Write the VAE (diffusers folder, safetensors) with its latent ``scaling_factor`` set.

        Called by ``python -m flap.train`` after fitting (its ``export_dir``).
        """
        if self.latent_std_n and not self.hparams.decoder_only:
            std = self.latent_std_sum / self.latent_std_n
            self.vae.register_to_config(scaling_factor=float(1.0 / max(std, 1e-6)))
        save_dir = Path(save_dir)
        self.vae.save_pretrained(save_dir, safe_serialization=True)
        return save_dir
