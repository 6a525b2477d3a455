"""Generation command: ``python -m flap.generate [key=value ...]`` (Hydra, ``flap/conf/generate.yaml``).

With no arguments it renders the bundled demo (``assets/demo`` portrait and speech with the
``checkpoints/flap_tiny_demo`` models). Writes an H.264 mp4 with the speech as AAC, atomically,
and the coefficients it used beside it (``<out stem>.coeffs.npz``, :class:`~flap.flame.HeadCoeffs`).

``pose=`` accepts a bundled script name (``nod`` or ``nod.yaml``, see ``flap/control/poses/``) or any
path (``pose=/abs/custom.yaml``); ``audio=`` names the speech. The keys are the argument names of
:class:`~flap.pipeline.FLAPPipeline` and :class:`~flap.control.ControlConfig`. Bad input (missing or
unreadable image, no face, missing checkpoint, bad pose script or audio) stops with a one-line
error naming the file and exit status 1, and leaves no output file.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from flap.io.formats import SAMPLE_RATE
from flap.io.runtime import resolve_device

__all__ = ["generate", "resolve_path", "main", "PROJECT_ROOT"]

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def resolve_path(value: str | None, what: str, must_exist: bool = True) -> Path | None:
    """A path from the config: as given if it exists (relative to the current folder), else relative
    to the project root (so the bundled defaults work from anywhere).

    Raises:
        FileNotFoundError: ``must_exist`` and neither location exists (names the key ``what``).
    """
    if value is None:
        return None
    path = Path(os.path.expanduser(str(value)))
    if path.exists() or path.is_absolute():
        if must_exist and not path.exists():
            raise FileNotFoundError(f"{what}={value}: no such file or folder")
        return path
    alt = PROJECT_ROOT / path
    if alt.exists():
        return alt
    if must_exist:
        raise FileNotFoundError(f"{what}={value}: no such file or folder (looked in {Path.cwd()} and {PROJECT_ROOT})")
    return path


def _controls(cfg: DictConfig) -> dict:
    from flap.control import CONTROL_KEYS  # deferred like torch below: `--help` answers without them

    plain = OmegaConf.to_container(cfg, resolve=True)
    controls = {k: plain[k] for k in CONTROL_KEYS if k in plain}
    controls["seed"] = int(cfg.seed)
    for key in ("pose_from", "expression_from"):
        if isinstance(controls.get(key), str) and controls[key] not in ("audio", "input", "none"):
            controls[key] = str(resolve_path(controls[key], key))
    return controls


def generate(cfg: DictConfig, run_dir: str | os.PathLike | None = None) -> dict:
    """Run generation for a composed ``flap/conf/generate.yaml`` config.

    Args:
        cfg: the config (see ``flap/conf/generate.yaml`` for the keys).
        run_dir: folder of the default output (Hydra's run directory); default ``outputs/generate``.

    Returns:
        ``{"video": Path, "coeffs": Path, "num_frames": T, "fps": fps, "seconds": wall time}``.

    Raises:
        FileNotFoundError, ValueError: bad input (see the module docstring); nothing is written.
    """
    # torch, diffusers and the pipeline are imported here, not at the top, so that `--help` and
    # config errors answer in a fraction of a second
    import torch

    from flap.io import write_video
    from flap.pipeline import FLAPPipeline

    start = time.perf_counter()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    image = resolve_path(cfg.image, "image")
    driving = resolve_path(cfg.get("driving_video"), "driving_video")
    # video-driven mode uses the driving video's own audio (speech + motion of another video:
    # audio=... pose_from=clip.mp4 expression_from=clip.mp4)
    audio = None if driving is not None else resolve_path(cfg.get("audio"), "audio")
    coeffs = resolve_path(cfg.get("coeffs"), "coeffs")
    checkpoint = resolve_path(cfg.checkpoint, "checkpoint", must_exist=False)
    if cfg.out is None:
        out = Path(run_dir or "outputs/generate") / f"{Path(image).stem}.mp4"
    else:
        out = Path(cfg.out)
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"out={out}: expected a .mp4 path")
    coeffs_out = out.with_name(f"{out.stem}.coeffs.npz")
    inputs = [p for p in (image, audio, driving, coeffs) if p is not None]

    device = resolve_device(cfg.device)
    pipe = FLAPPipeline.from_pretrained(checkpoint, torch_dtype=str(cfg.dtype), device=device)
    portrait, final, speech = pipe.prepare(
        image, audio=audio, coeffs=coeffs, driving_video=driving, controls=_controls(cfg),
        fps=float(cfg.fps), num_frames=cfg.get("num_frames"),
    )
    log.info("generating %d frames (%.2f s at %g fps) from %s", final.num_frames, final.duration, final.fps, image)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    frames = pipe.iter_frames(
        portrait, final, num_inference_steps=int(cfg.num_inference_steps), guidance_scale=float(cfg.guidance_scale),
        window=int(cfg.window), overlap=int(cfg.overlap), generator=generator, paste=bool(cfg.paste),
        progress=bool(cfg.progress), strength=float(cfg.get("strength", 1.0)),
    )
    write_video(out, frames, final.fps, audio=speech, sample_rate=SAMPLE_RATE, inputs=inputs)
    try:
        final.save(coeffs_out)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - start
    return {"video": out, "coeffs": coeffs_out, "num_frames": final.num_frames, "fps": final.fps, "seconds": seconds}


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
def _hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    try:
        result = generate(cfg, run_dir=HydraConfig.get().runtime.output_dir)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise SystemExit(f"flap.generate: error: {exc}") from None
    print(f"wrote {result['video']} ({result['num_frames']} frames at {result['fps']:g} fps, "
          f"{result['seconds']:.0f} s) and {result['coeffs']}")


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (``python -m flap.generate``); see the module docstring."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    _hydra_main()


if __name__ == "__main__":
    main()
