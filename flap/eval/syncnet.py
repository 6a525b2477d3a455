"""SyncNet lip-sync metrics SYNC-C (confidence) and SYNC-D (distance) with user-supplied weights.

SyncNet (Chung & Zisserman, "Out of time: automated lip sync in the wild", ACCV workshops 2016)
embeds 0.2 s of MFCC audio and 5 frames of the face into a shared space; the paper's Table 1
(Sec. 5.2) reports SYNC-C / SYNC-D as computed by the public ``syncnet_python`` evaluation. This
module re-implements that network with the published parameter names (``netcnnaud.*``,
``netfcaud.*``, ``netcnnlip.*``, ``netfclip.*``), so ``syncnet_v2.model`` loads unchanged, and its
scoring: per video frame, the distance between the 5-frame lip embedding and the audio embeddings
at offsets ``-vshift..vshift``; SYNC-D is the minimum over offsets of the mean distance, SYNC-C the
median minus that minimum.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.fft import dct
from torch import nn

from flap.io.formats import SAMPLE_RATE

__all__ = ["SyncNetModel", "mfcc", "syncnet_face_crop", "sync_scores", "SYNCNET_SAMPLE_RATE"]

SYNCNET_SAMPLE_RATE = SAMPLE_RATE
_MFCC_PER_SECOND = 100  # 10 ms hop
_LIP_FRAMES = 5  # frames per lip window (0.2 s at 25 fps)
_MFCC_WINDOW = 20  # MFCC frames per audio window (0.2 s)
_SIZE = 224


def _bn_relu_conv2d(cin, cout, k, stride=(1, 1), padding=(1, 1)):
    return [
        nn.Conv2d(cin, cout, kernel_size=k, stride=stride, padding=padding),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


def _bn_relu_conv3d(cin, cout, k, stride=(1, 1, 1), padding=(0, 0, 0)):
    return [
        nn.Conv3d(cin, cout, kernel_size=k, stride=stride, padding=padding),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    ]


def _fc(dim_out):
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim_out))


class SyncNetModel(nn.Module):
    """SyncNet audio and lip towers (syncnet_python layout; the Sequential indices match its weights).

    * ``forward_aud(mfcc)``: ``(N, 1, 13, 20)`` MFCC windows (0.2 s at 100 Hz) → ``(N, embed_dim)``.
    * ``forward_lip(frames)``: ``(N, 3, 5, 224, 224)`` face crops, float pixel values 0-255 in BGR
      channel order (as OpenCV reads them) → ``(N, embed_dim)``.
    """

    def __init__(self, embed_dim: int = 1024):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            *_bn_relu_conv2d(1, 64, (3, 3)),
            nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),
            *_bn_relu_conv2d(64, 192, (3, 3)),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),
            *_bn_relu_conv2d(192, 384, (3, 3)),
            *_bn_relu_conv2d(384, 256, (3, 3)),
            *_bn_relu_conv2d(256, 256, (3, 3)),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),
            *_bn_relu_conv2d(256, 512, (5, 4), padding=(0, 0)),
        )
        self.netfcaud = _fc(embed_dim)
        self.netfclip = _fc(embed_dim)
        self.netcnnlip = nn.Sequential(
            *_bn_relu_conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            *_bn_relu_conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_bn_relu_conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
            *_bn_relu_conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
            *_bn_relu_conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            *_bn_relu_conv3d(256, 512, (1, 6, 6)),
        )

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """Audio embedding: ``(N, 1, 13, 20)`` → ``(N, embed_dim)``."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """Lip embedding: ``(N, 3, 5, 224, 224)`` → ``(N, embed_dim)``."""
        return self.netfclip(self.netcnnlip(x).flatten(1))


# --------------------------------------------------------------------------- audio features
def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def _mel_filterbank(n_filters: int, nfft: int, sample_rate: int) -> np.ndarray:
    mel = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_filters + 2)
    bins = np.floor((nfft + 1) * _mel_to_hz(mel) / sample_rate).astype(int)
    fb = np.zeros((n_filters, nfft // 2 + 1))
    for j in range(n_filters):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        fb[j, lo:mid] = (np.arange(lo, mid) - lo) / max(mid - lo, 1)
        fb[j, mid:hi] = (hi - np.arange(mid, hi)) / max(hi - mid, 1)
    return fb


def mfcc(audio: np.ndarray, sample_rate: int = SYNCNET_SAMPLE_RATE, num_ceps: int = 13) -> np.ndarray:
    """MFCCs as SyncNet was trained on them (the ``python_speech_features.mfcc`` defaults).

    25 ms rectangular windows every 10 ms, pre-emphasis 0.97, 512-point FFT power spectrum, 26 mel
    filters, log, orthonormal DCT-II, 13 coefficients, cepstral lifter 22, ``c0`` replaced by the
    log frame energy.

    Args:
        audio: ``(N,)`` mono samples; SyncNet expects int16 scale (float audio in [-1, 1] is
            multiplied by 32768 by :func:`sync_scores`).
        sample_rate: Hz.

    Returns:
        ``(frames, 13)`` float64, 100 frames per second.
    """
    sig = np.asarray(audio, dtype=np.float64).reshape(-1)
    sig = np.append(sig[:1], sig[1:] - 0.97 * sig[:-1])
    frame_len, step, nfft = round(0.025 * sample_rate), round(0.01 * sample_rate), 512
    n = 1 if len(sig) <= frame_len else 1 + math.ceil((len(sig) - frame_len) / step)
    sig = np.pad(sig, (0, (n - 1) * step + frame_len - len(sig)))
    idx = np.arange(frame_len)[None, :] + step * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(sig[idx], nfft)) ** 2 / nfft
    eps = np.finfo(np.float64).eps
    energy = np.where(power.sum(1) == 0, eps, power.sum(1))
    feat = power @ _mel_filterbank(26, nfft, sample_rate).T
    feat = np.log(np.where(feat == 0, eps, feat))
    ceps = dct(feat, type=2, axis=1, norm="ortho")[:, :num_ceps]
    ceps *= 1 + 11.0 * np.sin(np.pi * np.arange(num_ceps) / 22)
    ceps[:, 0] = np.log(energy)
    return ceps


# --------------------------------------------------------------------------- video crops
def syncnet_face_crop(frame: np.ndarray, box, crop_scale: float = 0.4, size: int = _SIZE) -> np.ndarray:
    """Crop a face the way syncnet_python does before scoring, resized to ``size``².

    The square crop has half-width ``s (1 + crop_scale)`` around the box centre and extends from
    ``s`` above to ``s (1 + 2 crop_scale)`` below it, where ``s`` is half the larger box side;
    outside the image is filled with grey 110.

    Args:
        frame: ``(H, W, 3)`` uint8.
        box: ``(x0, y0, x1, y1)`` face box in pixels.

    Returns:
        ``(size, size, 3)`` uint8 crop (same channel order as ``frame``).
    """
    import cv2

    x0, y0, x1, y1 = (float(v) for v in box)
    s = max(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    pad = int(math.ceil(s * (1 + 2 * crop_scale))) + 1
    img = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), constant_values=110)
    cx, cy = cx + pad, cy + pad
    face = img[
        int(cy - s) : int(cy + s * (1 + 2 * crop_scale)),
        int(cx - s * (1 + crop_scale)) : int(cx + s * (1 + crop_scale)),
    ]
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_LINEAR)


# --------------------------------------------------------------------------- scoring
def _pairwise_offsets(lip: torch.Tensor, aud: torch.Tensor, vshift: int) -> torch.Tensor:
    """``(T, 2 vshift + 1)`` distances between lip[t] and aud[t + k - vshift] (zero-padded audio)."""
    win = 2 * vshift + 1
    padded = F.pad(aud, (0, 0, vshift, vshift))
    windows = padded.unfold(0, win, 1)[: lip.shape[0]]  # (T, D, win)
    return F.pairwise_distance(lip[:, :, None].expand_as(windows).transpose(1, 2), windows.transpose(1, 2))


@torch.no_grad()
def sync_scores(
    model: SyncNetModel,
    crops: np.ndarray,
    audio: np.ndarray,
    fps: float = 25.0,
    vshift: int = 15,
    batch_size: int = 20,
    rgb: bool = True,
) -> dict[str, float]:
    """SYNC-C, SYNC-D and the audio-video offset of a face video (syncnet_python's procedure).

    Args:
        model: a :class:`SyncNetModel` with weights loaded (its device and dtype are used).
        crops: ``(T, 224, 224, 3)`` uint8 face crops (see :func:`syncnet_face_crop`).
        audio: ``(N,)`` float mono speech at 16 kHz in [-1, 1].
        fps: video frame rate; SyncNet is defined at 25 fps (other rates are scored with the
            nearest audio window, a documented approximation).
        vshift: largest offset searched, in frames.
        rgb: ``crops`` are RGB (converted to the BGR order SyncNet was trained on).

    Returns:
        ``{"sync_c", "sync_d", "offset_frames", "num_windows"}``.

    Raises:
        ValueError: fewer than 5 frames or less than 0.2 s of audio.
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[1:] != (_SIZE, _SIZE, 3):
        raise ValueError(f"sync_scores: expected crops of shape (T, {_SIZE}, {_SIZE}, 3), got {crops.shape}")
    if rgb:
        crops = crops[..., ::-1]
    feats = mfcc(np.asarray(audio, np.float64) * 32768.0, SYNCNET_SAMPLE_RATE)  # (M, 13)
    per_frame = _MFCC_PER_SECOND / fps
    min_length = min(len(crops), int(len(audio) * fps // SYNCNET_SAMPLE_RATE))
    n_win = min(min_length - _LIP_FRAMES, int((feats.shape[0] - _MFCC_WINDOW) // per_frame) + 1)
    if n_win < 1:
        raise ValueError(
            f"sync_scores: need at least {_LIP_FRAMES + 1} frames and 0.2 s of audio, got {len(crops)} frames and "
            f"{len(audio) / SYNCNET_SAMPLE_RATE:.2f} s"
        )
    param = next(model.parameters())
    video = (
        torch.from_numpy(np.ascontiguousarray(crops)).to(param.device, param.dtype).permute(3, 0, 1, 2)
    )  # (3,T,H,W)
    cc = torch.from_numpy(feats.T.copy()).to(param.device, param.dtype)  # (13, M)
    lip_feats, aud_feats = [], []
    for start in range(0, n_win, batch_size):
        idx = range(start, min(n_win, start + batch_size))
        lip_feats.append(model.forward_lip(torch.stack([video[:, i : i + _LIP_FRAMES] for i in idx])))
        a0 = [int(round(i * per_frame)) for i in idx]
        aud_feats.append(model.forward_aud(torch.stack([cc[None, :, a : a + _MFCC_WINDOW] for a in a0])))
    dists = _pairwise_offsets(torch.cat(lip_feats).double(), torch.cat(aud_feats).double(), vshift)
    mean_dist = dists.mean(0)
    min_val, min_idx = torch.min(mean_dist, 0)
    return {
        "sync_c": float(torch.median(mean_dist) - min_val),
        "sync_d": float(min_val),
        "offset_frames": int(vshift - min_idx),
        "num_windows": int(n_win),
    }
