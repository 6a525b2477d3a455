"""2D facial landmarks per frame: MediaPipe FaceMesh (478 points with iris) → iBUG-68 + iris centres.

MediaPipe FaceMesh 0.10.14 (``refine_landmarks=True``: 468 mesh points + 10 iris points, bundled
models, video mode) runs on each RGB frame. The dense mesh is reduced to the 68 iBUG / dlib points
(0-16 jaw contour, 17-26 brows, 27-35 nose, 36-47 eyes, 48-67 mouth; the subject's right eye and
brow first) with the fixed table :data:`MP_TO_IBUG68`, plus the two iris centres (MediaPipe 468
= subject's right eye, 473 = subject's left eye).

A frame where no face is found is marked missing (``valid[t] = False``, landmarks NaN); the fitter
interpolates its coefficients.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from flap.errors import InputError
from flap.io.video import checked_frames

__all__ = [
    "IRIS_CENTRES",
    "LandmarkTrack",
    "MP_TO_IBUG68",
    "NoFaceError",
    "detect_landmarks",
    "eye_aspect_ratio",
    "mediapipe_to_ibug68",
    "mirror_ibug68",
]

#: MediaPipe FaceMesh vertex index (or pair of indices, averaged) for each of the 68 iBUG points, in
#: iBUG order. Correspondence table published by Peizhi Yan, "Mediapipe_2_Dlib_Landmarks"
#: (https://github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks, ``mediapipe2dlib/mp2dlib.py``, 2024);
#: single indices are repeated so that every row is a pair. One deliberate change: point 13 uses
#: (361, 288), the mirror image of point 3's (132, 58), where the table has 361 alone, so that the
#: map is left-right symmetric (tracking a mirrored video must give the mirrored pose).
MP_TO_IBUG68: np.ndarray = np.array(
    [
        # 0-16 jaw contour (subject's right ear → chin → left ear)
        [127, 127], [234, 234], [93, 93], [132, 58], [58, 172], [136, 136], [150, 150], [176, 176],
        [152, 152], [400, 400], [379, 379], [365, 365], [397, 288], [361, 288], [323, 323], [454, 454],
        [356, 356],
        # 17-21 right brow, 22-26 left brow
        [70, 70], [63, 63], [105, 105], [66, 66], [107, 107],
        [336, 336], [296, 296], [334, 334], [293, 293], [300, 300],
        # 27-30 nose bridge, 31-35 nostrils
        [168, 6], [197, 195], [5, 5], [4, 4], [75, 75], [97, 97], [2, 2], [326, 326], [305, 305],
        # 36-41 right eye, 42-47 left eye
        [33, 33], [160, 160], [158, 158], [133, 133], [153, 153], [144, 144],
        [362, 362], [385, 385], [387, 387], [263, 263], [373, 373], [380, 380],
        # 48-59 outer lip, 60-67 inner lip
        [61, 61], [39, 39], [37, 37], [0, 0], [267, 267], [269, 269], [291, 291], [321, 321],
        [314, 314], [17, 17], [84, 84], [91, 91],
        [78, 78], [82, 82], [13, 13], [312, 312], [308, 308], [317, 317], [14, 14], [87, 87],
    ],
    dtype=np.int64,
)  # fmt: skip

#: MediaPipe iris-centre indices: subject's right eye (iBUG 36-41), subject's left eye (iBUG 42-47).
IRIS_CENTRES: tuple[int, int] = (468, 473)

#: iBUG indices of the six points of each eye (right then left), in the order p1..p6 of the eye
#: aspect ratio (Soukupová & Čech 2016): outer corner, two upper lid points, inner corner, two lower.
EYE_POINTS = np.array([[36, 37, 38, 39, 40, 41], [45, 44, 43, 42, 47, 46]], dtype=np.int64)


class NoFaceError(InputError):
    """No face was found in any frame of the input (message names the file)."""


@dataclass
class LandmarkTrack:
    """Landmarks of a video, in pixels (x right, y down, origin at the top-left pixel corner).

    Attributes:
        lmk68: ``float32 (T, 68, 2)`` iBUG-68 points (NaN where missing).
        iris: ``float32 (T, 2, 2)`` iris centres, subject's right eye then left eye (NaN where missing).
        valid: ``bool (T,)`` True where a face was detected.
        size: ``(H, W)`` frame size in pixels.
        fps: frames per second.
    """

    lmk68: np.ndarray
    iris: np.ndarray
    valid: np.ndarray
    size: tuple[int, int]
    fps: float

    def __len__(self) -> int:
        return len(self.valid)

    def flipped(self) -> LandmarkTrack:
        """The track of the horizontally mirrored video (for tests): x → W - x, left/right swapped."""
        w = self.size[1]
        lmk = self.lmk68.copy()
        lmk[..., 0] = w - lmk[..., 0]
        iris = self.iris[:, ::-1].copy()
        iris[..., 0] = w - iris[..., 0]
        return LandmarkTrack(lmk[:, mirror_ibug68()], iris, self.valid.copy(), self.size, self.fps)


def mirror_ibug68() -> np.ndarray:
    """Permutation of the 68 iBUG indices under a left-right mirror, ``(68,)`` int."""
    perm = np.arange(68)
    perm[0:17] = np.arange(16, -1, -1)
    perm[17:27] = np.arange(26, 16, -1)
    perm[31:36] = np.arange(35, 30, -1)
    perm[36:40] = [45, 44, 43, 42]
    perm[40:42] = [47, 46]
    perm[42:46] = [39, 38, 37, 36]
    perm[46:48] = [41, 40]
    perm[48:55] = np.arange(54, 47, -1)
    perm[55:60] = np.arange(59, 54, -1)
    perm[60:65] = np.arange(64, 59, -1)
    perm[65:68] = np.arange(67, 64, -1)
    return perm


def mediapipe_to_ibug68(mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reduce MediaPipe points ``(..., 478, D)`` to iBUG-68 ``(..., 68, D)`` and iris ``(..., 2, D)``.

    Raises:
        ValueError: fewer than 478 points (FaceMesh must run with ``refine_landmarks=True``).
    """
    mesh = np.asarray(mesh)
    if mesh.shape[-2] < 478:
        raise ValueError(f"expected 478 MediaPipe points (refine_landmarks=True), got {mesh.shape[-2]}")
    lmk = mesh[..., MP_TO_IBUG68, :].mean(axis=-2)
    iris = mesh[..., list(IRIS_CENTRES), :]
    return lmk, iris


