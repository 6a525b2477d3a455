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
from omegaconf import DictConfig

from flap.cli_support import check_overrides, run_command
from flap.errors import InputNotFoundError

__all__ = ["generate", "resolve_path", "main", "PROJECT_ROOT"]

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def resolve_path(value: str | None, what: str, must_exist: bool = True) -> Path | None:
    """A path from the config: as given if it exists (relative to the current folder), else relative
    to the project root (so the bundled defaults work from anywhere).

    Raises:
        flap.errors.InputNotFoundError (a FileNotFoundError): ``must_exist`` and neither location
            exists (names the key ``what``).
    """
    if value is None:
        return None
    path = Path(os.path.expanduser(str(value)))
    if path.exists() or path.is_absolute():
        if must_exist and not path.exists():
            raise InputNotFoundError(f"{what}={value}: no such file or folder")
        return path
    alt = PROJECT_ROOT / path
    if alt.exists():
        return alt
    if must_exist:
        raise InputNotFoundError(f"{what}={value}: no such file or folder (looked in {Path.cwd()} and {PROJECT_ROOT})")
    return path


def generate(cfg: DictConfig, run_dir: str | os.PathLike | None = None) -> dict:
    """Run generation for a composed ``flap/conf/generate.yaml`` config.

    Args:
        cfg: the config (see ``flap/conf/generate.yaml`` for the keys).
        run_dir: folder of the default output (Hydra's run directory); default ``outputs/generate``.

    Returns:
        ``{"video": Path, "coeffs": Path, "num_frames": T, "fps": fps, "seconds": wall time}``.

    Raises:
        flap.errors.FlapError (FileNotFoundError / ValueError): bad input, checked before any model
            is loaded by :func:`flap.generate_io.check_generate_config`; nothing is written.
    """

    from flap.generate_io import check_generate_config, write_outputs

    start = time.perf_counter()
    args = check_generate_config(cfg, run_dir, resolve_path)  # every input checked before any model loads
    import torch

    from flap.pipeline import FLAPPipeline
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = FLAPPipeline.from_pretrained(args.checkpoint, torch_dtype=args.dtype, device=args.device)
    # video-driven mode uses the driving video's own audio (speech + motion of another video:
    # audio=... pose_from=clip.mp4 expression_from=clip.mp4)
    portrait, final, speech = pipe.prepare(
        args.image, audio=args.audio, coeffs=args.coeffs, driving_video=args.driving_video,
        controls=args.controls, fps=args.fps, num_frames=args.num_frames,
    )
    log.info("generating %d frames (%.2f s at %g fps) from %s", final.num_frames, final.duration, final.fps, args.image)
    generator = torch.Generator().manual_seed(args.seed)
    frames = pipe.iter_frames(
        portrait, final, num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance_scale,
        window=args.window, overlap=args.overlap, generator=generator, paste=args.paste,
        progress=args.progress, strength=args.strength, expression_guidance_scale=args.expression_guidance_scale,
    )
    write_outputs(args.out, args.coeffs_out, frames, final, speech, final.fps, inputs=args.inputs)
    out, coeffs_out = args.out, args.coeffs_out
    seconds = time.perf_counter() - start
    return {"video": out, "coeffs": coeffs_out, "num_frames": final.num_frames, "fps": final.fps, "seconds": seconds}


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
def _hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    run_dir = HydraConfig.get().runtime.output_dir
    result = run_command("flap.generate", generate, cfg, run_dir=run_dir, hydra_run_dir=run_dir)
    print(f"wrote {result['video']} ({result['num_frames']} frames at {result['fps']:g} fps, "
          f"{result['seconds']:.0f} s) and {result['coeffs']}")


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (``python -m flap.generate``); see the module docstring."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    check_overrides("flap.generate")
    _hydra_main()


if __name__ == "__main__":
    main()
