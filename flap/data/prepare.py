"""Dataset preparation: a folder of raw talking-head videos → a FLAP training set (paper Sec. 5.1).

For every video (one *clip*): decode, resample to ``fps`` (25), detect the face (MediaPipe) and cut
a stable square crop resized to ``size`` px, optionally drop hand-occluded frames (Grounding DINO,
:mod:`flap.data.hands`), track FLAME coefficients (pluggable tracker), compute the head-motion
variance, extract 16 kHz mono audio, and write::

    out/clips/<clip_id>/frames/000123.png   kept frames (index = frame index after resampling)
    out/clips/<clip_id>/coeffs.npz          HeadCoeffs (T, 120) for ALL T frames (if a tracker ran)
    out/clips/<clip_id>/audio.wav           16 kHz mono, T / fps seconds (if the video has audio, or a
                                            sidecar ``<video stem>.wav`` lies beside a silent video)
    out/clips/<clip_id>/meta.json           the clip's record (as in the manifest)
    out/records/<clip_id>.json              the clip's record: kept / dropped / error and why
    out/manifest.json                       all records + the preparation settings

A clip folder is built under a temporary name and renamed when complete; its record is written
last. A clip with a record is never processed again, so a re-run on a finished folder does no work
and an interrupted run resumes (left-over temporary folders are removed). A corrupt video is
recorded with ``status="error"`` and the run continues. Clips run in parallel in a process pool.

Command line::

    python -m flap.data.prepare INPUT_DIR OUTPUT_DIR --size 512 --workers 2 \
        --hand-model /path/to/grounding-dino --tracker auto
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from flap.data.crop import MediaPipeFaceDetector, crop_frames, detect_face_boxes, smooth_track
from flap.data.hands import HandDetector, decide_frames, kept_segments
from flap.data.motion import box_motion_variance, head_motion_variance
from flap.errors import InputError, InputNotFoundError, UsageError
from flap.flame.coeffs import DEFAULT_FPS, HeadCoeffs
from flap.io import VideoReadError, atomic_output, probe_video, read_audio_track, read_video
from flap.io.formats import SAMPLE_RATE, VIDEO_SUFFIXES
from flap.io.runtime import import_callable
from flap.tracking import FlameTracker, detect_landmarks

__all__ = ["PrepareConfig", "find_videos", "clip_id_for", "resample_indices", "prepare_clip",
           "prepare_dataset", "load_manifest", "audio_source", "resolve_tracker", "main"]

log = logging.getLogger(__name__)

#: ``tracker(frames uint8 (T, H, W, 3) RGB, fps) -> HeadCoeffs (T, 120)``.
Tracker = Callable[[np.ndarray, float], HeadCoeffs]


@dataclass
class PrepareConfig:
    """Settings of :func:`prepare_dataset` (all recorded in the manifest).

    Attributes:
        size: output crop side in pixels (paper: 512).
        fps: output frame rate in frames/s.
        sample_rate: output audio rate in Hz.
        crop_scale: crop side / face-box side (see :func:`flap.data.crop.head_box`).
        smooth_sigma: temporal smoothing of the crop box, in frames.
        min_face_fraction: drop the clip when fewer frames than this fraction have a face.
        min_frames: drop clips (or hand-filter segments) shorter than this many frames.
        hand_model: local Grounding DINO folder; ``None`` disables hand filtering.
        hand_prompt: detection prompt.
        hand_threshold: a checked frame with hand score above this is dropped.
        hand_every: score every n-th frame (3 in the paper's practice).
        tracker: ``"auto"`` (FLAP's tracker if installed, else none), ``"none"``, or
            ``"module:function"`` returning a :data:`Tracker`-compatible callable's result.
        workers: processes (1 = in this process).
    """

    size: int = 512
    fps: float = DEFAULT_FPS
    sample_rate: int = SAMPLE_RATE
    crop_scale: float = 1.8
    smooth_sigma: float = 3.0
    min_face_fraction: float = 0.5
    min_frames: int = 8
    hand_model: str | None = None
    hand_prompt: str = "hand. finger."
    hand_threshold: float = 0.35
    hand_every: int = 3
    tracker: str = "auto"
    workers: int = 1
    extra: dict = field(default_factory=dict)


def find_videos(root: str | os.PathLike) -> list[Path]:
    """All video files under ``root`` (recursive, sorted), by suffix (:data:`VIDEO_SUFFIXES`).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputNotFoundError(f"prepare: input folder not found: {root}")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                  and not p.name.startswith("."))


def clip_id_for(path: Path, root: Path) -> str:
    """Clip id: the path relative to ``root`` without suffix, ``/`` replaced by ``__``."""
    return "__".join(path.relative_to(root).with_suffix("").parts)


def resample_indices(num_src: int, src_fps: float, fps: float) -> np.ndarray:
    """Source frame index for each output frame (nearest earlier frame) when resampling to ``fps``.

    ``T = round(num_src / src_fps * fps)`` output frames (DESIGN: ``T = round(duration_s · fps)``).

    Returns:
        ``int64 (T,)`` indices into the source frames.
    """
    n_out = int(round(num_src / src_fps * fps))
    t = np.arange(n_out) / fps
    return np.clip(np.floor(t * src_fps + 1e-6).astype(np.int64), 0, max(num_src - 1, 0))


def resolve_tracker(spec: str | Callable | None) -> tuple[Tracker | None, str]:
    """Turn a tracker setting into a callable ``(frames, fps) -> HeadCoeffs`` and a description.

    ``"auto"`` uses :func:`track_crops` (FLAP's FLAME tracker); ``"none"``/``None`` disables tracking; ``"pkg.module:function"`` (or ``"pkg.module.function"``) imports it.

    Raises:
        ValueError: malformed spec or the named function does not exist.
    """
    if spec is None or spec == "none":
        return None, "none"
    if callable(spec):
        return spec, getattr(spec, "__name__", repr(spec))
    if spec == "auto":
        return track_crops, "flap.tracking.FlameTracker"
    try:
        return import_callable(spec, "prepare: tracker"), spec
    except ImportError as exc:
        raise ValueError(f"{exc}; expected 'auto', 'none' or 'module:function'") from exc


# Per-process caches so a worker builds MediaPipe / Grounding DINO / FLAME once, not once per clip.
_CACHE: dict = {}


def track_crops(frames: np.ndarray, fps: float) -> HeadCoeffs:
    """FLAME coefficients of face crops with FLAP's tracker (:class:`flap.tracking.FlameTracker`).

    Args:
        frames: ``uint8 (T, S, S, 3)`` RGB crops.
        fps: their frame rate (frames/s).

    Returns:
        :class:`HeadCoeffs` ``(T, 120)`` (frames without a face are interpolated by the tracker).

    Raises:
        flap.tracking.NoFaceError: no face in any frame.
    """
    if "flame_tracker" not in _CACHE:
        _CACHE["flame_tracker"] = FlameTracker()
    track = detect_landmarks(iter(frames), fps, source="<face crops>")
    return _CACHE["flame_tracker"].track_landmarks(track).coeffs


def _face_detector():
    if "face" not in _CACHE:
        _CACHE["face"] = MediaPipeFaceDetector()
    return _CACHE["face"]


def _hand_detector(cfg: PrepareConfig):
    key = ("hands", cfg.hand_model, cfg.hand_prompt)
    if key not in _CACHE:
        _CACHE[key] = HandDetector(cfg.hand_model, prompt=cfg.hand_prompt)
    return _CACHE[key]


def _write_json(path: Path, obj) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=str))


