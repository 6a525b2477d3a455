"""Evaluate generated videos against their requested conditions (the engine of ``python -m flap.evaluate``).

For each video: track it with the FLAME tracker, compare the tracked pose / jaw / expression with
the request (:mod:`flap.eval.pose`), correlate mouth opening with the speech envelope (lip-sync
proxy, no weights), measure landmark jitter, then run the learned metrics whose local weights are
configured (SyncNet, HyperIQA, identity; FID and FVD over the whole set against ``real`` videos).
A learned metric without weights is reported under ``skipped`` with the config key enabling it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from flap.audio import AudioError, load_audio
from flap.control.script import load_pose_script
from flap.errors import InputError, InputNotFoundError
from flap.eval.distribution import fid as fid_fn
from flap.eval.distribution import fvd as fvd_fn
from flap.eval.dlib_face import video_identity
from flap.eval.extractors import load_extractor
from flap.eval.hyperiqa import HyperNet, hyperiqa_score
from flap.eval.identity import identity_similarity
from flap.eval.pose import expression_following, jaw_following, pose_following
from flap.eval.syncnet import SyncNetModel, sync_scores, syncnet_face_crop
from flap.eval.tracked import TrackedVideo, landmark_boxes, track_for_eval
from flap.eval.weights import MetricSkipped, load_state_dict
from flap.flame.coeffs import HeadCoeffs
from flap.io.formats import COEFF_SUFFIXES, SAMPLE_RATE, VIDEO_SUFFIXES
from flap.io.runtime import import_callable, resolve_device
from flap.io.video import read_video
from flap.signals import best_lag_correlation, landmark_jitter, mouth_opening, speech_envelope
from flap.tracking.faces import crop_frames
from flap.tracking.landmarks import detect_landmarks

__all__ = [
    "TrackingFailed",
    "VIDEO_SUFFIXES",
    "list_videos",
    "find_request",
    "load_request",
    "resolve_tracker",
    "MetricModels",
    "evaluate_video",
    "evaluate_set",
]


class TrackingFailed(InputError):
    """The tracker found no usable face in a generated video (the message names the file)."""




def list_videos(path: str | os.PathLike) -> list[Path]:
    """A video file as a one-element list, or the videos directly inside a folder (sorted).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a folder without videos (the message lists the accepted suffixes).
    """
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise InputNotFoundError(f"evaluate: video path does not exist: {p}")
    vids = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in VIDEO_SUFFIXES)
    if not vids:
        raise InputError(
            f"evaluate: no video in folder {p} (expected files ending in {', '.join(VIDEO_SUFFIXES)})"
        )
    return vids


def find_request(video: Path) -> Path | None:
    """The coefficient file saved beside a generated video, if any.

    Looked up in order: ``<video>.coeffs.npz``, ``<stem>.coeffs.npz``, ``<stem>.coeffs.safetensors``,
    ``<stem>.npz``, ``<stem>.safetensors`` (the generator writes the first form).
    """
    cands = [
        video.with_name(video.name + ".coeffs.npz"),
        video.with_name(video.stem + ".coeffs.npz"),
        video.with_name(video.stem + ".coeffs.safetensors"),
        video.with_suffix(".npz"),
        video.with_suffix(".safetensors"),
    ]
    return next((c for c in cands if c.is_file()), None)


def load_request(request, video: Path, num_frames: int, fps: float) -> tuple[HeadCoeffs, str, str]:
    """The requested conditions for ``video``.

    Args:
        request: a :class:`HeadCoeffs`; a ``.npz`` / ``.safetensors`` HeadCoeffs file; a pose
            script (bundled name such as ``nod`` or a ``.yaml`` path: only the pose is requested, as
            absolute angles sampled at ``fps`` for ``num_frames``); or ``None`` = the coefficient
            file beside the video (:func:`find_request`). A folder holds per-video files named
            like the video (``<stem>.coeffs.npz`` ...).

    Returns:
        ``(coeffs, kind, source)`` with ``kind`` ``"coeffs"`` or ``"pose_script"``.

    Raises:
        FileNotFoundError: no request given and none beside the video; or the named file is missing.
    """
    if isinstance(request, HeadCoeffs):
        return request, "coeffs", "<HeadCoeffs>"
    if request is None or str(request).strip() == "":
        found = find_request(video)
        if found is None:
            raise FileNotFoundError(
                f"evaluate: no request given for {video} and no coefficient file beside it "
                f"(looked for {video.name}.coeffs.npz, {video.stem}.coeffs.npz, ...); pass request=<file or pose script>"
            )
        return HeadCoeffs.load(found), "coeffs", str(found)
    p = Path(str(request))
    if p.is_dir():
        for cand in (
            p / f"{video.name}.coeffs.npz",
            p / f"{video.stem}.coeffs.npz",
            p / f"{video.stem}.npz",
            p / f"{video.stem}.safetensors",
        ):
            if cand.is_file():
                return HeadCoeffs.load(cand), "coeffs", str(cand)
        raise FileNotFoundError(
            f"evaluate: request folder {p} has no coefficient file for {video.name} (e.g. {video.stem}.coeffs.npz)"
        )
    if p.suffix.lower() in COEFF_SUFFIXES:
        return HeadCoeffs.load(p), "coeffs", str(p)

    script = load_pose_script(str(request))
    coeffs = HeadCoeffs.neutral(num_frames, fps).set_pose_degrees(script.sample(num_frames, fps))
    return coeffs, "pose_script", str(getattr(script, "source", request))


def resolve_tracker(spec, **kwargs) -> Callable:
    """A tracker callable ``f(video_path) -> result`` from a callable or a dotted ``"module.function"`` name.

    Args:
        spec: a callable, or ``"package.module.function"`` / ``"package.module:function"`` (default
            config: ``flap.tracking.track_video``).
        kwargs: bound as keyword arguments of every call (e.g. ``model=`` a FLAME file).

    Raises:
        ImportError: the module or function does not exist (message names ``spec``).
    """
    fn = import_callable(spec, "evaluate: tracker (set tracker.target to a function)")
    return functools.partial(fn, **kwargs) if kwargs else fn


# --------------------------------------------------------------------------- learned metrics
class MetricModels:
    """Loads each learned metric's network once, from local weights named in ``cfg['metrics']``.

    ``get(name)`` returns the model or raises :class:`MetricSkipped` naming ``metrics.<name>.weights``.
    """

    def __init__(self, metrics_cfg: Mapping, device: torch.device):
        self.cfg, self.device, self._models = metrics_cfg or {}, device, {}

    def key(self, name: str) -> str:
        return f"metrics.{name}.weights"

    def get(self, name: str):
        if name not in self._models:
            try:
                self._models[name] = self._load(name)
            except MetricSkipped as exc:
                self._models[name] = exc
        model = self._models[name]
        if isinstance(model, MetricSkipped):
            raise model
        return model

    def _load(self, name: str):
        cfg = dict(self.cfg.get(name) or {})
        if name in ("fid", "fvd", "identity"):
            return load_extractor(cfg, name, self.key(name), map_location=self.device)
        if name == "syncnet":
            model = SyncNetModel(embed_dim=cfg.get("embed_dim", 1024))
        elif name == "hyperiqa":
            model = HyperNet()
        else:
            raise ValueError(f"unknown metric {name!r}")
        state = load_state_dict(cfg.get("weights"), name, self.key(name))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(
                f"{name}: {self.key(name)}={cfg.get('weights')} does not match the {name} layout: {exc}"
            ) from exc
        return model.to(self.device).eval()


def _face_track(boxes: np.ndarray, scale: float) -> np.ndarray:
    """``(T, 4)`` boxes → ``(T, 3)`` ``(cx, cy, side)`` squares for :func:`flap.tracking.faces.crop_frames`."""
    return np.stack(
        [
            (boxes[:, 0] + boxes[:, 2]) / 2,
            (boxes[:, 1] + boxes[:, 3]) / 2,
            scale * np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]),
        ],
        axis=1,
    )


def _reference_crop(reference: Path, size: int) -> np.ndarray:
    from PIL import Image

    img = np.asarray(Image.open(reference).convert("RGB"))
    lm = detect_landmarks([img], static_image_mode=True, source=str(reference))
    return crop_frames(img[None], _face_track(landmark_boxes(lm.lmk68, lm.valid), 1.1), size)[0]


def _run_learned(name: str, fn: Callable, results: dict) -> None:
    try:
        results[name] = fn()
    except MetricSkipped as exc:
        results.setdefault("skipped", {})[name] = {"key": exc.key, "reason": exc.reason}


# --------------------------------------------------------------------------- per video
def evaluate_video(
    video: str | os.PathLike,
    request=None,
    *,
    tracker: Callable,
    audio=None,
    reference=None,
    models: MetricModels | None = None,
    cfg: Mapping | None = None,
) -> tuple[dict, dict, np.ndarray]:
    """Evaluate one generated video.

    Args:
        video: the generated video.
        request: see :func:`load_request`.
        tracker: callable tracking a video path (see :mod:`flap.eval.tracked`).
        audio: speech file, a ``(N,)`` float array at 16 kHz, or ``None`` = the video's own audio.
        reference: reference portrait (for identity similarity), optional.
        models: learned-metric loader (``None`` = none configured, all learned metrics skipped).
        cfg: options ``{"lipsync": {"max_lag_frames"}, "metrics": {...}}``.

    Returns:
        ``(results, per_frame, frames)``: JSON-able metrics (with ``skipped``), per-frame curves for
        :func:`flap.eval.report.plot_following`, and the decoded ``(T, H, W, 3)`` frames.
    """
    cfg = cfg or {}
    video = Path(video)
    frames, fps = read_video(video)
    req, kind, source = load_request(request, video, len(frames), fps)
    try:
        trk: TrackedVideo = track_for_eval(video, tracker)
    except ValueError as exc:  # NoFaceError and other "no usable face" errors of the tracker
        raise TrackingFailed(f"{video}: tracking failed: {exc}") from exc
    res: dict = {
        "name": video.stem,
        "video": str(video),
        "request": source,
        "request_kind": kind,
        "fps": fps,
        "frames": len(frames),
        "face_detected_ratio": float(trk.valid.mean()),
    }
    per_frame: dict = {}

    pose = pose_following(req, trk.coeffs, trk.valid)
    per_frame["pose"] = pose.pop("per_frame")
    res["pose"] = pose
    if kind == "coeffs":
        jaw = jaw_following(req, trk.coeffs, trk.valid)
        per_frame["jaw"] = jaw.pop("per_frame")
        res["jaw"] = jaw
        res["expression"] = expression_following(req, trk.coeffs, valid=trk.valid)
    else:
        res.setdefault("notes", []).append("request is a pose script: only head pose is compared")
    res["jitter"] = landmark_jitter(trk.lmk68, trk.valid)

    speech = _load_speech(audio, video)
    max_lag = int((cfg.get("lipsync") or {}).get("max_lag_frames", 5))
    if speech is None:
        res.setdefault("skipped", {})["lipsync"] = {"key": "audio", "reason": "the video has no audio track"}
    else:
        mouth = mouth_opening(trk.lmk68)
        env = speech_envelope(speech, SAMPLE_RATE, fps, len(mouth))
        ok = trk.valid & np.isfinite(mouth)
        r, lag = best_lag_correlation(np.where(ok, mouth, np.nanmean(mouth[ok])), env, max_lag)
        res["lipsync"] = {"mouth_envelope_corr": r, "best_lag_frames": lag, "max_lag_frames": max_lag}
        per_frame["lipsync"] = {"mouth": mouth, "envelope": env}

    models = models or MetricModels({}, resolve_device(None))
    mcfg = cfg.get("metrics") or {}
    boxes = landmark_boxes(trk.lmk68, trk.valid)

    def syncnet():
        model = models.get("syncnet")
        if speech is None:
            raise MetricSkipped("syncnet", "audio", "the video has no audio track")
        crops = np.stack([syncnet_face_crop(f, b) for f, b in zip(frames, boxes)])
        sc = dict(mcfg.get("syncnet") or {})
        return sync_scores(
            model,
            crops,
            speech,
            fps=fps,
            vshift=int(sc.get("vshift", 15)),
            batch_size=int(sc.get("batch_size", 20)),
        )

    def hyperiqa():
        model = models.get("hyperiqa")
        hc = dict(mcfg.get("hyperiqa") or {})
        idx = (
            np.linspace(0, len(frames) - 1, min(len(frames), int(hc.get("num_frames", 4))))
            .round()
            .astype(int)
        )
        scores = hyperiqa_score(model, frames[idx], num_crops=int(hc.get("num_crops", 10)))
        return {
            "hyperiqa": float(scores.mean()),
            "hyperiqa_min": float(scores.min()),
            "frames_scored": len(idx),
        }

    def identity():
        extractor = models.get("identity")
        if reference is None:
            raise MetricSkipped("identity", "reference", "no reference image given")
        size = extractor.size
        crops = crop_frames(frames, _face_track(boxes, 1.1), size)
        return identity_similarity(crops, _reference_crop(Path(reference), size), extractor)

    _run_learned("syncnet", syncnet, res)
    _run_learned("hyperiqa", hyperiqa, res)
    _run_learned("identity", identity, res)
    dlib_res = video_identity(frames, reference, mcfg.get("identity_dlib") or {})
    res.update({**dlib_res, "skipped": {**(res.get("skipped") or {}), **dlib_res.get("skipped", {})}})
    return res, per_frame, frames


def _load_speech(audio, video: Path) -> np.ndarray | None:
    """16 kHz mono speech from ``audio`` (path or array) or the video's audio track (None if it has none)."""
    if isinstance(audio, np.ndarray):
        return audio.astype(np.float32)

    try:
        return load_audio(audio if audio else video)
    except AudioError:
        if audio:
            raise
        return None


