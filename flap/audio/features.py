"""Per-frame audio features aligned to the video frame rate (paper Sec. 4.4, AudioDVP windows).

Two extractors share one interface (``dim``, ``context_samples``, ``__call__(audio, num_frames, fps)``
and ``to_config()``):

- :class:`LogMelFeatures` (default, no weights): log-mel power in dB, averaged over each video
  frame's time span (area resampling, exact for any fps);
- :class:`Wav2Vec2Features`: hidden states of a local Wav2Vec2 model (all layers or a subset,
  concatenated), linearly interpolated to the frame rate as Hallo does.

:func:`extract_features` runs an extractor over audio of any length in chunks with context margins
(overlap-discard), so memory does not grow with the chunk count and chunk borders leave no seam.
:func:`frame_windows` gives every frame its ±radius neighbours (AudioDVP's Nw = 7), zero-padded.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from flap.audio.io import SAMPLE_RATE, num_frames_for
from flap.flame.coeffs import DEFAULT_FPS

__all__ = [
    "LogMelFeatures",
    "Wav2Vec2Features",
    "build_features",
    "extract_features",
    "frame_windows",
    "area_resample",
]

#: AudioDVP window: each frame sees ±3 neighbours (Nw = 7).
WINDOW_RADIUS = 3


def area_resample(
    values: np.ndarray, src_rate: float, num_out: int, fps: float, src_offset: float = 0.0
) -> np.ndarray:
    """Average a piecewise-constant sequence over video-frame intervals.

    ``values[j]`` (shape ``(N, D)``) holds on ``[src_offset + (j - 0.5)/src_rate, src_offset + (j + 0.5)/src_rate)``
    seconds; output frame ``t`` is its mean over ``[t/fps, (t+1)/fps)`` (times outside the source use
    the nearest value). Returns ``(num_out, D)`` float32.
    """
    n = values.shape[0]
    h = 1.0 / src_rate
    edges = src_offset + (np.arange(n + 1) - 0.5) * h  # (N+1,) interval edges in seconds
    cum = np.zeros((n + 1, values.shape[1]), np.float64)
    np.cumsum(values, axis=0, out=cum[1:])
    cum *= h
    bounds = np.arange(num_out + 1) / float(fps)
    pos = np.clip((bounds - edges[0]) / h, 0.0, float(n))  # fractional source index of each bound
    i0 = np.minimum(pos.astype(np.int64), n - 1)
    frac = (pos - i0)[:, None]
    cum_b = cum[i0] + frac * (cum[i0 + 1] - cum[i0])  # integral from edges[0] to each bound
    # extend with the edge values for bounds outside the source span
    before = np.clip(edges[0] - bounds, 0.0, None)[:, None]
    after = np.clip(bounds - edges[-1], 0.0, None)[:, None]
    cum_b = cum_b - before * values[0] + after * values[-1]
    return ((cum_b[1:] - cum_b[:-1]) * fps).astype(np.float32)


class LogMelFeatures:
    """Log-mel spectrogram per video frame.

    Args:
        n_mels: mel bands (feature dimension).
        n_fft, win_length, hop_length: STFT sizes in samples at ``sr`` (defaults 25 ms window, 10 ms hop).
        fmin, fmax: mel band range in Hz.
        floor_db: power floor in dB (``10 log10(max(P, 10**(floor_db/10)))``); digital silence maps to it.
        sr: expected sample rate in Hz.

    Call: ``(audio (N,) float32 at sr, num_frames, fps) -> (num_frames, n_mels)`` float32 dB, frame
    ``t`` = mean log-mel over ``[t/fps, (t+1)/fps)`` s of ``audio``.
    """

    kind = "logmel"

    def __init__(
        self,
        n_mels: int = 80,
        n_fft: int = 400,
        win_length: int | None = None,
        hop_length: int = 160,
        fmin: float = 20.0,
        fmax: float = 8000.0,
        floor_db: float = -80.0,
        sr: int = SAMPLE_RATE,
    ):
        import librosa

        self.n_mels, self.n_fft, self.hop_length = int(n_mels), int(n_fft), int(hop_length)
        self.win_length = int(win_length or n_fft)
        self.fmin, self.fmax, self.floor_db, self.sr = float(fmin), float(fmax), float(floor_db), int(sr)
        self._mel = librosa.filters.mel(
            sr=self.sr, n_fft=self.n_fft, n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax
        )
        self._mel = self._mel.astype(np.float32)

    @property
    def dim(self) -> int:
        return self.n_mels

    @property
    def context_samples(self) -> int:
        """Audio beyond a segment that can change its features (half an FFT window)."""
        return self.n_fft // 2 + self.hop_length

    def to_config(self) -> dict:
        return {
            "type": self.kind,
            "n_mels": self.n_mels,
            "n_fft": self.n_fft,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            "fmin": self.fmin,
            "fmax": self.fmax,
            "floor_db": self.floor_db,
            "sr": self.sr,
        }

    def __call__(self, audio: np.ndarray, num_frames: int, fps: float = DEFAULT_FPS) -> np.ndarray:
        import librosa

        audio = np.asarray(audio, dtype=np.float32)
        if audio.shape[0] < self.n_fft // 2 + 1:
            audio = np.pad(audio, (0, self.n_fft // 2 + 1 - audio.shape[0]))
        spec = librosa.stft(
            audio,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            center=True,
            pad_mode="constant",
        )
        power = np.abs(spec) ** 2  # (F, n)
        mel = self._mel @ power  # (n_mels, n)
        logmel = 10.0 * np.log10(np.maximum(mel, 10.0 ** (self.floor_db / 10.0)))
        return area_resample(logmel.T, self.sr / self.hop_length, int(num_frames), fps)


class Wav2Vec2Features:
    """Wav2Vec2 hidden states per video frame, from a local model folder (never downloaded).

    Args:
        model_path: folder written by ``Wav2Vec2Model.save_pretrained`` (``config.json`` + weights).
        layers: ``"all"`` (embedding output + every transformer layer, as Hallo) or a list of indices into
            ``hidden_states`` (0 = feature projection, ``i`` = transformer layer ``i``, negatives count
            from the end). Selected layers are concatenated: ``dim = len(layers) * hidden_size``.
        normalize: zero-mean / unit-variance input normalisation (``None`` = read ``do_normalize`` from
            ``preprocessor_config.json`` if present, else True).
        device: torch device for the model (default: CPU tensors' device of the loaded model).
        sr: expected sample rate (Hz); Wav2Vec2 is trained at 16 kHz.

    Call: ``(audio (N,), num_frames, fps) -> (num_frames, dim)`` float32; the ~50 Hz sequence is
    linearly interpolated to ``num_frames`` (``align_corners=False``).

    Raises:
        FileNotFoundError: ``model_path`` missing or without ``config.json``.
        ValueError: a layer index out of range.
    """

    kind = "wav2vec2"

    def __init__(
        self,
        model_path: str | os.PathLike,
        layers="all",
        normalize: bool | None = None,
        device=None,
        sr: int = SAMPLE_RATE,
    ):
        from transformers import Wav2Vec2Model

        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"Wav2Vec2Features: {path}: expected a local Wav2Vec2 folder with config.json"
            )
        self.model_path, self.sr = str(path), int(sr)
        self.model = Wav2Vec2Model.from_pretrained(str(path), local_files_only=True).eval()
        if device is not None:
            self.model.to(device)
        n_states = self.model.config.num_hidden_layers + 1
        if layers == "all" or layers is None:
            idx = list(range(n_states))
        else:
            idx = [int(i) for i in ([layers] if isinstance(layers, int) else layers)]
            for i in idx:
                if not -n_states <= i < n_states:
                    raise ValueError(
                        f"Wav2Vec2Features: {path}: layer {i} out of range, the model has {n_states} hidden states"
                    )
            idx = [i % n_states for i in idx]
        self.layers = idx
        if normalize is None:
            normalize = True
            pre = path / "preprocessor_config.json"
            if pre.is_file():
                import json

                normalize = bool(json.loads(pre.read_text()).get("do_normalize", True))
        self.normalize = bool(normalize)

    @property
    def dim(self) -> int:
        return len(self.layers) * self.model.config.hidden_size

    @property
    def context_samples(self) -> int:
        """Context used around each chunk (1 s): attention sees the whole chunk."""
        return self.sr

    def to_config(self) -> dict:
        return {
            "type": self.kind,
            "model_path": self.model_path,
            "layers": list(self.layers),
            "normalize": self.normalize,
            "sr": self.sr,
        }

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, num_frames: int, fps: float = DEFAULT_FPS) -> np.ndarray:
        x = np.asarray(audio, dtype=np.float32)
        min_len = 400  # one conv receptive field (25 ms at 16 kHz)
        if x.shape[0] < min_len:
            x = np.pad(x, (0, min_len - x.shape[0]))
        if self.normalize:
            x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        param = next(self.model.parameters())
        inp = torch.from_numpy(x)[None].to(device=param.device, dtype=param.dtype)
        out = self.model(inp, output_hidden_states=True)
        states = torch.cat([out.hidden_states[i] for i in self.layers], dim=-1)  # (1, n, dim)
        states = torch.nn.functional.interpolate(
            states.transpose(1, 2).float(), size=int(num_frames), mode="linear", align_corners=False
        )
        return states[0].T.contiguous().cpu().numpy()


def build_features(config: dict | None = None):
    """Make a feature extractor from a dict ``{"type": "logmel" | "wav2vec2", **kwargs}`` (default log-mel).

    Raises:
        ValueError: unknown ``type``.
    """
    config = dict(config or {})
    kind = config.pop("type", "logmel")
    if kind == LogMelFeatures.kind:
        return LogMelFeatures(**config)
    if kind == Wav2Vec2Features.kind:
        return Wav2Vec2Features(**config)
    raise ValueError(f"build_features: unknown feature type {kind!r}, expected 'logmel' or 'wav2vec2'")


def _segment(audio: np.ndarray, g0: int, g1: int, sr: int, fps: float) -> np.ndarray:
    """Samples of frames ``[g0, g1)``, zero-padded past the end of ``audio``."""
    s0 = int(round(g0 * sr / fps))
    s1 = int(round(g1 * sr / fps))
    seg = audio[s0 : min(s1, audio.shape[0])]
    if seg.shape[0] < s1 - s0:
        seg = np.pad(seg, (0, s1 - s0 - seg.shape[0]))
    return seg


def feature_chunks(num_frames: int, chunk_frames: int, context_frames: int):
    """Chunk plan for overlap-discard: yields ``(g0, g1, f0, f1)``.

    ``[g0, g1)`` is the span to compute (chunk plus up to ``context_frames`` on each side, clipped to
    the sequence) and ``[f0, f1)`` the frames to keep from it.
    """
    chunk_frames = max(1, int(chunk_frames))
    for f0 in range(0, num_frames, chunk_frames):
        f1 = min(f0 + chunk_frames, num_frames)
        yield max(0, f0 - context_frames), min(num_frames, f1 + context_frames), f0, f1


def extract_features(
    audio: np.ndarray,
    extractor=None,
    sr: int = SAMPLE_RATE,
    fps: float = DEFAULT_FPS,
    chunk_seconds: float = 30.0,
    num_frames: int | None = None,
) -> np.ndarray:
    """Features for every video frame of ``audio``: ``(T, extractor.dim)`` float32, ``T = round(N / sr * fps)``.

    Long audio is processed in chunks of ``chunk_seconds`` plus context margins (overlap-discard), so
    peak memory is set by the chunk, not by the audio length, and chunk borders leave no seam.

    Args:
        audio: ``(N,)`` float32 mono at ``sr`` Hz (see :func:`flap.audio.load_audio`).
        extractor: a :class:`LogMelFeatures` (default) or :class:`Wav2Vec2Features`.
        num_frames: override ``T`` (e.g. to match a video's frame count); audio is zero-padded/cut.

    Raises:
        ValueError: ``audio`` not 1-D, or ``T`` < 1 (shorter than half a frame).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"extract_features: expected mono audio of shape (N,), got {audio.shape}")
    extractor = extractor if extractor is not None else LogMelFeatures(sr=sr)
    t = num_frames_for(audio.shape[0], sr, fps) if num_frames is None else int(num_frames)
    if t < 1:
        raise ValueError(
            f"extract_features: audio of {audio.shape[0]} samples at {sr} Hz gives {t} frames at {fps:g} fps"
        )
    ctx = math.ceil(extractor.context_samples * fps / sr) + 1
    out = np.empty((t, extractor.dim), np.float32)
    for g0, g1, f0, f1 in feature_chunks(t, max(1, int(round(chunk_seconds * fps))), ctx):
        feats = extractor(_segment(audio, g0, g1, sr, fps), g1 - g0, fps)
        out[f0:f1] = feats[f0 - g0 : f1 - g0]
    return out


def frame_windows(
    x: torch.Tensor, radius: int = WINDOW_RADIUS, pad: torch.Tensor | None = None
) -> torch.Tensor:
    """Stack each frame with its ±``radius`` neighbours: ``(..., T, D) -> (..., T, 2*radius+1, D)``.

    Frames outside the sequence are zeros (AudioDVP window, Nw = 7 for radius 3), or ``pad`` ``(D,)``
    if given (e.g. the feature of zero audio, so that the ends look like zero-padded audio).
    """
    if radius == 0:
        return x.unsqueeze(-2)
    if pad is None:
        padded = torch.nn.functional.pad(x, (0, 0, radius, radius))  # pad time axis with zeros
    else:
        edge = pad.to(x).expand(*x.shape[:-2], radius, x.shape[-1])
        padded = torch.cat([edge, x, edge], dim=-2)
    return padded.unfold(-2, 2 * radius + 1, 1).transpose(-1, -2)