def _hand_decisions(crops: np.ndarray, cfg: PrepareConfig) -> tuple[list[dict], np.ndarray]:
    if not cfg.hand_model:
        return [], np.ones(len(crops), dtype=bool)
    checked = np.arange(0, len(crops), max(1, int(cfg.hand_every)))
    scores = _hand_detector(cfg).scores(crops[checked])
    decisions = decide_frames(len(crops), checked, scores, cfg.hand_threshold)
    return [d.to_dict() for d in decisions], np.array([d.keep for d in decisions], dtype=bool)


def audio_source(video: Path, has_audio_stream: bool) -> Path | None:
    """The file whose sound goes with ``video``: the video itself if it has an audio stream, else a
    sidecar ``<stem>.wav`` beside it (datasets such as StyleTalk ship speech that way), else None."""
    if has_audio_stream:
        return video
    sidecar = video.with_suffix(".wav")
    return sidecar if sidecar.is_file() else None


def _save_audio(source: Path, dest: Path, num_frames: int, cfg: PrepareConfig) -> float:
    import soundfile as sf

    audio = read_audio_track(source, sample_rate=cfg.sample_rate)
    n = int(round(num_frames / cfg.fps * cfg.sample_rate))
    audio = np.pad(audio[:n], (0, max(0, n - len(audio))))
    sf.write(dest, audio.astype(np.float32), cfg.sample_rate, subtype="FLOAT")
    return len(audio) / cfg.sample_rate


