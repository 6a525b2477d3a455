"""Load any audio (or the audio track of a video) as float32 mono at a fixed sample rate.

Decoding tries libsndfile (wav, flac, ogg, mp3 through `soundfile`, resampled with soxr, the
resampler librosa uses) first and :func:`flap.io.audio_track.read_audio_track` (PyAV/FFmpeg: m4a, aac, mp2,
the audio stream of mp4/mpg/mkv ...) second. Channels are averaged to mono.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from flap.errors import InputError, InputNotFoundError
from flap.flame.coeffs import DEFAULT_FPS
from flap.io.audio_track import read_audio_track
from flap.io.formats import SAMPLE_RATE
from flap.io.video import VideoReadError

__all__ = ["AudioError", "load_audio", "num_frames_for", "SAMPLE_RATE"]


class AudioError(InputError):
    """A file exists but does not hold usable audio (empty, corrupt, no audio stream, too short)."""


def num_frames_for(num_samples: int, sr: int, fps: float = DEFAULT_FPS) -> int:
    """Number of video frames covering ``num_samples`` samples at ``sr`` Hz: ``round(duration_s * fps)``.

    This is the single place FLAP turns an audio length into a frame count (docs/DESIGN.md conventions).
    """
    return int(round(num_samples * float(fps) / float(sr)))


def _decode_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (N, C)
    return data.mean(axis=1), int(rate)


def _decode_pyav(path: Path, sr: int) -> tuple[np.ndarray, int]:
    try:
        return read_audio_track(path, sample_rate=sr), sr
    except VideoReadError as exc:
        raise AudioError(f"load_audio: {path}: not audio: {exc}") from exc


def _check_wav_length(path: Path) -> None:
    """Refuse a RIFF/WAVE file whose ``data`` chunk claims more bytes than the file holds.

    libsndfile silently reads what is there, so a truncated recording would give a shorter video.
    Streaming writers put 0 or 0xFFFFFFFF in the size field; those are not checked.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        offset = 12
        while offset + 8 <= size:
            fh.seek(offset)
            chunk = fh.read(8)
            if len(chunk) < 8:
                return
            declared = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                available = size - offset - 8
                if declared not in (0, 0xFFFFFFFF) and declared > available:
                    raise AudioError(
                        f"load_audio: {path}: truncated WAV file: its header declares {declared} bytes of "
                        f"samples, the file holds {available} ({100 * available / declared:.0f}%); re-encode "
                        "it (e.g. ffmpeg -i in.wav out.wav) to use the part that is there"
                    )
                return
            offset += 8 + declared + (declared & 1)


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE, *, fps: float = DEFAULT_FPS) -> np.ndarray:
    """Read an audio file, or the first audio stream of a video, as float32 mono at ``sr`` Hz.

    Args:
        path: any format libsndfile or FFmpeg (PyAV) decodes: wav, flac, mp3, m4a, mp4, mpg ...
            Any sample rate and channel count (channels are averaged).
        sr: output sample rate in Hz (FLAP uses 16 kHz).
        fps: video frame rate; audio shorter than one frame (``1 / fps`` seconds) is refused.

    Returns:
        ``(N,)`` float32 array, samples in [-1, 1] for integer sources, ``N = ceil(N_src * sr / sr_src)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        AudioError (a ValueError): ``path`` is a directory, is 0 bytes, cannot be decoded as audio
            (corrupt file, an image renamed ``.wav`` ...), is a WAV whose header declares more samples
            than the file holds (truncated), has no audio stream, contains NaN/inf, or is shorter than
            one video frame. Every message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"load_audio: no such file: {path}")
    if not path.is_file():
        raise AudioError(f"load_audio: {path}: expected an audio or video file, found a directory")
    if path.stat().st_size == 0:
        raise AudioError(f"load_audio: {path}: file is empty (0 bytes), expected audio")
    if sr <= 0:
        raise ValueError(f"load_audio: sample rate must be positive, got {sr}")

    _check_wav_length(path)
    try:
        audio, rate = _decode_soundfile(path)
    except Exception:  # noqa: BLE001 - libsndfile cannot read it: let FFmpeg try (and explain)
        audio, rate = _decode_pyav(path, sr)
    if not np.isfinite(audio).all():
        raise AudioError(f"load_audio: {path}: audio contains NaN or inf samples")
    duration = audio.shape[0] / rate
    if duration * fps < 1.0 - 1e-6:
        raise AudioError(
            f"load_audio: {path}: audio is {audio.shape[0]} samples ({duration:.4f} s) long, "
            f"shorter than one video frame ({1.0 / fps:.4f} s at {fps:g} fps)"
        )
    if rate != sr:
        import soxr

        n_out = math.ceil(audio.shape[0] * sr / rate)
        audio = soxr.resample(audio, rate, sr, quality="HQ")
        audio = audio[:n_out] if audio.shape[0] >= n_out else np.pad(audio, (0, n_out - audio.shape[0]))
    return np.ascontiguousarray(audio, dtype=np.float32)


def fit_audio(audio: np.ndarray, seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Trim or zero-pad ``float32 (N,)`` audio to ``round(seconds * sample_rate)`` samples."""
    n = int(round(seconds * sample_rate))
    audio = np.asarray(audio, dtype=np.float32)[:n]
    return np.pad(audio, (0, n - len(audio))) if len(audio) < n else audio
