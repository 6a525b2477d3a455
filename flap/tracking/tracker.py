"""FLAME tracking of a video or an image: landmarks → FLAME fit → :class:`HeadCoeffs` (paper Sec. 5.1).

Pipeline: :func:`flap.io.iter_video` → :func:`flap.tracking.landmarks.detect_landmarks` (MediaPipe
FaceMesh → iBUG-68 + iris) → eyelids / gaze read off the landmarks (:mod:`flap.tracking.eyes`) →
:func:`flap.tracking.fitting.fit_landmarks` (one β per clip, per-frame pose, jaw, ψ, weak-perspective
camera) → :class:`TrackingResult` (``HeadCoeffs (T, 120)`` at the video's fps, β, cameras).

Outputs (:meth:`TrackingResult.save`): the coefficients file (``.npz`` or ``.safetensors``, the
:class:`HeadCoeffs` format) and beside it ``<stem>.tracking.npz`` with β, cameras, landmarks,
validity and fit error; optionally an overlay video with the mesh drawn over the frames. Every
file is written atomically, after the whole clip has been tracked: a failure leaves no output.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from flap.errors import OutputError
from flap.flame.coeffs import HeadCoeffs
from flap.flame.model import FlameModel
from flap.io import atomic_output, check_not_input, iter_video, write_video
from flap.io.formats import IMAGE_SUFFIXES
from flap.render import render_mesh
from flap.signals import interpolate_missing
from flap.tracking.camera import to_pixel_frame
from flap.tracking.eyes import eyelids_from_landmarks, gaze_degrees_from_landmarks, gaze_to_eye_pose
from flap.tracking.fitting import FitConfig, fit_landmarks
from flap.tracking.landmark_model import FlameLandmarks
from flap.tracking.landmarks import LandmarkTrack, detect_landmarks

__all__ = ["FlameTracker", "TrackingResult", "overlay_strip", "save_png", "sidecar_path", "track_video"]


def sidecar_path(coeffs_path: str | os.PathLike) -> Path:
    """``<dir>/<stem>.tracking.npz`` beside a coefficients file ``<dir>/<stem>.npz|.safetensors``."""
    p = Path(coeffs_path)
    return p.with_name(p.stem + ".tracking.npz")


@dataclass
class TrackingResult:
    """Tracked FLAME parameters of a clip.

    Attributes:
        coeffs: :class:`HeadCoeffs` ``(T, 120)`` at the clip's fps (global_rot, eyes 6D, jaw,
            eyelids, ψ); frames without a face are interpolated.
        shape: ``(n_shape,)`` identity β of the clip.
        camera: ``(T, 3)`` weak-perspective cameras ``[s px/m, tx px, ty px]`` (:mod:`flap.tracking.camera`).
        valid: ``(T,)`` bool, frames where a face was detected.
        error_px: ``(T,)`` mean landmark reprojection error in pixels (NaN where missing).
        landmarks: the detected :class:`LandmarkTrack` (iBUG-68 + iris, pixels).
        model_path: the FLAME model file used.
    """

    coeffs: HeadCoeffs
    shape: torch.Tensor
    camera: torch.Tensor
    valid: np.ndarray
    error_px: np.ndarray
    landmarks: LandmarkTrack
    model_path: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.coeffs)

    def __getitem__(self, idx) -> TrackingResult:
        """Frame slicing (``result[10:20]``, ``result[5]``): a result over those frames (β shared)."""
        sel = np.arange(len(self))[idx]
        sel = np.atleast_1d(sel)
        track = self.landmarks
        sub = LandmarkTrack(track.lmk68[sel], track.iris[sel], track.valid[sel], track.size, track.fps)
        return TrackingResult(
            coeffs=self.coeffs[torch.from_numpy(sel)],
            shape=self.shape,
            camera=self.camera[torch.from_numpy(sel)],
            valid=self.valid[sel],
            error_px=self.error_px[sel],
            landmarks=sub,
            model_path=self.model_path,
        )

    @property
    def fps(self) -> float:
        return self.coeffs.fps

    def save(self, path: str | os.PathLike, inputs=()) -> tuple[Path, Path]:
        """Write the coefficients to ``path`` (``.npz``/``.safetensors``) and the sidecar ``<stem>.tracking.npz``.

        Returns:
            ``(coeffs_path, sidecar_path)``.

        Raises:
            ValueError: unknown suffix, or ``path`` is one of ``inputs``.
        """
        path = check_not_input(path, inputs)
        side = sidecar_path(path)
        check_not_input(side, inputs)
        if path.suffix.lower() not in (".npz", ".safetensors"):
            raise OutputError(
                f"tracking output {path}: expected a .npz or .safetensors path, got {path.suffix!r}"
            )
        with atomic_output(side, inputs=inputs) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                shape=self.shape.detach().cpu().numpy(),
                camera=self.camera.detach().cpu().numpy(),
                valid=self.valid,
                error_px=self.error_px,
                lmk68=self.landmarks.lmk68,
                iris=self.landmarks.iris,
                size=np.asarray(self.landmarks.size),
                fps=np.asarray(self.fps),
                model_path=np.asarray(str(self.model_path)),
            )
        self.coeffs.save(path)
        return path, side

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrackingResult:
        """Read what :meth:`save` wrote (coefficients file + sidecar).

        Raises:
            FileNotFoundError: either file is missing.
        """
        path = Path(path)
        side = sidecar_path(path)
        if not side.is_file():
            raise FileNotFoundError(
                f"tracking sidecar not found: {side} (written by TrackingResult.save beside {path})"
            )
        coeffs = HeadCoeffs.load(path)
        with np.load(side, allow_pickle=False) as z:
            track = LandmarkTrack(
                z["lmk68"], z["iris"], z["valid"], tuple(int(v) for v in z["size"]), float(z["fps"])
            )
            return cls(
                coeffs=coeffs,
                shape=torch.from_numpy(z["shape"]),
                camera=torch.from_numpy(z["camera"]),
                valid=z["valid"],
                error_px=z["error_px"],
                landmarks=track,
                model_path=str(z["model_path"]),
            )

    @torch.no_grad()
    def vertices(self, model, frames: slice | None = None) -> torch.Tensor:
        """FLAME vertices ``(T, 5023, 3)`` (metres, no translation; see :attr:`camera`) of the tracked clip."""
        c = self.coeffs if frames is None else self.coeffs[frames]
        n = len(c)
        inputs = c.to_flame_inputs(self.shape.to(c.data.dtype).expand(n, -1))
        if not getattr(model, "has_eyelids", True):
            inputs.pop("eyelids", None)
        inputs = {k: v.to(model.v_template) for k, v in inputs.items() if v is not None}
        n_exp = model.n_exp
        if "expression" in inputs:
            inputs["expression"] = inputs["expression"][:, :n_exp]
        if "shape" in inputs:
            inputs["shape"] = inputs["shape"][:, : model.n_shape]
        return model(**inputs).vertices

    def overlay_frames(self, frames, model, alpha: float = 0.55, batch: int = 32) -> Iterator[np.ndarray]:
        """Draw the tracked mesh over ``frames`` (iterable of ``uint8 (H, W, 3)``) with :func:`flap.render.render_mesh`."""
        faces = model.faces.cpu().numpy()
        verts = None
        for t, frame in enumerate(frames):
            if t >= len(self):
                break
            if t % batch == 0:
                verts = self.vertices(model, slice(t, t + batch)).cpu().numpy()
            v_px = to_pixel_frame(verts[t % batch], self.camera[t].cpu().numpy())
            yield render_mesh(v_px, faces, image=frame, alpha=alpha)


def overlay_strip(video, result: TrackingResult, model, num: int = 5, height: int = 192) -> np.ndarray:
    """``num`` evenly spaced frames of ``video`` with the tracked mesh drawn over them, side by side.

    Returns:
        ``uint8 (height, num * width, 3)`` RGB (each frame resized to ``height`` pixels high).
    """
    from PIL import Image

    picks = set(np.linspace(0, len(result) - 1, num).round().astype(int).tolist())
    tiles = []
    with iter_video(video, max_frames=len(result)) as stream:
        for t, frame in enumerate(stream):
            if t in picks:
                drawn = next(result[t].overlay_frames([frame], model))
                w = round(drawn.shape[1] * height / drawn.shape[0])
                tiles.append(np.asarray(Image.fromarray(drawn).resize((w, height), Image.LANCZOS)))
    return np.concatenate(tiles, axis=1)


def save_png(path: str | os.PathLike, image: np.ndarray, max_bytes: int | None = 300_000) -> Path:
    """Write an RGB image as PNG atomically; above ``max_bytes`` it is re-saved with a 256-colour palette."""
    import io

    from PIL import Image

    img = Image.fromarray(image)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    if max_bytes is not None and buf.tell() > max_bytes:
        buf = io.BytesIO()
        img.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
            buf, format="PNG", optimize=True
        )
    with atomic_output(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return Path(path)


def _load_model(model, n_shape: int, n_exp: int):
    if isinstance(model, torch.nn.Module):
        return model
    return FlameModel(model_path=model, n_shape=n_shape, n_exp=n_exp)


class FlameTracker:
    """Reusable tracker (the FLAME model and its landmark subset are built once).

    Args:
        model: a :class:`flap.flame.model.FlameModel`, a model file path, or ``None`` (real FLAME
            in ``flame_assets/`` if present, else the proxy).
        fit: :class:`FitConfig` (or a dict of its fields).
        min_detection_confidence, min_tracking_confidence: MediaPipe FaceMesh thresholds.
        use_eyelids, use_gaze: estimate eyelids from eye opening / eyeball rotation from the iris.
        symmetric: also fit the mirror image of the landmarks and average the two head poses
            (rotation, jaw, camera; the mirrored fit's yaw, roll and jaw yaw/roll negated). This
            test-time mirroring cancels left-right biases of the model and of the landmark map, so a
            mirrored video gives exactly mirrored poses up to landmark-detector noise; it doubles the
            fitting cost. β, ψ, eyes and eyelids come from the direct fit.
    """

    def __init__(
        self,
        model=None,
        fit: FitConfig | dict | None = None,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        use_eyelids: bool = True,
        use_gaze: bool = True,
        symmetric: bool = True,
    ):
        self.fit = fit if isinstance(fit, FitConfig) else FitConfig(**(fit or {}))
        self.model = _load_model(model, max(self.fit.n_shape, 1), max(self.fit.n_exp, 1))
        self.flame = FlameLandmarks(self.model, contour=self.fit.contour).double()
        self.detection = dict(
            min_detection_confidence=min_detection_confidence, min_tracking_confidence=min_tracking_confidence
        )
        self.use_eyelids, self.use_gaze, self.symmetric = use_eyelids, use_gaze, symmetric

    def track_landmarks(self, track: LandmarkTrack) -> TrackingResult:
        """Fit FLAME to a :class:`LandmarkTrack` (no video decoding)."""
        valid = track.valid
        eyes_aa = eyes_6d = None
        t = len(track)
        if self.use_gaze:
            gaze = gaze_degrees_from_landmarks(track.lmk68, track.iris, valid)
            gaze = interpolate_missing(
                np.nan_to_num(gaze), valid & np.isfinite(gaze).all(axis=(1, 2)) if t else valid
            )
            eyes_aa, eyes_6d = gaze_to_eye_pose(torch.from_numpy(gaze))
        eyelids = None
        if self.use_eyelids:
            lids = eyelids_from_landmarks(track.lmk68, valid)
            eyelids = interpolate_missing(np.nan_to_num(lids), valid & np.isfinite(lids).all(axis=1))
        res = fit_landmarks(
            self.model, track.lmk68, valid, self.fit, eyes_aa=eyes_aa, eyelids=eyelids, flame=self.flame
        )
        if self.symmetric:
            mirror = track.flipped()
            lids_m = None if eyelids is None else eyelids[:, ::-1].copy()
            res_m = fit_landmarks(
                self.model, mirror.lmk68, mirror.valid, self.fit, eyelids=lids_m, flame=self.flame
            )
            flip = torch.tensor([1.0, -1.0, -1.0])
            res.global_rot = 0.5 * (res.global_rot + res_m.global_rot * flip)
            res.jaw = 0.5 * (res.jaw + res_m.jaw * flip)
            cam_m = res_m.camera.clone()
            cam_m[:, 1] = track.size[1] - cam_m[:, 1]
            res.camera = 0.5 * (res.camera + cam_m)
        coeffs = HeadCoeffs.from_parts(
            track.fps,
            global_rot=res.global_rot,
            eyes=res.eyes_6d if eyes_6d is None else eyes_6d.float(),
            jaw=res.jaw,
            eyelids=res.eyelids if self.model.has_eyelids else torch.zeros(t, 2),
            expression=res.expression,
        )
        return TrackingResult(
            coeffs=coeffs,
            shape=res.shape,
            camera=res.camera,
            valid=res.valid,
            error_px=res.error_px,
            landmarks=track,
            model_path=str(self.model.model_path),
        )

    def track(self, video: str | os.PathLike, max_frames: int | None = None) -> TrackingResult:
        """Track a video file (any container FFmpeg reads) or an image file.

        Raises:
            flap.io.VideoReadError: missing, empty, corrupt or non-video file.
            flap.tracking.NoFaceError: no face in any frame.
        """
        with iter_video(video, max_frames=max_frames) as stream:
            single = stream.info.num_frames == 1 or Path(video).suffix.lower() in IMAGE_SUFFIXES
            track = detect_landmarks(
                stream, stream.info.fps, static_image_mode=single, source=str(video), **self.detection
            )
        return self.track_landmarks(track)


def track_video(
    video: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    model=None,
    fit: FitConfig | dict | None = None,
    overlay: str | os.PathLike | bool | None = None,
    max_frames: int | None = None,
    tracker: FlameTracker | None = None,
    **tracker_kwargs,
) -> TrackingResult:
    """Track a video or image and optionally save the results (Python entry point of ``tools/track_flame.py``).

    Args:
        video: input video or image path.
        out: coefficients path (``.npz`` / ``.safetensors``); ``None`` = do not save. The sidecar
            ``<stem>.tracking.npz`` (β, cameras, landmarks) is written beside it.
        model: FLAME model, model file or ``None`` (see :class:`FlameTracker`).
        fit: :class:`FitConfig` or dict.
        overlay: overlay video path, or ``True`` for ``<out stem>.overlay.mp4`` (needs ``out``).
        max_frames: track only the first frames.
        tracker: a prebuilt :class:`FlameTracker` (then ``model``/``fit`` are ignored).

    Returns:
        :class:`TrackingResult`.

    Raises:
        flap.io.VideoReadError: unreadable input. flap.tracking.NoFaceError: no face.
        ValueError: an output path equals the input, or a bad suffix. Nothing is written on error.
    """
    video = Path(video)
    if out is not None:
        check_not_input(out, [video])
    if overlay is True:
        if out is None:
            raise ValueError("track_video: overlay=True needs an output path `out`")
        overlay = Path(out).with_name(Path(out).stem + ".overlay.mp4")
    if overlay:
        check_not_input(overlay, [video])
    tracker = tracker or FlameTracker(model=model, fit=fit, **tracker_kwargs)
    result = tracker.track(video, max_frames=max_frames)
    if overlay:
        with iter_video(video, max_frames=max_frames) as stream:
            write_video(overlay, result.overlay_frames(stream, tracker.model), result.fps, inputs=[video])
    if out is not None:
        result.save(out, inputs=[video])
    return result