def _process(video: Path, tmp_dir: Path, record: dict, cfg: PrepareConfig) -> dict:
    """Do the work of one clip inside ``tmp_dir``; fills and returns ``record``."""
    info = probe_video(video)
    frames, src_fps = read_video(video)
    if len(frames) == 0 or not src_fps:
        raise VideoReadError(f"{video}: no decodable frames")
    n_src = len(frames)
    frames = frames[resample_indices(n_src, src_fps, cfg.fps)]
    record.update(src_fps=float(src_fps), src_frames=int(n_src), src_size=[info.width, info.height],
                  num_frames=int(len(frames)), fps=cfg.fps)
    if len(frames) < cfg.min_frames:
        return record | {"status": "dropped", "reason": f"too short: {len(frames)} < {cfg.min_frames} frames"}

    raw = detect_face_boxes(frames, _face_detector(), scale=cfg.crop_scale)
    face_fraction = float((~np.isnan(raw).any(axis=1)).mean())
    record["face_fraction"] = round(face_fraction, 4)
    if face_fraction < cfg.min_face_fraction:
        return record | {"status": "dropped",
                         "reason": f"face found in {face_fraction:.0%} of frames < {cfg.min_face_fraction:.0%}"}
    box = smooth_track(raw, cfg.smooth_sigma)
    crops = crop_frames(frames, box, cfg.size)
    del frames
    np.save(tmp_dir / "crop_boxes.npy", box.astype(np.float32))

    decisions, keep = _hand_decisions(crops, cfg)
    record["hand_filter"] = {"enabled": bool(cfg.hand_model), "threshold": cfg.hand_threshold,
                             "every": cfg.hand_every, "prompt": cfg.hand_prompt,
                             "dropped_frames": int((~keep).sum()), "frames": decisions}
    segments = kept_segments(keep, cfg.min_frames)
    record["segments"] = segments
    kept = np.concatenate([np.arange(s, e) for s, e in segments]) if segments else np.zeros(0, np.int64)
    record["kept_frames"] = int(len(kept))
    if not segments:
        return record | {"status": "dropped", "reason": "hands: no segment without hands "
                                                        f"of at least {cfg.min_frames} frames"}

    tracker, tracker_name = resolve_tracker(cfg.tracker)
    record["tracker"] = tracker_name
    if tracker is not None:
        coeffs = tracker(crops, cfg.fps)
        if len(coeffs) != len(crops):
            raise RuntimeError(f"tracker {tracker_name} returned {len(coeffs)} frames for {len(crops)}")
        coeffs.save(tmp_dir / "coeffs.npz")
        record["motion_variance"] = head_motion_variance(coeffs, kept)
        record["motion_source"] = "flame_pose_deg2"
    else:
        record["motion_variance"] = box_motion_variance(raw[kept])
        record["motion_source"] = "crop_box"

    source = audio_source(video, bool(info.has_audio))
    record["has_audio"] = source is not None
    if source is not None:
        record["audio_file"] = source.name
        record["audio_seconds"] = _save_audio(source, tmp_dir / "audio.wav", len(crops), cfg)

    (tmp_dir / "frames").mkdir()
    for t in kept:
        cv2.imwrite(str(tmp_dir / "frames" / f"{t:06d}.png"), crops[t][:, :, ::-1])
    return record | {"status": "kept", "reason": ""}


def prepare_clip(video: str | os.PathLike, root: str | os.PathLike, out_dir: str | os.PathLike,
                 cfg: PrepareConfig) -> dict:
    """Prepare one video; returns its record. Never raises for a bad video (status ``"error"``).

    The clip folder is built under ``out/clips/.tmp-<id>`` and renamed to ``out/clips/<id>`` only
    when complete (only for kept clips); the record ``out/records/<id>.json`` is written last.
    """
    video, root, out_dir = Path(video), Path(root), Path(out_dir)
    cid = clip_id_for(video, root)
    final = out_dir / "clips" / cid
    tmp_dir = out_dir / "clips" / f".tmp-{cid}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    shutil.rmtree(final, ignore_errors=True)  # a folder without record is an interrupted clip
    tmp_dir.mkdir(parents=True)
    record = {"clip_id": cid, "source": str(video), "started": time.time()}
    try:
        record = _process(video, tmp_dir, record, cfg)
    except Exception as exc:  # noqa: BLE001 - a bad clip must never stop the run
        record |= {"status": "error", "reason": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc(limit=3)}
    record["seconds"] = round(time.time() - record.pop("started"), 2)
    if record["status"] == "kept":
        _write_json(tmp_dir / "meta.json", record)
        os.replace(tmp_dir, final)
    else:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    _write_json(out_dir / "records" / f"{cid}.json", record)
    return record


def _worker(args) -> dict:
    import torch

    torch.set_num_threads(1)
    return prepare_clip(*args)


