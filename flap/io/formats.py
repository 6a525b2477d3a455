"""Media conventions shared by every part of FLAP: the audio rate and the file suffixes it recognises."""

from __future__ import annotations

__all__ = ["COEFF_SUFFIXES", "IMAGE_SUFFIXES", "SAMPLE_RATE", "VIDEO_SUFFIXES"]

#: Audio sample rate in Hz of every speech signal inside FLAP (mono float32; Audio2Flame, Wav2Vec2,
#: SyncNet and the mp4 writer all use it).
SAMPLE_RATE = 16000

#: Video file suffixes (lower case) that folder listings and coefficient sources accept.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg")

#: Image file suffixes (lower case) accepted as one-frame sources.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

#: Suffixes of coefficient files (:meth:`flap.flame.HeadCoeffs.save`).
COEFF_SUFFIXES = (".npz", ".safetensors")
