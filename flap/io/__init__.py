"""flap.io: video/audio reading and writing with PyAV, atomic outputs.

Public API: :func:`read_video`, :func:`iter_video`, :func:`probe_video`, :func:`write_video`,
:func:`read_audio_track`, :func:`atomic_output`, :class:`VideoInfo`, :class:`VideoReadError`.
"""

from flap.io.atomic import atomic_output, check_not_input
from flap.io.audio_track import read_audio_track
from flap.io.video import (
    VideoInfo,
    VideoReadError,
    VideoStream,
    iter_video,
    probe_video,
    read_video,
    write_video,
)

__all__ = [
    "VideoInfo",
    "VideoReadError",
    "VideoStream",
    "atomic_output",
    "check_not_input",
    "iter_video",
    "probe_video",
    "read_audio_track",
    "read_video",
    "write_video",
]
