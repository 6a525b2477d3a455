"""flap.audio: speech → per-frame FLAME coefficients (paper Sec. 4.4).

- :func:`load_audio` — any audio/video file → float32 mono 16 kHz.
- :class:`LogMelFeatures`, :class:`Wav2Vec2Features`, :func:`extract_features`, :func:`frame_windows`
  — per-frame features aligned to the video frame rate.
- :class:`Audio2Flame` — the regressor (``flap.audio.model``); training lives in ``flap.audio.module``.
"""

from flap.audio.features import (
    LogMelFeatures,
    Wav2Vec2Features,
    build_features,
    extract_features,
    frame_windows,
)
from flap.audio.io import SAMPLE_RATE, AudioError, load_audio, num_frames_for

__all__ = [
    "SAMPLE_RATE",
    "AudioError",
    "load_audio",
    "num_frames_for",
    "LogMelFeatures",
    "Wav2Vec2Features",
    "build_features",
    "extract_features",
    "frame_windows",
]


def __getattr__(name):  # lazy: the model pulls in diffusers
    if name == "Audio2Flame":
        from flap.audio.model import Audio2Flame

        return Audio2Flame
    raise AttributeError(f"module 'flap.audio' has no attribute {name!r}")
