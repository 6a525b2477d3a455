"""Video reading and writing with PyAV (H.264 yuv420p video, AAC audio, mp4).

* :func:`read_video` decodes a whole file to a ``uint8 (T, H, W, 3)`` RGB array plus its frame rate.
* :func:`iter_video` streams frames one at a time; its :class:`VideoInfo` (fps, size, frame count,
  audio presence) is available before the first frame.
* :func:`write_video` encodes frames (and optional mono float audio) to an mp4 through
  :func:`flap.io.atomic.atomic_output`, so a failure never leaves a partial file and an input path is
  never overwritten.

Every reading error is a :class:`VideoReadError` (a ``ValueError``) that names the file and says what
was expected and what was found (missing, not a file, corrupt, no video stream, zero frames).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from flap.errors import InputError
from flap.io.atomic import atomic_output
from flap.io.formats import IMAGE_SUFFIXES, SAMPLE_RATE

__all__ = [
    "VideoInfo",
    "VideoReadError",
    "VideoStream",
    "iter_video",
    "probe_video",
    "read_video",
    "write_video",
]

#: Image file suffixes that :func:`read_video` accepts as a one-frame video.


class VideoReadError(InputError):
    """A video (or image) could not be read; the message names the file and the problem."""


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of a video file.

    Attributes:
        path: the file.
        fps: average frame rate (frames per second).
        width, height: frame size in pixels.
        num_frames: frame count from the container (an estimate from duration × fps when the
            container does not store it; 0 if unknown).
        has_audio: the file has at least one audio stream.
        duration: seconds (``num_frames / fps`` when the container has no duration).
    """

    path: Path
    fps: float
    width: int
    height: int
    num_frames: int
    has_audio: bool
    duration: float

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return (self.height, self.width)


def _check_readable(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise VideoReadError(f"video file not found: {path}")
    if not path.is_file():
        raise VideoReadError(f"expected a video file, found a directory or special file: {path}")
    if path.stat().st_size == 0:
        raise VideoReadError(f"video file is empty (0 bytes): {path}")
    return path


def _open(path: Path):
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError, OSError) as exc:
        raise VideoReadError(
            f"cannot read {path} as a video (corrupt or not a video/image file): {exc}"
        ) from exc
    if not container.streams.video:
        container.close()
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoReadError(f"no video stream in {path} (found stream types: {', '.join(kinds)})")
    return container


def _info(path: Path, container) -> VideoInfo:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if not math.isfinite(fps) or fps <= 0:
        fps = 25.0 if path.suffix.lower() in IMAGE_SUFFIXES else 0.0
    if fps <= 0:
        raise VideoReadError(f"cannot determine the frame rate of {path} (found {rate!r})")
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    num_frames = int(stream.frames or 0)
    if num_frames <= 0 and duration > 0:
        num_frames = int(round(duration * fps))
    if duration <= 0 and num_frames > 0:
        duration = num_frames / fps
    cc = stream.codec_context
    return VideoInfo(
        path=path,
        fps=fps,
        width=int(cc.width),
        height=int(cc.height),
        num_frames=num_frames,
        has_audio=bool(container.streams.audio),
        duration=duration,
    )


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read the metadata of a video without decoding it.

    Raises:
        VideoReadError: missing, empty, corrupt or non-video file (message names the file).
    """
    path = _check_readable(path)
    container = _open(path)
    try:
        return _info(path, container)
    finally:
        container.close()


class VideoStream:
    """Iterable over the RGB frames of a video; ``info`` holds its :class:`VideoInfo`.

    Each item is a ``uint8 (H, W, 3)`` RGB array. Use as an iterator or a context manager (closes
    the file). Created by :func:`iter_video`.

    Raises (while iterating):
        VideoReadError: the file is corrupt (decoding fails) or has no decodable frame.
    """

    def __init__(self, path: str | os.PathLike, max_frames: int | None = None):
        self.path = _check_readable(path)
        self._container = _open(self.path)
        self.info = _info(self.path, self._container)
        self.max_frames = max_frames
        self._gen = self._frames()

    def _frames(self) -> Iterator[np.ndarray]:
        count = 0
        try:
            stream = self._container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in self._container.decode(stream):
                if self.max_frames is not None and count >= self.max_frames:
                    break
                yield frame.to_ndarray(format="rgb24")
                count += 1
        except av.FFmpegError as exc:
            raise VideoReadError(
                f"corrupt video {self.path}: decoding failed after {count} frames: {exc}"
            ) from exc
        finally:
            self._container.close()
        if count == 0 and (self.max_frames is None or self.max_frames > 0):
            raise VideoReadError(f"video {self.path} has zero decodable frames (expected at least one)")

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        return next(self._gen)

    def close(self) -> None:
        """Stop decoding and close the file."""
        self._gen.close()
        self._container.close()

    def __enter__(self) -> VideoStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # convenient metadata access
    @property
    def fps(self) -> float:
        return self.info.fps


def iter_video(path: str | os.PathLike, max_frames: int | None = None) -> VideoStream:
    """Stream the frames of a video (or a single image) as ``uint8 (H, W, 3)`` RGB arrays.

    Returns a :class:`VideoStream`: iterate it for frames; ``.info`` (:class:`VideoInfo`: fps,
    width, height, num_frames, has_audio, duration) is read when the file is opened.

    Raises:
        VideoReadError: missing, empty, corrupt or non-video file (message names the file).
    """
    return VideoStream(path, max_frames=max_frames)


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video (or a single image) to RGB frames.

    Args:
        path: any container/codec FFmpeg reads, or an image file (one frame, 25 fps).
        max_frames: stop after this many frames (``None`` = all).

    Returns:
        ``(frames, fps)``: ``uint8 (T, H, W, 3)`` RGB and the average frame rate (frames/s).

    Raises:
        VideoReadError: missing, empty (0 bytes), corrupt, non-video file, or zero frames.
    """
    with iter_video(path, max_frames=max_frames) as stream:
        frames = list(stream)
        fps = stream.info.fps
    if not frames:
        raise VideoReadError(f"video {path} has zero frames (max_frames={max_frames})")
    return np.stack(frames), fps


