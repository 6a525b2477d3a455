"""Inputs and outputs of ``flap.generate``: every argument checked before any model is loaded,
and the video + coefficient files written all-or-nothing.

:func:`check_generate_config` validates numbers, device, paths and file contents (portrait
decodes and is big enough, audio decodes and is complete, coefficient files and pose scripts are
valid, the checkpoint's files are complete) and the output path (writable, not a folder, not an
input), in about a second, so a bad argument never costs a checkpoint load or a denoising run.
:func:`write_outputs` writes the video to a hidden temporary file, then the coefficients, and
only then renames the video into place: a failure anywhere leaves every existing file as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flap.errors import OutputError, UsageError
from flap.io.atomic import remove_stale_temps
from flap.validate import check_bool, check_choice, check_device, check_float, check_int, check_output_path

__all__ = ["GenerateInputs", "check_generate_config", "write_outputs"]

DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class GenerateInputs:
    """Checked generation settings (paths resolved, files read once, numbers typed)."""

    image: Path
    checkpoint: Path
    out: Path
    coeffs_out: Path
    device: Any
    dtype: str
    num_inference_steps: int
    guidance_scale: float
    expression_guidance_scale: float | None
    strength: float
    seed: int
    fps: float
    num_frames: int | None
    window: int
    overlap: int
    paste: bool
    progress: bool
    threads: int | None
    audio: np.ndarray | None = None
    driving_video: Path | None = None
    coeffs: Any = None
    controls: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)


def check_generate_config(cfg, run_dir: str | os.PathLike | None, resolve_path) -> GenerateInputs:
    """Check a composed ``conf/generate.yaml`` config completely, loading no model.

    Args:
        cfg: the config.
        run_dir: folder of the default output (Hydra's run folder).
        resolve_path: ``(value, key) -> Path`` (``flap.generate.resolve_path``; raises for a missing path).

    Raises:
        flap.errors.UsageError: a number, flag, choice or device of the wrong type or range (names the key).
        flap.errors.InputNotFoundError / InputError: a missing or unusable input file (names the key and file).
        flap.errors.OutputError: ``out`` cannot be written (a folder, parent is a file, not writable, an input).
    """
    get = cfg.get
    # ---- numbers, flags, choices (no import of torch or the models: milliseconds)
    steps = check_int(get("num_inference_steps"), "num_inference_steps", 1)
    window = check_int(get("window"), "window", 1)
    overlap = check_int(get("overlap"), "overlap", 0)
    if overlap >= window:
        raise UsageError(f"overlap={overlap}: expected 0 <= overlap < window (window={window})")
    values = dict(
        num_inference_steps=steps,
        guidance_scale=check_float(get("guidance_scale"), "guidance_scale", 0.0),
        expression_guidance_scale=check_float(get("expression_guidance_scale"), "expression_guidance_scale",
                                              0.0, allow_none=True),
        strength=check_float(get("strength", 1.0), "strength", 0.0, 1.0, open_min=True),
        seed=check_int(get("seed"), "seed", 0),
        fps=check_float(get("fps"), "fps", 0.0, 1000.0, open_min=True),
        num_frames=check_int(get("num_frames"), "num_frames", 1, allow_none=True),
        window=window,
        overlap=overlap,
        paste=check_bool(get("paste"), "paste"),
        progress=check_bool(get("progress"), "progress"),
        threads=check_int(get("threads"), "threads", 1, allow_none=True),
        dtype=check_choice(str(get("dtype")), "dtype", DTYPES),
    )
    for key in ("expression_scale", "jaw_scale", "pose_scale", "eyelid_scale"):
        check_float(get(key, 1.0), key, 0.0)
    check_float(get("blinks_per_minute"), "blinks_per_minute", 0.0, allow_none=True)
    check_choice(get("extend", "hold"), "extend", ("hold", "loop"))
    check_choice(get("eyelids", "auto"), "eyelids", ("auto", "audio", "blinks"))
    values["device"] = check_device(get("device"))

    # ---- paths exist; the output can be written (before reading any file)
    image = resolve_path(get("image"), "image")
    driving = resolve_path(get("driving_video"), "driving_video")
    audio_path = None if driving is not None else resolve_path(get("audio"), "audio")
    coeffs_path = resolve_path(get("coeffs"), "coeffs")
    sources = {k: resolve_path(v, k) for k in ("pose_from", "expression_from")
               if isinstance(v := get(k), str) and v not in ("audio", "input", "none")}
    checkpoint = resolve_path(get("checkpoint"), "checkpoint")
    out_value = get("out")
    out = Path(run_dir or "outputs/generate") / f"{Path(image).stem}.mp4" if out_value is None else Path(str(out_value))
    coeffs_out = out.with_name(f"{out.stem}.coeffs.npz")
    inputs = [p for p in (image, audio_path, driving, coeffs_path, *sources.values()) if p is not None]
    out = check_output_path(out, "out", (".mp4",), also=(coeffs_out,), inputs=inputs)
    remove_stale_temps(out.parent)  # left by a killed earlier run into this folder
    for src in inputs:
        if coeffs_out.exists() and os.path.samefile(coeffs_out, src):
            raise OutputError(f"out={out_value}: the coefficients would overwrite the input {coeffs_out}")

    # ---- file contents: each read once and handed on
    from flap.control import CONTROL_KEYS
    from flap.models.checkpoint_files import check_pipeline_folder
    from flap.pipeline import FLAPPipeline
    from flap.portrait import check_portrait_image, load_portrait

    check_portrait_image(load_portrait(image), str(image))
    if driving is not None:
        from flap.io import probe_video

        probe_video(driving)
    audio = None
    if audio_path is not None:
        from flap.audio.io import load_audio

        audio = load_audio(audio_path, fps=values["fps"])
    coeffs = None
    if coeffs_path is not None:
        from flap.flame import HeadCoeffs

        coeffs = HeadCoeffs.load(coeffs_path)
    controls = _checked_controls(cfg, CONTROL_KEYS, sources)
    optional = tuple(FLAPPipeline._optional_components)
    required = ("vae", "reference_net", "denoising_net", "scheduler")
    check_pipeline_folder(checkpoint, required=tuple(c for c in required if c not in optional), optional=optional)
    return GenerateInputs(image=image, checkpoint=checkpoint, out=out, coeffs_out=coeffs_out, audio=audio,
                          driving_video=driving, coeffs=coeffs, controls=controls, inputs=inputs, **values)


def _checked_controls(cfg, control_keys, sources: dict) -> dict:
    """Control settings with the pose script and coefficient sources loaded (so they fail now)."""
    from omegaconf import DictConfig, OmegaConf

    from flap.control import load_pose_script
    from flap.control.sources import COEFF_SUFFIXES
    from flap.flame import HeadCoeffs

    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    controls = {k: plain[k] for k in control_keys if k in plain}
    controls["seed"] = int(cfg.get("seed"))
    for key, path in sources.items():
        controls[key] = HeadCoeffs.load(path) if path.suffix.lower() in COEFF_SUFFIXES else str(path)
    if controls.get("pose") is not None:
        controls["pose"] = load_pose_script(controls["pose"])
    return controls


def write_outputs(out: Path, coeffs_out: Path, frames: Iterable[np.ndarray], coeffs, audio, fps: float,
                  inputs: Iterable = ()) -> None:
    """Write the video and its coefficients all-or-nothing (see the module docstring).

    The video is encoded into a hidden temporary file in ``out``'s folder; the coefficients are
    saved (atomically) next; the video is renamed to ``out`` last. An interruption or error at
    any point removes the temporary file and leaves an existing ``out`` untouched.
    """
    from flap.io import write_video
    from flap.io.atomic import atomic_output

    with atomic_output(out, inputs=inputs) as staged:
        write_video(staged, frames, fps, audio=audio, sample_rate=16000, inputs=inputs)
        coeffs.save(coeffs_out)