def eye_aspect_ratio(lmk68: np.ndarray) -> np.ndarray:
    """Eye aspect ratio (Soukupová & Čech 2016) of both eyes, ``(..., 68, 2)`` → ``(..., 2)``.

    ``EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)``, subject's right eye then left eye; about 0.3
    for an open eye and below 0.1 for a closed one.
    """
    p = lmk68[..., EYE_POINTS, :]  # (..., 2, 6, 2)
    d = lambda a, b: np.linalg.norm(p[..., a, :] - p[..., b, :], axis=-1)  # noqa: E731
    return (d(1, 5) + d(2, 4)) / (2.0 * np.maximum(d(0, 3), 1e-6))


def _quiet_mediapipe():
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import mediapipe as mp

    return mp


def detect_landmarks(
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    *,
    static_image_mode: bool = False,
    min_detection_confidence: float = 0.5,
    min_tracking_confidence: float = 0.5,
    source: str = "<frames>",
    allow_no_face: bool = False,
) -> LandmarkTrack:
    """Run MediaPipe FaceMesh on RGB frames and return iBUG-68 + iris landmarks in pixels.

    Args:
        frames: iterable of ``uint8 (H, W, 3)`` RGB frames (all the same size), e.g.
            :func:`flap.io.iter_video`.
        fps: frames per second (stored in the result).
        static_image_mode: detect in every frame independently (for single images); video mode
            (default) tracks the face between frames.
        min_detection_confidence, min_tracking_confidence: FaceMesh thresholds.
        source: name used in error messages (the file path).
        allow_no_face: return an all-invalid track instead of raising when no face is found.

    Returns:
        :class:`LandmarkTrack`.

    Raises:
        NoFaceError: no face in any frame (unless ``allow_no_face``), or no frame at all.
        ValueError: frames of the wrong dtype/shape or changing size.
    """
    mp = _quiet_mediapipe()
    with warnings.catch_warnings():
        # protobuf deprecation notice raised inside mediapipe 0.10.14 on every call
        warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")
        lmks, irises, valid = [], [], []
        size = None
        with mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static_image_mode,
            refine_landmarks=True,
            max_num_faces=1,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        ) as mesh_model:
            for frame in checked_frames(frames, source):
                size = frame.shape[:2]
                result = mesh_model.process(np.ascontiguousarray(frame))
                if result.multi_face_landmarks:
                    pts = result.multi_face_landmarks[0].landmark
                    mesh = np.array([(p.x * size[1], p.y * size[0]) for p in pts], dtype=np.float32)
                    lmk, iris = mediapipe_to_ibug68(mesh)
                    valid.append(True)
                else:
                    lmk = np.full((68, 2), np.nan, np.float32)
                    iris = np.full((2, 2), np.nan, np.float32)
                    valid.append(False)
                lmks.append(lmk)
                irises.append(iris)
        if size is None:
            raise NoFaceError(f"{source}: no frames to track (expected at least one RGB frame)")
        track = LandmarkTrack(
            lmk68=np.stack(lmks).astype(np.float32),
            iris=np.stack(irises).astype(np.float32),
            valid=np.asarray(valid, dtype=bool),
            size=(int(size[0]), int(size[1])),
            fps=float(fps),
        )
        if not track.valid.any() and not allow_no_face:
            raise NoFaceError(
                f"{source}: no face found in any of its {len(track)} frames (expected a visible face)"
            )
        return track