def load_manifest(out_dir: str | os.PathLike) -> dict:
    """Read ``out_dir/manifest.json``.

    Raises:
        FileNotFoundError: no manifest (run :func:`prepare_dataset` first).
    """
    path = Path(out_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"dataset manifest not found: {path} (run python -m flap.data.prepare)")
    return json.loads(path.read_text())


_RUN_ONLY = ("workers",)  # settings that may change between runs on the same folder


def _check_same_settings(out: Path, cfg: PrepareConfig) -> None:
    """Refuse to resume a folder prepared with other settings (its clips would be mixed)."""
    path = out / "manifest.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text()).get("config", {})
    new = json.loads(json.dumps(asdict(cfg), default=str))
    diff = {k: (old.get(k), v) for k, v in new.items() if k not in _RUN_ONLY and k in old and old[k] != v}
    if diff:
        raise ValueError(
            f"prepare: {out} was prepared with other settings {{name: (before, now)}} = {diff}; "
            "use a new output folder"
        )


def prepare_dataset(input_dir: str | os.PathLike, output_dir: str | os.PathLike,
                    cfg: PrepareConfig | None = None) -> dict:
    """Prepare every video under ``input_dir`` into ``output_dir`` (see the module docstring).

    Returns:
        The manifest dict: ``{"config", "clips": [record...], "summary", "run": {"processed",
        "skipped"}}``; ``run.processed == 0`` on a finished folder.

    Raises:
        FileNotFoundError: ``input_dir`` missing.
        ValueError: ``output_dir`` equals ``input_dir``, two videos map to one clip id, or
            ``output_dir`` was prepared with other settings (``workers`` may differ).
    """
    cfg = cfg or PrepareConfig()
    root, out = Path(input_dir).resolve(), Path(output_dir).resolve()
    if out == root:
        raise UsageError(f"prepare: output folder {out} must differ from the input folder")
    videos = [v for v in find_videos(root) if out not in v.parents]
    ids = [clip_id_for(v, root) for v in videos]
    if len(set(ids)) != len(ids):
        raise InputError(f"prepare: two videos under {root} map to the same clip id (same path without suffix)")
    _check_same_settings(out, cfg)
    (out / "records").mkdir(parents=True, exist_ok=True)
    for stale in (out / "clips").glob(".tmp-*") if (out / "clips").is_dir() else []:
        shutil.rmtree(stale, ignore_errors=True)
    todo = [v for v, cid in zip(videos, ids) if not (out / "records" / f"{cid}.json").is_file()]
    log.info("prepare: %d videos, %d already done, %d to do", len(videos), len(videos) - len(todo), len(todo))

    jobs = [(v, root, out, cfg) for v in todo]
    if cfg.workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            rec = prepare_clip(*job)
            log.info("%s: %s %s", rec["clip_id"], rec["status"], rec.get("reason", ""))
    elif jobs:
        with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=get_context("spawn")) as pool:
            for fut in as_completed([pool.submit(_worker, job) for job in jobs]):
                rec = fut.result()
                log.info("%s: %s %s", rec["clip_id"], rec["status"], rec.get("reason", ""))

    records = [json.loads((out / "records" / f"{cid}.json").read_text()) for cid in ids]
    summary = {s: sum(r["status"] == s for r in records) for s in ("kept", "dropped", "error")}
    manifest = {"config": asdict(cfg), "input_dir": str(root), "clips": records, "summary": summary,
                "run": {"processed": len(todo), "skipped": len(videos) - len(todo)}}
    _write_json(out / "manifest.json", manifest)
    return manifest


def main(argv: list[str] | None = None) -> dict:
    """Command line entry point (``python -m flap.data.prepare -h``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input_dir")
    p.add_argument("output_dir")
    d = PrepareConfig()
    for name in ("size", "fps", "sample_rate", "crop_scale", "smooth_sigma", "min_face_fraction", "min_frames",
                 "hand_model", "hand_prompt", "hand_threshold", "hand_every", "tracker", "workers"):
        default = getattr(d, name)
        p.add_argument("--" + name.replace("_", "-"), type=type(default) if default is not None else str,
                       default=default)
    args = vars(p.parse_args(argv))
    from flap.cli_support import run_command

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = PrepareConfig(**{k: v for k, v in args.items() if k not in ("input_dir", "output_dir")})
    manifest = run_command("flap.data.prepare", prepare_dataset, args["input_dir"], args["output_dir"], cfg)
    print(json.dumps({"summary": manifest["summary"], "run": manifest["run"]}))
    return manifest


if __name__ == "__main__":
    main(sys.argv[1:])
