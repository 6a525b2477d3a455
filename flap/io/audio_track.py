"""Reading the audio track of a media file with PyAV (any container/codec FFmpeg reads).

For speech features prefer ``flap.audio`` (the audio package); this reader exists so that video
tools (tracking, dataset preparation, muxing) can get the sound of a video without extra
dependencies.
"""

from __future__ import annotations

import os

import av
import numpy as np

from flap.io.formats import SAMPLE_RATE
from flap.io.video import VideoReadError, _check_readable

__all__ = ["read_audio_track"]


def read_audio_track(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio stream of ``path`` to mono float32 at ``sample_rate`` Hz.

    Channels are averaged; resampling is done by FFmpeg (swresample).

    Returns:
        ``float32 (N,)`` samples in [-1, 1].

    Raises:
        VideoReadError: missing, empty or corrupt file, or no audio stream (message names the file).
    """
    path = _check_readable(path)
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError, OSError) as exc:
        raise VideoReadError(f"cannot read {path} as a media file (corrupt or unsupported): {exc}") from exc
    try:
        if not container.streams.audio:
            raise VideoReadError(f"no audio stream in {path} (expected a file with sound)")
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=int(sample_rate))
        chunks = []
        try:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray()[0])
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray()[0])
        except av.FFmpegError as exc:
            raise VideoReadError(f"corrupt audio in {path}: {exc}") from exc
    finally:
        container.close()
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.clip(np.concatenate(chunks), -1.0, 1.0).astype(np.float32)