def checked_frames(frames, where: str) -> Iterator[np.ndarray]:
    """Yield ``uint8 (H, W, 3)`` RGB frames from an array ``(T, H, W, 3)`` or an iterable, checking each.

    Raises:
        ValueError: a frame of another dtype/shape, or a frame whose size differs from the first
            (the message starts with ``where`` and gives the frame index).
    """
    if isinstance(frames, np.ndarray) and (frames.ndim != 4 or frames.shape[-1] != 3):
        raise ValueError(f"{where}: expected frames of shape (T, H, W, 3), got {frames.shape}")
    size = None
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(
                f"{where}: frame {i} must be uint8 (H, W, 3) RGB, got {frame.dtype} {frame.shape}"
            )
        if size is None:
            size = frame.shape[:2]
        elif frame.shape[:2] != size:
            raise ValueError(f"{where}: frame {i} has size {frame.shape[:2]}, expected {size}")
        yield frame


def _fps_fraction(fps: float) -> Fraction:
    fps = float(fps)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"write_video: fps must be a positive number, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def _mono_audio(audio) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise ValueError(f"write_video: audio must be mono float32 (N,), got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError("write_video: audio contains NaN or inf")
    return np.clip(audio, -1.0, 1.0)


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray] | np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    *,
    crf: int = 18,
    preset: str = "veryfast",
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Encode RGB frames (and optional mono audio) to an H.264 yuv420p + AAC mp4, atomically.

    The file is written to a temporary name in the destination folder and renamed when complete.
    Odd frame sizes are padded by one pixel (edge replicate) since yuv420p needs even sizes.

    Args:
        path: output ``.mp4`` path (parent folders are created).
        frames: ``uint8 (T, H, W, 3)`` array or an iterable of ``uint8 (H, W, 3)`` RGB frames (all
            the same size; floats in [0, 1] are not accepted).
        fps: frames per second (> 0).
        audio: optional ``float32 (N,)`` mono samples in [-1, 1] at ``sample_rate`` Hz.
        sample_rate: audio sample rate in Hz.
        crf, preset: libx264 quality settings.
        inputs: input paths that must not be overwritten (e.g. the source video).

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: no frames, wrong frame shape/dtype, size change, bad fps/audio, or ``path``
            is one of ``inputs`` (the message says which).
    """
    path = Path(path)
    rate = _fps_fraction(fps)
    audio_arr = None if audio is None else _mono_audio(audio)
    with atomic_output(path, inputs=inputs) as tmp:
        container = av.open(str(tmp), mode="w", format="mp4")
        try:
            vstream = None
            astream = None
            size = None
            n = 0
            for i, frame in enumerate(checked_frames(frames, "write_video")):
                if size is None:
                    size = frame.shape[:2]
                    vstream = container.add_stream("libx264", rate=rate)
                    vstream.width = size[1] + size[1] % 2
                    vstream.height = size[0] + size[0] % 2
                    vstream.pix_fmt = "yuv420p"
                    vstream.options = {"crf": str(crf), "preset": preset}
                    if audio_arr is not None:
                        astream = container.add_stream("aac", rate=int(sample_rate))
                        astream.layout = "mono"
                if size[0] % 2 or size[1] % 2:
                    frame = np.pad(frame, ((0, size[0] % 2), (0, size[1] % 2), (0, 0)), mode="edge")
                vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                vframe.pts = i
                vframe.time_base = 1 / rate
                for packet in vstream.encode(vframe):
                    container.mux(packet)
                n += 1
            if n == 0:
                raise ValueError(f"write_video: no frames given for {path}")
            for packet in vstream.encode(None):
                container.mux(packet)
            if astream is not None and audio_arr.size:
                aframe = av.AudioFrame.from_ndarray(audio_arr[None, :], format="flt", layout="mono")
                aframe.sample_rate = int(sample_rate)
                aframe.pts = 0
                for packet in astream.encode(aframe):
                    container.mux(packet)
                for packet in astream.encode(None):
                    container.mux(packet)
        finally:
            container.close()
    return path