# --------------------------------------------------------------------------- whole set
def evaluate_set(
    videos: list[Path],
    *,
    tracker: Callable,
    request=None,
    audio=None,
    reference=None,
    real=None,
    models: MetricModels | None = None,
    cfg: Mapping | None = None,
    on_video: Callable | None = None,
) -> dict:
    """Evaluate every video, then the set-level FID / FVD against the ``real`` videos.

    Args:
        on_video: optional ``f(result, per_frame)`` called after each video (used to write its
            report right away).

    Returns:
        ``{"videos": [results], "set": {fid, fvd, skipped, mean of the main numbers}}``.
    """
    cfg = cfg or {}
    models = models or MetricModels({}, resolve_device(None))
    results, all_frames = [], []
    for v in videos:  # fail fast on a missing or bad request, before any tracking
        load_request(request, Path(v), 1, 25.0)
    for v in videos:
        try:
            res, per_frame, frames = evaluate_video(
                v, request, tracker=tracker, audio=audio, reference=reference, models=models, cfg=cfg
            )
        except TrackingFailed as exc:
            res, per_frame, frames = (
                {"name": Path(v).stem, "video": str(v), "error": str(exc), "face_detected_ratio": 0.0},
                None,
                None,
            )
        results.append(res)
        if frames is not None:
            all_frames.append(frames)
        if on_video is not None:
            on_video(res, per_frame)
    summary: dict = {
        "name": "set",
        "num_videos": len(results),
        "num_failed": sum("error" in r for r in results),
        "face_detected_ratio": float(np.mean([r["face_detected_ratio"] for r in results])),
    }
    for key in (
        "pose_error_deg",
        "mae_deg",
        "mae_deg_pitch",
        "mae_deg_yaw",
        "mae_deg_roll",
        "corr_pitch",
        "corr_yaw",
        "corr_roll",
    ):
        vals = [r["pose"][key] for r in results if "pose" in r and np.isfinite(r["pose"].get(key, np.nan))]
        summary.setdefault("pose", {})[key] = float(np.mean(vals)) if vals else float("nan")
    for group, key in (
        ("jaw", "jaw_corr"),
        ("lipsync", "mouth_envelope_corr"),
        ("jitter", "jitter_iod"),
        ("syncnet", "sync_c"),
        ("syncnet", "sync_d"),
        ("hyperiqa", "hyperiqa"),
    ):
        vals = [
            r[group][key]
            for r in results
            if group in r and r[group].get(key) is not None and np.isfinite(r[group][key])
        ]
        if vals:
            summary.setdefault(group, {})[key] = float(np.mean(vals))

    for key in ("identity_distance", "face_detected_ratio_dlib"):
        vals = [r[key] for r in results if r.get(key) is not None and np.isfinite(r[key])]
        if vals:
            summary[key] = float(np.mean(vals))
    mcfg = cfg.get("metrics") or {}

    def real_frames():
        if real is None or str(real).strip() == "":
            raise MetricSkipped("fid/fvd", "real", "no real videos given to compare with")

        return [read_video(p)[0] for p in list_videos(real)]

    cache: dict = {}

    def fid():
        extractor = models.get("fid")
        cache.setdefault("real", real_frames())
        return fid_fn(
            all_frames, cache["real"], extractor, max_frames=int((mcfg.get("fid") or {}).get("max_frames", 0))
        )

    def fvd():
        extractor = models.get("fvd")
        cache.setdefault("real", real_frames())
        fc = dict(mcfg.get("fvd") or {})
        return fvd_fn(
            all_frames,
            cache["real"],
            extractor,
            clip_len=int(fc.get("clip_len", 16)),
            stride=int(fc.get("stride", 8)),
        )

    _run_learned("fid", fid, summary)
    _run_learned("fvd", fvd, summary)
    for r in results:
        for name, info in (r.get("skipped") or {}).items():
            summary.setdefault("skipped", {}).setdefault(name, info)
    return {"videos": results, "set": summary}
