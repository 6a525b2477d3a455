"""flap.tracking: FLAME tracking of videos and images (MediaPipe landmarks → FLAME fit, paper Sec. 5.1).

Public API:

* :func:`track_video` / :class:`FlameTracker` / :class:`TrackingResult` (:mod:`flap.tracking.tracker`)
* :class:`FitConfig`, :func:`fit_landmarks` (:mod:`flap.tracking.fitting`)
* :func:`detect_landmarks`, :class:`LandmarkTrack`, :class:`NoFaceError`, :data:`MP_TO_IBUG68`
  (:mod:`flap.tracking.landmarks`)
* :class:`FlameLandmarks` (:mod:`flap.tracking.landmark_model`), :func:`project` (:mod:`flap.tracking.camera`)
"""

from flap.tracking.camera import project, to_pixel_frame
from flap.tracking.faces import NoFaceError
from flap.tracking.fitting import FitConfig, FitResult, fit_landmarks
from flap.tracking.landmark_model import FlameLandmarks
from flap.tracking.landmarks import MP_TO_IBUG68, LandmarkTrack, detect_landmarks
from flap.tracking.tracker import FlameTracker, TrackingResult, sidecar_path, track_video

__all__ = [
    "MP_TO_IBUG68",
    "FitConfig",
    "FitResult",
    "FlameLandmarks",
    "FlameTracker",
    "LandmarkTrack",
    "NoFaceError",
    "TrackingResult",
    "detect_landmarks",
    "fit_landmarks",
    "project",
    "sidecar_path",
    "to_pixel_frame",
    "track_video",
]
