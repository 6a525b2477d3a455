"""Settings and result of the landmark fit (:func:`flap.tracking.fitting.fit_landmarks`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from flap.tracking.landmark_model import CONTOURS

__all__ = ["FitConfig", "FitResult"]


@dataclass
class FitConfig:
    """Settings of :func:`fit_landmarks` (mirrored by ``flap/conf/track.yaml`` ``fit:``).

    Attributes:
        n_shape: identity components β estimated (≤ the model's ``n_shape``).
        n_exp: expression components ψ estimated (the rest of the 100 stay 0).
        chunk_size: consecutive frames fitted jointly.
        iters: Levenberg-Marquardt iterations per chunk.
        shape_frames: key frames (spread over the clip) used to estimate β.
        shape_rounds: alternations (per-frame Levenberg-Marquardt, closed-form β and ψ) of the β stage.
        shape_iters: Levenberg-Marquardt iterations per round of the β stage.
        w_contour: weight of the 17 contour points relative to the 51 static ones.
        contour: ``"static"`` (fixed surface points, how MediaPipe FaceMesh's contour behaves, the
            landmarks this tracker uses) or ``"dynamic"`` (FLAME's silhouette-sliding contour,
            for dlib/FAN-style 2D landmarks); see :class:`FlameLandmarks`.
        w_shape, w_exp: ridge priors on β and ψ (per frame), in units of their std.
        w_jaw: prior on the jaw's non-opening axes (y, z) and on negative opening.
        w_smooth: temporal smoothness of pose (rotation rad, log-scale, translation in face sizes, jaw).
        w_smooth_exp: temporal smoothness of ψ.
        threads: torch CPU threads during the fit (restored afterwards); the fit is a batch of small
            problems that runs fastest on one thread. ``None`` keeps the current setting.
        point_weights: optional ``(68,)`` per-landmark weights overriding the defaults.

    Raises:
        ValueError: unknown ``contour``.
    """

    n_shape: int = 100
    n_exp: int = 50
    chunk_size: int = 32
    iters: int = 8
    shape_frames: int = 16
    shape_rounds: int = 8
    shape_iters: int = 5
    w_contour: float = 0.3
    contour: str = "static"
    w_shape: float = 1e-2
    w_exp: float = 0.1
    w_jaw: float = 1e-1
    w_smooth: float = 10.0
    w_smooth_exp: float = 0.1
    threads: int | None = 1
    point_weights: list | None = field(default=None)

    def __post_init__(self):
        if self.contour not in CONTOURS:
            raise ValueError(f"FitConfig.contour must be one of {CONTOURS}, got {self.contour!r}")


@dataclass
class FitResult:
    """Output of :func:`fit_landmarks` (all ``(T, ...)`` arrays cover every frame, interpolated where missing).

    Attributes:
        shape: ``(n_shape,)`` β.
        global_rot: ``(T, 3)`` axis-angle radians. jaw: ``(T, 3)``. expression: ``(T, n_exp)``.
        eyes_aa: ``(T, 2, 3)`` eyeball axis-angle (left, right). eyes_6d: ``(T, 12)``.
        eyelids: ``(T, 2)`` (left, right), 0 open.
        camera: ``(T, 3)`` ``[s px/m, tx px, ty px]``.
        error_px: ``(T,)`` mean landmark reprojection error in pixels (NaN where missing).
        valid: ``(T,)`` frames with detected landmarks.
    """

    shape: torch.Tensor
    global_rot: torch.Tensor
    jaw: torch.Tensor
    expression: torch.Tensor
    eyes_aa: torch.Tensor
    eyes_6d: torch.Tensor
    eyelids: torch.Tensor
    camera: torch.Tensor
    error_px: np.ndarray
    valid: np.ndarray
