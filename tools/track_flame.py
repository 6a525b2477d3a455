"""FLAME tracking command line: ``python tools/track_flame.py video=clip.mp4 [out=...] [overlay=true]``.

Hydra tool configured by ``flap/conf/track.yaml`` (``--help`` lists every key). The Python equivalent is
:func:`flap.tracking.track_video`. Exit status 1 with a one-line message for bad input (unreadable
or non-video file, no face), without writing anything.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flap.cli_support import run_command  # noqa: E402 - before Hydra makes its run folder (see run_command)

log = logging.getLogger("track_flame")


def run(cfg: DictConfig) -> dict:
    """Track ``cfg.video`` and write the outputs; returns a summary dict (paths, frames, fps, errors)."""
    from flap.tracking import FlameTracker, track_video

    torch.set_num_threads(int(cfg.threads))
    video = Path(to_absolute_path(cfg.video))
    if cfg.out is None:
        out = Path(HydraConfig.get().runtime.output_dir) / f"{video.stem}.coeffs.npz"
    else:
        out = Path(to_absolute_path(cfg.out))
    overlay = cfg.overlay
    if isinstance(overlay, str):
        overlay = Path(to_absolute_path(overlay))
    fit = instantiate(cfg.fit)
    model_path = None if cfg.model_path is None else to_absolute_path(cfg.model_path)
    tracker = FlameTracker(model=model_path, fit=fit, **OmegaConf.to_container(cfg.tracker))
    result = track_video(video, out, overlay=overlay or None, max_frames=cfg.max_frames, tracker=tracker)
    summary = {
        "coeffs": str(out),
        "frames": len(result),
        "fps": result.fps,
        "valid_frames": int(result.valid.sum()),
        "mean_error_px": float(result.error_px[result.valid].mean()),
        "model": result.model_path,
    }
    if cfg.strip:
        from flap.tracking.tracker import overlay_strip, save_png

        strip = Path(to_absolute_path(cfg.strip))
        save_png(strip, overlay_strip(video, result, tracker.model, num=int(cfg.strip_frames)))
        summary["strip"] = str(strip)
    if overlay:
        summary["overlay"] = str(overlay if overlay is not True else out.with_name(out.stem + ".overlay.mp4"))
    return summary


@hydra.main(config_path="../flap/conf", config_name="track", version_base="1.3")
def main(cfg: DictConfig) -> None:
    summary = run_command("track_flame", run, cfg, hydra_run_dir=HydraConfig.get().runtime.output_dir)
    for key, value in summary.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
