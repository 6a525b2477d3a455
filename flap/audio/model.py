"""`Audio2Flame`: speech features → 120 FLAME coefficients per frame (paper Sec. 4.4, after AudioDVP).

Architecture (small, CPU-friendly):

1. normalise features with the training statistics, give each frame its ±``window_radius``
   neighbours (AudioDVP window, Nw = 7; beyond the ends the feature of zero audio, i.e. the audio
   is zero-padded) and encode the flattened window with an MLP;
2. ``len(dilations)`` residual dilated temporal convolutions over the frame sequence (smooth motion
   and longer context for head pose);
3. a linear head to the 120 normalised coefficients, de-normalised with the stored mean/std of the
   training coefficients (zero-initialised, so an untrained model outputs the training mean).

Long inputs run in chunks with ``receptive_field`` frames of context on each side whose outputs are
discarded (overlap-discard): memory is bounded by the chunk and the result equals a single pass.
Weights, normalisation statistics (buffers) and the feature configuration are saved together with
``save_pretrained`` (safetensors + ``config.json``) and restored by ``from_pretrained``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from flap.audio.features import _segment, build_features, feature_chunks, frame_windows
from flap.audio.io import SAMPLE_RATE, load_audio, num_frames_for
from flap.audio.motion import add_head_motion, speech_activity
from flap.flame.coeffs import COND_DIM, SLICES, HeadCoeffs
from flap.flame.rotations import matrix_to_rotation_6d, rotation_6d_to_matrix

__all__ = ["Audio2Flame"]


class TemporalBlock(nn.Module):
    """Residual block: LayerNorm → dilated Conv1d over time (edge-replicate padding) → GELU → 1×1 Conv1d → dropout.

    ``(B, T, C) -> (B, T, C)``. Replicate padding keeps a constant input (e.g. silence) constant up to the ends.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        pad = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(
            channels, channels, kernel_size, dilation=dilation, padding=pad, padding_mode="replicate"
        )
        self.proj = nn.Conv1d(channels, channels, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x).transpose(1, 2)
        h = self.proj(nn.functional.gelu(self.conv(h))).transpose(1, 2)
        return x + self.drop(h)


