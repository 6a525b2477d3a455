"""The web studio's handlers: plain Python functions and one :class:`Studio` object, no Gradio.

Every button and every motion edit of the page (:mod:`flap.app.ui`) calls one method of
:class:`Studio`, which can be used (and is tested) without a browser::

    studio = Studio("outputs/app")
    inputs = StudioInputs(portrait="assets/demo/portrait.png", speech="assets/demo/speech.wav",
                          checkpoint=studio.checkpoints()[0])
    rows, mode, repeat = table_from_script("nod")
    motion = MotionSettings(rows=rows, mode=mode, repeat=repeat, blinks_per_minute=12)
    preview = studio.preview(inputs, motion)           # mesh video + plot, seconds on a CPU
    result = studio.generate(inputs, motion, SamplingSettings(num_inference_steps=4))

Data flow (docs/DESIGN.md): speech → Audio2Flame (or driving video → tracker) → HeadCoeffs → controls
(pose table as a pose script, blink rate, jaw scale, expression from another video) → the final
coefficients; the preview renders them as a FLAME mesh video, generation hands exactly these
coefficients to :class:`flap.pipeline.FLAPPipeline`, so the video follows the previewed motion.

Files: everything is written inside ``output_dir`` (``previews/<id>/`` and ``runs/<id>/``), never
next to the inputs. Bad input raises ``ValueError`` / ``FileNotFoundError`` with one line naming
the input, as the command line does.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flap.app.motion import has_keyframes, plot_motion, script_from_table, script_yaml
from flap.control import ControlConfig, PoseScript, apply_controls, fit_length
from flap.flame.coeffs import DEFAULT_FPS, HeadCoeffs

__all__ = [
    "GenerationResult",
    "MotionSettings",
    "PreviewResult",
    "SamplingSettings",
    "Studio",
    "StudioInputs",
    "find_checkpoints",
    "PROJECT_ROOT",
]

log = logging.getLogger(__name__)

#: Repository root (where ``checkpoints/`` and ``assets/demo/`` live in a source checkout).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_RATE = 16000
#: Preview frames (pixels) and how many preview folders are kept.
PREVIEW_SIZE = (192, 192)
KEEP_PREVIEWS = 20
#: Coefficient files accepted where a video is (already tracked, e.g. by ``tools/track_flame.py``).
COEFF_SUFFIXES = (".npz", ".safetensors")


@dataclass
class StudioInputs:
    """What the video is made from (the page's "Inputs" box).

    Attributes:
        portrait: image path (one visible face); needed to generate, not to preview.
        speech: speech path (any format FFmpeg reads; a microphone recording is a wav) or ``None``.
        driving_video: talking-head video whose tracked motion and own audio drive the result
            (video-driven mode; ``speech`` is then ignored) or ``None``.
        checkpoint: a local pipeline folder, one of :meth:`Studio.checkpoints`.
    """

    portrait: str | None = None
    speech: str | None = None
    driving_video: str | None = None
    checkpoint: str | None = None


@dataclass
class MotionSettings:
    """The page's "Motion" box.

    Attributes:
        rows: keyframe table rows ``[t (s), pitch, yaw, roll (degrees), easing]``
            (:func:`flap.app.motion.script_from_table`); empty = keep the generated head motion.
        mode: ``replace`` / ``overlay`` / ``fixed`` (:func:`flap.control.apply_pose`).
        repeat: loop the keyframes.
        blinks_per_minute: blink rate (≥ 0; 0 = no blinks), ``None`` = the source's eyelids.
        jaw_scale: jaw-opening multiplier (≥ 0, 1 = as generated).
        expression_video: take the expression (eyes, jaw, eyelids, ψ) from this video (tracked) or
            ``.npz`` coefficient file; ``None`` = from the speech / driving video.
        seconds: clip length in seconds; ``None`` = the whole speech / driving video (or the
            keyframes' span without either).
        seed: seed of Audio2Flame's sampled head motion and of the blink timing (the page passes its
            one "Seed", which also seeds the diffusion noise, as ``flap.generate seed=`` does), so the
            preview shows exactly the motion that generation will use.
    """

    rows: Sequence[Sequence] = ()
    mode: str = "overlay"
    repeat: bool = False
    blinks_per_minute: float | None = 12.0
    jaw_scale: float = 1.0
    expression_video: str | None = None
    seconds: float | None = None
    seed: int = 0


@dataclass
class SamplingSettings:
    """The page's "Advanced" box (defaults = the ``flap.generate`` command's)."""

    num_inference_steps: int = 12
    guidance_scale: float = 2.0
    strength: float = 1.0
    seed: int = 0
    paste: bool = True


@dataclass
class PreviewResult:
    """Mesh video (``.mp4``, with the speech), motion plot (``.png``) and pose script (``.yaml``)."""

    video: Path
    plot: Path
    script: Path | None
    coeffs: HeadCoeffs
    summary: str


@dataclass
class GenerationResult:
    """Generated video (``.mp4``), its coefficients (``.coeffs.npz``) and pose script (``.yaml``)."""

    video: Path
    coeffs: Path
    script: Path | None
    num_frames: int
    fps: float
    seconds: float
    summary: str


def find_checkpoints(roots: Sequence[str | os.PathLike]) -> list[str]:
    """Local pipeline folders (holding ``model_index.json``) in ``roots`` and their direct sub-folders."""
    found: list[str] = []
    for root in roots:
        root = Path(root).expanduser()
        candidates = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
        for folder in candidates:
            if (folder / "model_index.json").is_file() and str(folder) not in found:
                found.append(str(folder))
    return found


def _file_key(path: str | os.PathLike) -> tuple:
    st = os.stat(path)
    return (str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def _existing(path: str | None, what: str) -> str | None:
    if path is None or str(path) == "":
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} {str(path)!r}: no such file")
    return str(path)


@dataclass
class Studio:
    """State of one app process: output folder, local checkpoints, loaded pipelines, caches.

    Args:
        output_dir: the only folder the studio writes to (created).
        checkpoint_roots: folders searched for pipeline folders (default ``checkpoints/`` of the
            project and of the current folder).
        device: torch device of the networks (``"auto"`` = CUDA if available, else CPU).
        fps: frame rate of previews and videos (frames/s).
    """

    output_dir: str | os.PathLike = "outputs/app"
    checkpoint_roots: Sequence[str | os.PathLike] = ()
    device: str = "auto"
    fps: float = DEFAULT_FPS
    _pipes: dict = field(default_factory=dict, init=False, repr=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _counter: itertools.count = field(default_factory=itertools.count, init=False, repr=False)

    def __post_init__(self):
        self.output_dir = Path(self.output_dir).resolve()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if not self.checkpoint_roots:
            self.checkpoint_roots = [PROJECT_ROOT / "checkpoints", Path.cwd() / "checkpoints"]

    # ------------------------------------------------------------------ models
    def checkpoints(self) -> list[str]:
        """Local pipeline folders the page offers (``model_index.json`` inside)."""
        return find_checkpoints(self.checkpoint_roots)

    def default_checkpoint(self) -> str | None:
        """The checkpoint the page selects first: the bundled demo's (``checkpoint`` of
        ``flap/conf/generate.yaml``, as ``python -m flap.generate`` uses) when offered, else the first
        found, else ``None``."""
        from omegaconf import OmegaConf

        from flap import CONFIG_DIR
        from flap.generate import resolve_path

        choices = self.checkpoints()
        demo = resolve_path(OmegaConf.load(CONFIG_DIR / "generate.yaml").checkpoint, "checkpoint", must_exist=False)
        return next((c for c in choices if Path(c).resolve() == demo.resolve()), choices[0] if choices else None)

    def pipeline(self, checkpoint: str | None):
        """The loaded :class:`~flap.pipeline.FLAPPipeline` of ``checkpoint`` (loaded once, then cached).

        Raises:
            ValueError: no checkpoint chosen, or one not among :meth:`checkpoints`.
        """
        choices = self.checkpoints()
        if not checkpoint:
            raise ValueError("checkpoint: none chosen (expected one of: " + (", ".join(choices) or
                             "none found; put a pipeline folder under checkpoints/") + ")")
        if str(checkpoint) not in choices:
            raise ValueError(f"checkpoint {checkpoint!r}: not a local pipeline folder offered by the app "
                             f"(expected one of: {', '.join(choices) or 'none'})")
        with self._lock:
            if checkpoint not in self._pipes:
                import torch

                from flap.pipeline import FLAPPipeline

                device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
                self._pipes.clear()  # one model in memory at a time
                self._pipes[checkpoint] = FLAPPipeline.from_pretrained(checkpoint, device=device)
            return self._pipes[checkpoint]

    # ------------------------------------------------------------------ coefficients
    def _cached(self, key: tuple, make: Callable):
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = make()
        with self._lock:
            if len(self._cache) > 16:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = value
        return value

    def _speech(self, inputs: StudioInputs, seconds: float | None) -> np.ndarray | None:
        """Speech samples ``float32 (N,)`` at 16 kHz (the driving video's own track in video-driven mode)."""
        driving = _existing(inputs.driving_video, "driving video")
        if driving is not None:
            from flap.io import probe_video, read_audio_track

            if Path(driving).suffix.lower() in COEFF_SUFFIXES or not probe_video(driving).has_audio:
                return None
            speech = self._cached(("track-audio", _file_key(driving)),
                                  lambda: read_audio_track(driving, sample_rate=SAMPLE_RATE))
        else:
            path = _existing(inputs.speech, "speech")
            if path is None:
                return None
            from flap.audio.io import load_audio

            speech = self._cached(("audio", _file_key(path)), lambda: load_audio(path))
        speech = np.asarray(speech, dtype=np.float32).reshape(-1)
        if seconds is not None:
            speech = speech[: int(round(seconds * SAMPLE_RATE))]
        return speech

    def motion_coeffs(self, inputs: StudioInputs, motion: MotionSettings) -> tuple[HeadCoeffs, np.ndarray | None,
                                                                                   PoseScript | None]:
        """The final coefficients (what the preview shows and generation uses).

        Returns:
            ``(coeffs (T, 120) at self.fps, speech float32 (N,) at 16 kHz trimmed to T / fps or None,
            pose script or None)``.

        Raises:
            ValueError, FileNotFoundError: bad table row, bad scale/rate, missing or unreadable file.
        """
        script = script_from_table(motion.rows, motion.mode, motion.repeat) if has_keyframes(motion.rows) else None
        seconds = _seconds(motion.seconds)
        seed = int(_number(motion.seed, "seed", 0))
        config = ControlConfig(pose=script, jaw_scale=_number(motion.jaw_scale, "jaw scale", 0.0), seed=seed,
                               blinks_per_minute=None if motion.blinks_per_minute is None
                               else _number(motion.blinks_per_minute, "blink rate", 0.0))
        expression = _existing(motion.expression_video, "expression video")
        if expression is not None:
            config.expression_from = self._tracked(expression, seconds)
        speech = self._speech(inputs, seconds)
        driving = _existing(inputs.driving_video, "driving video")
        fps = self.fps
        if driving is not None:
            tracked = self._tracked(driving, seconds)
            num_frames = max(1, round((seconds if seconds is not None else tracked.duration) * fps))
            base = fit_length(tracked, num_frames, fps)
        elif speech is not None:
            pipe = self.pipeline(inputs.checkpoint)
            num_frames = max(1, round(len(speech) / SAMPLE_RATE * fps))
            key = ("a2f", inputs.checkpoint, _file_key(inputs.speech), num_frames, seed)
            base = self._cached(key, lambda: pipe.coefficients(speech, fps=fps, num_frames=num_frames, seed=seed))
        else:  # no speech: the motion alone, on a neutral face
            span = script.duration(fps) if script is not None else 2.0
            num_frames = max(1, round(seconds * fps) if seconds is not None else math.ceil(span * fps - 1e-9) + 1)
            base = HeadCoeffs.neutral(num_frames, fps)
        final = apply_controls(base, config)
        if speech is not None:
            n = int(round(final.num_frames / fps * SAMPLE_RATE))
            speech = np.pad(speech[:n], (0, max(0, n - len(speech))))
        return final, speech, script

    def _tracked(self, path: str, seconds: float | None) -> HeadCoeffs:
        """FLAME coefficients of a video (tracked once, cached; only the first ``seconds`` if given) or of a
        ``.npz`` / ``.safetensors`` coefficient file."""
        from flap.control.sources import load_coeffs

        max_frames = None
        if seconds is not None and Path(path).suffix.lower() not in COEFF_SUFFIXES:
            from flap.io import probe_video

            max_frames = math.ceil(seconds * probe_video(path).fps) + 1
        return self._cached(("track", _file_key(path), max_frames),
                            lambda: load_coeffs(path, max_frames=max_frames, name="driving video"))

    # ------------------------------------------------------------------ outputs
    def _new_folder(self, kind: str) -> Path:
        folder = self.output_dir / kind / f"{time.strftime('%Y%m%d-%H%M%S')}-{next(self._counter):03d}"
        folder.mkdir(parents=True, exist_ok=False)
        return folder

    def _prune(self, kind: str, keep: int) -> None:
        folders = sorted((self.output_dir / kind).iterdir(), key=lambda p: p.stat().st_mtime)
        for old in folders[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    def preview(self, inputs: StudioInputs, motion: MotionSettings) -> PreviewResult:
        """Render the final coefficients as a FLAME mesh video (with the speech) and plot pitch / yaw / roll / jaw.

        No diffusion: takes seconds on a CPU (Audio2Flame and tracking results are cached).

        Raises:
            ValueError, FileNotFoundError: as :meth:`motion_coeffs`.
        """
        from flap.control.preview import write_preview

        final, speech, script = self.motion_coeffs(inputs, motion)
        folder = self._new_folder("previews")
        try:
            video = write_preview(folder / "preview.mp4", final, model=self._flame(), size=PREVIEW_SIZE,
                                  audio=speech, sample_rate=SAMPLE_RATE)
            plot = plot_motion(final, folder / "motion.png", script)
            script_path = _write_script(folder / "pose.yaml", script)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._prune("previews", KEEP_PREVIEWS)
        pose = final.pose_degrees()
        summary = (f"{final.num_frames} frames ({final.duration:.2f} s at {final.fps:g} fps); pitch "
                   f"{pose[:, 0].min():+.0f}…{pose[:, 0].max():+.0f}°, yaw {pose[:, 1].min():+.0f}…"
                   f"{pose[:, 1].max():+.0f}°, roll {pose[:, 2].min():+.0f}…{pose[:, 2].max():+.0f}°")
        return PreviewResult(video=video, plot=plot, script=script_path, coeffs=final, summary=summary)

    def _flame(self):
        def make():
            from flap.flame.model import FlameModel

            return FlameModel()

        return self._cached(("flame",), make)

    def generate(self, inputs: StudioInputs, motion: MotionSettings, sampling: SamplingSettings,
                 progress: Callable[..., object] | None = None) -> GenerationResult:
        """Run the pipeline on the previewed coefficients; write the mp4, ``.coeffs.npz`` and ``pose.yaml``.

        Args:
            progress: optional ``progress(fraction, desc=...)`` called between stages (the
                denoising loop reports windows × steps through its tqdm bar).

        Raises:
            ValueError, FileNotFoundError: no portrait, not an image, no face, bad settings, plus
                everything :meth:`motion_coeffs` raises. Nothing is left in the output folder then.
        """
        import torch

        from flap.io import write_video
        from flap.portrait import load_portrait

        start = time.perf_counter()
        portrait = _existing(inputs.portrait, "portrait")
        if portrait is None:
            raise ValueError("portrait: none given (upload an image with one visible face)")
        load_portrait(portrait)  # not an image: fail before any model work
        if inputs.driving_video is None and inputs.speech is None:
            raise ValueError("speech: none given (upload or record speech, or give a driving video)")
        steps = int(_number(sampling.num_inference_steps, "steps", 1))
        strength = _number(sampling.strength, "strength", 0.0)
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength: expected a number in (0, 1], got {strength:g}")
        guidance = _number(sampling.guidance_scale, "guidance", 0.0)
        seed = int(_number(sampling.seed, "seed", 0))
        _report(progress, 0.0, "motion")
        final, speech, script = self.motion_coeffs(inputs, motion)
        pipe = self.pipeline(inputs.checkpoint)
        _report(progress, 0.05, "portrait")
        out = pipe(portrait, audio=speech, coeffs=final, num_frames=final.num_frames, fps=final.fps,
                   num_inference_steps=steps, guidance_scale=guidance, strength=strength,
                   generator=torch.Generator().manual_seed(seed), paste=bool(sampling.paste), progress=True)
        _report(progress, 0.98, "writing video")
        folder = self._new_folder("runs")
        stem = Path(portrait).stem
        try:
            video = write_video(folder / f"{stem}.mp4", out.frames, out.fps, audio=out.audio,
                                sample_rate=out.sample_rate, inputs=[portrait])
            coeffs = out.coeffs.save(folder / f"{stem}.coeffs.npz")
            script_path = _write_script(folder / "pose.yaml", script)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        seconds = time.perf_counter() - start
        summary = (f"{len(out.frames)} frames ({len(out.frames) / out.fps:.2f} s at {out.fps:g} fps), "
                   f"{steps} steps, guidance {guidance:g}, strength {strength:g}, seed {seed}: {seconds:.0f} s")
        return GenerationResult(video=video, coeffs=coeffs, script=script_path, num_frames=len(out.frames),
                                fps=out.fps, seconds=seconds, summary=summary)


def _report(progress, fraction: float, desc: str) -> None:
    if progress is not None:
        progress(fraction, desc=desc)


def _write_script(path: Path, script: PoseScript | None) -> Path | None:
    if script is None:
        return None
    path.write_text(script_yaml(script), encoding="utf-8")
    return path


def _number(value, what: str, minimum: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a number >= {minimum:g}, got {value!r}") from None
    if not math.isfinite(number) or number < minimum:
        raise ValueError(f"{what}: expected a number >= {minimum:g}, got {value!r}")
    return number


def _seconds(value) -> float | None:
    """Clip length: ``None`` / 0 / blank = whole input; else seconds > 0."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    seconds = _number(value, "length (s)", 0.0)
    return None if seconds == 0 else seconds