class Audio2Flame(ModelMixin, ConfigMixin):
    """Regress per-frame FLAME coefficients (:class:`~flap.flame.coeffs.HeadCoeffs` layout) from audio features.

    Args:
        feature_dim: per-frame feature size ``D`` (80 for the default log-mel).
        window_radius: neighbours on each side in the input window (3 → Nw = 7, AudioDVP).
        hidden_dim: width of the frame encoder and temporal blocks.
        kernel_size, dilations: temporal convolutions (one residual block per dilation).
        dropout: dropout inside the blocks (training only).
        out_dim: number of coefficients (120).
        fps: frame rate the model was trained at (default for :meth:`predict`).
        features: feature-extractor config for :func:`flap.audio.features.build_features`
            (``{"type": "logmel", ...}`` or ``{"type": "wav2vec2", "model_path": ..., "layers": ...}``).
        pose_gain: ``(3,)`` gains on the predicted head rotation (``global_rot`` axis-angle components,
            about pitch / yaw / roll) around each prediction's own temporal mean; ``None`` = 1. A
            regressor predicts the typical motion for a sound and moves less than real speakers; the
            gain, measured on the training clips by :mod:`flap.audio.calibrate`, restores their
            spread without touching the jaw or the mean head orientation.
        head_motion: ``{"std_deg": (3,), "smooth_frames": (3,)}`` or ``None``: the sampled head motion
            added after the gain (:mod:`flap.audio.motion`, fitted by :mod:`flap.audio.calibrate` on the
            training clips): fills each prediction's pitch / yaw / roll spread up to ``std_deg`` with
            smooth random motion (widths in frames at ``fps``). ``predict(sample_motion=False)`` skips it.

    Buffers ``feature_mean``/``feature_std`` ``(D,)`` and ``coeff_mean``/``coeff_std`` ``(120,)`` hold the
    normalisation statistics, ``pad_feature`` ``(D,)`` the feature of zero audio used beyond the ends
    (all set by :meth:`set_normalization` before training).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        feature_dim: int = 80,
        window_radius: int = 3,
        hidden_dim: int = 128,
        kernel_size: int = 3,
        dilations: tuple[int, ...] = (1, 2, 4, 8),
        dropout: float = 0.1,
        out_dim: int = COND_DIM,
        fps: float = 25.0,
        features: dict | None = None,
        pose_gain: tuple[float, float, float] | None = None,
        head_motion: dict | None = None,
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"Audio2Flame: kernel_size must be odd, got {kernel_size}")
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_std", torch.ones(feature_dim))
        neutral = HeadCoeffs.neutral(1).data[0] if out_dim == COND_DIM else torch.zeros(out_dim)
        self.register_buffer("coeff_mean", neutral.clone())  # untrained: neutral head, eyes ahead
        self.register_buffer("coeff_std", torch.ones(out_dim))
        self.register_buffer("pad_feature", torch.zeros(feature_dim))  # raw feature of zero audio
        nw = 2 * window_radius + 1
        self.frame_encoder = nn.Sequential(
            nn.Linear(nw * feature_dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
        )
        self.blocks = nn.ModuleList(TemporalBlock(hidden_dim, kernel_size, d, dropout) for d in dilations)
        self.norm_out = nn.LayerNorm(hidden_dim)
        self.head = nn.Linear(hidden_dim, out_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self._extractor = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Load a folder written by :meth:`save_pretrained` (local files only, never downloaded).

        Raises:
            FileNotFoundError: no ``config.json`` in the folder. OSError: weights missing or unreadable.
        """
        from pathlib import Path

        if not (Path(pretrained_model_name_or_path) / "config.json").is_file():
            raise FileNotFoundError(
                f"Audio2Flame.from_pretrained: {pretrained_model_name_or_path}: expected a folder with config.json "
                "and diffusion_pytorch_model.safetensors (written by save_pretrained)"
            )
        kwargs.setdefault("local_files_only", True)
        kwargs.setdefault("low_cpu_mem_usage", False)  # small model; avoids the `accelerate` warning
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ------------------------------------------------------------------ statistics
    @torch.no_grad()
    def set_normalization(
        self, feature_mean, feature_std, coeff_mean, coeff_std, pad_feature=None, min_std: float = 1e-4
    ) -> None:
        """Store training statistics: features ``(D,)`` and coefficients ``(120,)``; std clamped to ``min_std``.

        ``pad_feature`` ``(D,)``: the raw feature of digital silence, used for window frames beyond
        the ends (as if the audio were zero-padded); default ``feature_mean``.
        """
        pad_feature = feature_mean if pad_feature is None else pad_feature
        for name, value in (
            ("feature_mean", feature_mean),
            ("feature_std", feature_std),
            ("coeff_mean", coeff_mean),
            ("coeff_std", coeff_std),
            ("pad_feature", pad_feature),
        ):
            buf = getattr(self, name)
            value = torch.as_tensor(
                np.asarray(value, dtype=np.float32) if not torch.is_tensor(value) else value
            )
            if value.shape != buf.shape:
                raise ValueError(
                    f"Audio2Flame.set_normalization: {name} must have shape {tuple(buf.shape)}, got {tuple(value.shape)}"
                )
            if name.endswith("std"):
                value = value.clamp_min(min_std)
            buf.copy_(value.to(buf))

    @property
    def receptive_field(self) -> int:
        """Frames on each side that can influence an output frame."""
        k = self.config.kernel_size
        return self.config.window_radius + sum(d * (k - 1) // 2 for d in self.config.dilations)

    # ------------------------------------------------------------------ forward
    def forward(self, features: torch.Tensor, normalized_output: bool = False) -> torch.Tensor:
        """``features (B, T, D)`` raw (un-normalised) → coefficients ``(B, T, 120)``.

        With ``normalized_output=True`` the result is in normalised units (``(c - coeff_mean) / coeff_std``),
        which is what the training losses use.
        """
        if features.ndim != 3 or features.shape[-1] != self.config.feature_dim:
            raise ValueError(
                f"Audio2Flame: expected features (B, T, {self.config.feature_dim}), got {tuple(features.shape)}"
            )
        x = (features.to(self.feature_mean) - self.feature_mean) / self.feature_std
        pad = (self.pad_feature - self.feature_mean) / self.feature_std
        x = frame_windows(x, self.config.window_radius, pad).flatten(-2)  # (B, T, Nw*D)
        h = self.frame_encoder(x)
        for block in self.blocks:
            h = block(h)
        y = self.head(self.norm_out(h))
        return y if normalized_output else self.denormalize(y)

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        """Normalised ``(..., 120)`` → coefficient units."""
        return y * self.coeff_std + self.coeff_mean

    def normalize(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Coefficients ``(..., 120)`` → normalised units."""
        return (coeffs - self.coeff_mean) / self.coeff_std

    # ------------------------------------------------------------------ inference
    @property
    def feature_extractor(self):
        """The extractor described by ``config.features`` (built once, log-mel if unset)."""
        if self._extractor is None:
            self._extractor = build_features(self.config.features)
        return self._extractor

    @torch.no_grad()
    def predict_features(
        self, features: np.ndarray | torch.Tensor, fps: float | None = None, chunk_frames: int = 500
    ) -> HeadCoeffs:
        """Coefficients for precomputed features ``(T, D)``, in chunks of ``chunk_frames`` (overlap-discard).

        The regression only: the sampled head motion of :meth:`predict` needs the audio.
        """
        feats = torch.as_tensor(features)
        t = feats.shape[0]
        out = torch.empty(t, self.config.out_dim, dtype=torch.float32)
        for g0, g1, f0, f1 in feature_chunks(t, chunk_frames, self.receptive_field):
            y = self(feats[g0:g1].to(self.device)[None])[0]
            out[f0:f1] = y[f0 - g0 : f1 - g0].float().cpu()
        return self._to_coeffs(self._apply_pose_gain(out), fps or self.config.fps)

    @torch.no_grad()
    def predict(
        self,
        audio: np.ndarray,
        sr: int = SAMPLE_RATE,
        fps: float | None = None,
        chunk_seconds: float = 30.0,
        num_frames: int | None = None,
        sample_motion: bool = True,
        seed: int = 0,
    ) -> HeadCoeffs:
        """Speech → :class:`HeadCoeffs` with ``T = round(len(audio) / sr * fps)`` frames (or ``num_frames``).

        Audio is processed in chunks of ``chunk_seconds`` with context on both sides (features and
        model), so peak memory does not grow with the length and there are no seams.

        Args:
            audio: ``(N,)`` float32 mono at ``sr`` Hz (:func:`flap.audio.load_audio`).
            fps: output frame rate (default: the training fps, ``config.fps``).
            sample_motion: add the sampled head motion of ``config.head_motion`` (if the model has one),
                scaled by the audio's speech activity (:mod:`flap.audio.motion`).
            seed: seed of that sample (the same seed and audio give the same coefficients).

        Raises:
            ValueError: audio not 1-D, shorter than half a frame, or wrong sample rate for the extractor.
        """
        audio = np.asarray(audio, dtype=np.float32)
        fps = float(fps or self.config.fps)
        if audio.ndim != 1:
            raise ValueError(f"Audio2Flame.predict: expected mono audio of shape (N,), got {audio.shape}")
        extractor = self.feature_extractor
        if getattr(extractor, "sr", sr) != sr:
            raise ValueError(f"Audio2Flame.predict: features expect {extractor.sr} Hz audio, got sr={sr}")
        t = num_frames_for(audio.shape[0], sr, fps) if num_frames is None else int(num_frames)
        if t < 1:
            raise ValueError(
                f"Audio2Flame.predict: {audio.shape[0]} samples at {sr} Hz is shorter than one frame at {fps:g} fps"
            )
        ctx_model = self.receptive_field
        ctx_feat = math.ceil(extractor.context_samples * fps / sr) + 1
        out = torch.empty(t, self.config.out_dim, dtype=torch.float32)
        for g0, g1, f0, f1 in feature_chunks(t, max(1, round(chunk_seconds * fps)), ctx_model):
            h0, h1 = max(0, g0 - ctx_feat), min(t, g1 + ctx_feat)
            feats = extractor(_segment(audio, h0, h1, sr, fps), h1 - h0, fps)[g0 - h0 : g1 - h0]
            y = self(torch.from_numpy(feats).to(self.device)[None])[0]
            out[f0:f1] = y[f0 - g0 : f1 - g0].float().cpu()
        coeffs = self._to_coeffs(self._apply_pose_gain(out), fps)
        motion = self.config.get("head_motion")
        if not sample_motion or not motion or self.config.out_dim != COND_DIM:
            return coeffs
        if not isinstance(motion, dict) or not {"std_deg", "smooth_frames"} <= set(motion):
            raise ValueError(f"Audio2Flame config head_motion: expected keys std_deg and smooth_frames, found {motion!r}")
        smooth = [s * fps / float(self.config.fps) for s in motion["smooth_frames"]]
        activity = speech_activity(audio, sr, fps, t)
        return add_head_motion(coeffs, motion["std_deg"], smooth, torch.Generator().manual_seed(int(seed)), activity)

    def predict_file(self, path, fps: float | None = None, **kwargs) -> HeadCoeffs:
        """:func:`flap.audio.load_audio` then :meth:`predict`."""
        fps = float(fps or self.config.fps)
        return self.predict(load_audio(path, fps=fps), fps=fps, **kwargs)

    def _apply_pose_gain(self, data: torch.Tensor) -> torch.Tensor:
        """Scale ``global_rot`` of a whole prediction ``(T, 120)`` around its temporal mean (``pose_gain``)."""
        gain = self.config.get("pose_gain")
        if gain is None or self.config.out_dim != COND_DIM:
            return data
        rot = data[:, SLICES["global_rot"]]
        mean = rot.mean(dim=0, keepdim=True)
        data[:, SLICES["global_rot"]] = mean + (rot - mean) * torch.as_tensor(gain, dtype=data.dtype)
        return data

    @staticmethod
    def _to_coeffs(data: torch.Tensor, fps: float) -> HeadCoeffs:
        """Make eye 6D rotations valid (orthonormalised) and eyelids non-negative, wrap as HeadCoeffs."""
        eyes = data[:, SLICES["eyes"]].reshape(-1, 2, 6)
        data[:, SLICES["eyes"]] = matrix_to_rotation_6d(rotation_6d_to_matrix(eyes)).reshape(-1, 12).to(data)
        data[:, SLICES["eyelids"]] = data[:, SLICES["eyelids"]].clamp(0.0, 1.0)
        return HeadCoeffs(data, fps)
