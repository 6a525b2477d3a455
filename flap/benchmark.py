"""``python -m flap.benchmark``: self-reenactment and control benchmark of a checkpoint (Hydra).

Examples::

    python -m flap.benchmark                                    # demo checkpoint on ../shared/data
    python -m flap.benchmark checkpoint=my_ckpt clips=data/test_clips portraits=data/portraits
    python -m flap.benchmark max_clips=0 max_portraits=0 max_seconds=0   # everything, no time budget
    python -m flap.benchmark protocols=[reenactment] max_frames=100

Protocols (:mod:`flap.eval.reenactment`, :mod:`flap.eval.control_bench`):

* self-reenactment over ``clips``: rows ``real`` (the clip against itself through the tracker:
  the floor of every error), ``vae`` (the checkpoint's VAE round trip: the ceiling) and the
  checkpoint; PSNR, SSIM, LMD, APD, AED, jaw correlation, dlib identity distance, face rates;
* control over ``portraits``: every bundled pose script and ``blinks_per_minute`` rates; pose error,
  per-axis correlation, blink-count error, identity distance; each run once per ``control.seeds``
  (initial noise, blink timing and Audio2Flame's sampled head motion), the table giving the mean.

Writes to ``out`` (default: Hydra's run directory): ``metrics.json`` (every run, the means, the
settings, wall times, runs left out by the ``max_seconds`` budget), ``table.md`` (printed),
``reenactment.png`` and ``control.png`` (bar charts) and ``reenactment_<clip>.png`` (frame strips
real / vae / generated). Config: ``flap/conf/benchmark.yaml``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from flap.cli_support import check_overrides, run_command, run_output_dir
from flap.errors import InputError
from flap.eval.bench_report import (
    CONTROL_COLUMNS,
    REENACT_COLUMNS,
    markdown_table,
    mean_rows,
    plot_bars,
    save_control_strip,
    save_strip,
    write_text,
)
from flap.eval.report import write_json
from flap.io.formats import SAMPLE_RATE, VIDEO_SUFFIXES

__all__ = ["run", "main", "list_inputs", "control_jobs"]

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def list_inputs(path, suffixes, limit: int, what: str) -> list[Path]:
    """Files of a folder with one of ``suffixes`` (sorted), at most ``limit`` evenly spaced; or one file.

    Raises:
        FileNotFoundError: the path does not exist. ValueError: no matching file (names the folder).
    """
    from flap.generate import resolve_path

    p = resolve_path(str(path), what)
    files = [p] if p.is_file() else sorted(q for q in p.iterdir() if q.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"benchmark: {what}={path}: no file ending in {', '.join(suffixes)}")
    if limit and len(files) > limit:
        idx = np.unique(np.linspace(0, len(files) - 1, limit).round().astype(int))
        files = [files[i] for i in idx]
    return files


def control_jobs(portraits, scripts, rates, grid: bool, seeds=(0,)) -> list[tuple[Path, str, float, int]]:
    """``(portrait, pose script, blinks_per_minute, seed)`` runs: every script × every rate when ``grid``,
    else every script at the last rate plus one ``none`` run per other rate; each once per seed.

    Raises:
        ValueError: no seed, or a seed that is not an integer (names ``control.seeds``).
    """
    rates = [float(r) for r in rates]
    if not seeds or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds):
        raise InputError(f"benchmark: control.seeds must be a non-empty list of integers; got {seeds!r}")
    jobs = []
    for p in portraits:
        if grid:
            runs = [(p, s, r) for s in scripts for r in rates]
        else:
            runs = [(p, s, rates[-1]) for s in scripts] + [(p, "none", r) for r in rates[:-1]]
        jobs += [(*run, seed) for run in runs for seed in seeds]
    return jobs


def run(cfg: DictConfig | dict) -> dict:
    """Run the configured protocols and write the reports; returns the metrics dict.

    Raises:
        FileNotFoundError / ValueError: missing checkpoint, clips, portraits or speech, or an unknown
            ``reenactment_crop`` (names the key).
    """
    import torch
    from tqdm import tqdm

    from flap.audio.io import load_audio
    from flap.control import bundled_pose_scripts
    from flap.eval.control_bench import control_run
    from flap.eval.reenactment import CROPS, reenact_clip
    from flap.generate import resolve_path
    from flap.io.runtime import resolve_device
    from flap.io.video import iter_video
    from flap.pipeline import FLAPPipeline
    from flap.tracking import FlameTracker

    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    opts = OmegaConf.to_container(cfg, resolve=True)
    start, start_cpu = time.perf_counter(), time.process_time()
    out = run_output_dir(cfg, "outputs/benchmark")
    protocols = list(opts.get("protocols") or ["reenactment", "control"])
    ctl = opts["control"]
    crop = str(opts.get("reenactment_crop", "tracked"))
    if crop not in CROPS:
        raise InputError(f"benchmark: reenactment_crop must be one of {', '.join(CROPS)}; got {crop!r}")
    clips = list_inputs(opts["clips"], VIDEO_SUFFIXES, int(opts["max_clips"]), "clips") \
        if "reenactment" in protocols else []
    portraits = list_inputs(opts["portraits"], IMAGE_SUFFIXES, int(opts["max_portraits"]), "portraits") \
        if "control" in protocols else []
    scripts = bundled_pose_scripts() if ctl["pose_scripts"] in ("all", None) else list(ctl["pose_scripts"])
    seeds = ctl.get("seeds")
    seeds = [int(opts["sampling"].get("seed", 0))] if seeds is None else list(seeds)
    jobs = [("reenactment", c) for c in clips] + [
        ("control", j) for j in control_jobs(portraits, scripts, ctl["blinks_per_minute"], bool(ctl["grid"]), seeds)
    ]
    speech = load_audio(resolve_path(opts["audio"], "audio")) if portraits else None
    ctl_frames = max(1, round(float(ctl["seconds"]) * float(ctl["fps"])))
    if speech is not None:
        speech = np.resize(speech, int(np.ceil(ctl_frames / float(ctl["fps"]) * SAMPLE_RATE)))  # loop short speech
    if opts.get("threads"):
        torch.set_num_threads(int(opts["threads"]))
    ckpt = resolve_path(opts["checkpoint"], "checkpoint")
    pipe = FLAPPipeline.from_pretrained(ckpt, torch_dtype=str(opts["dtype"]), device=resolve_device(str(opts["device"])))
    tracker = FlameTracker()
    sampling = dict(opts["sampling"])
    budget = float(opts.get("max_seconds") or 0)
    inputs = [*clips, *portraits]
    name = Path(ckpt).name

    reen, control, not_run, errors = [], [], [], []
    bar = tqdm(jobs, desc="benchmark", unit="run", disable=not opts.get("progress", True))
    for kind, job in bar:
        if budget and time.perf_counter() - start > budget:
            not_run.append({"protocol": kind, "job": str(job)})
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            if kind == "reenactment":
                bar.set_postfix_str(f"reenact {job.name}")
                limit = int(opts["max_frames"]) or None
                with iter_video(job, max_frames=limit) as stream:
                    fps = stream.info.fps
                    frames = np.stack(list(stream))
                res, crops = reenact_clip(frames, fps, pipe, tracker, sampling, int(opts["identity_frames"]),
                                          name=job.stem, crop=crop)
                res["seconds"], res["cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
                reen.append(res)
                save_strip(out / f"reenactment_{job.stem}.png",
                           {"real": crops["real"], "vae": crops["vae"], name: crops["generated"]}, inputs=inputs)
            else:
                portrait, pose, rate, seed = job
                bar.set_postfix_str(f"{portrait.stem} {pose} {rate:g}/min seed {seed}")
                res, frames, per_frame = control_run(pipe, tracker, str(portrait), pose, rate, speech, ctl_frames,
                                                     {**sampling, "seed": seed}, fps=float(ctl["fps"]),
                                                     identity_frames=int(opts["identity_frames"]))
                res["seed"] = seed
                tag = f"_s{seed}" if len(seeds) > 1 else ""
                save_control_strip(out / f"control_{portrait.stem}_{Path(str(pose)).stem}_{rate:g}{tag}.png", frames,
                                   per_frame["requested"], per_frame["tracked"], inputs=inputs)
                res["seconds"], res["cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
                control.append(res)
        except (ValueError, FileNotFoundError) as exc:  # one bad input must not lose the others
            log.warning("benchmark: %s %s failed: %s", kind, job, exc)
            errors.append({"protocol": kind, "job": str(job), "error": str(exc)})
    bar.close()

    keys_r = [k for k, _ in REENACT_COLUMNS]
    keys_c = [k for k, _ in CONTROL_COLUMNS if k != "runs"]
    reen_rows = {row: mean_rows([r[src] for r in reen], keys_r)
                 for row, src in (("real", "real"), ("vae", "vae"), (name, "generated"))} if reen else {}
    ctl_rows = {s: mean_rows([r for r in control if r["pose"] == s], keys_c)
                for s in dict.fromkeys(r["pose"] for r in control)}
    rate_rows = {f"{r:g} blinks/min": mean_rows([c for c in control if c["blinks_per_minute"] == r], keys_c)
                 for r in sorted({c["blinks_per_minute"] for c in control})}
    wall = time.perf_counter() - start
    result = {
        "checkpoint": str(ckpt),
        "wall_seconds": wall,
        "cpu_seconds": time.process_time() - start_cpu,  # this process, all threads
        "settings": opts,
        "reenactment": {"mean": reen_rows, "clips": reen},
        "control": {"by_script": ctl_rows, "by_blink_rate": rate_rows, "runs": control},
        "not_run": not_run,
        "errors": errors,
    }
    md = [f"# FLAP benchmark: `{ckpt}`\n",
          f"Wall time {wall / 60:.1f} min (CPU {result['cpu_seconds'] / 60:.1f} min); {len(reen)} clip(s) x {opts['max_frames'] or 'all'} frames, "
          f"{len(control)} control run(s) of {ctl_frames} frames; steps={sampling.get('num_inference_steps')}.\n"]
    if reen_rows:
        md += ["\n## Self-reenactment (mean over clips)\n\n", markdown_table(reen_rows, REENACT_COLUMNS, "frames")]
        plot_bars(out / "reenactment.png", reen_rows, REENACT_COLUMNS, "self-reenactment", inputs=inputs)
    if control:
        md += ["\n## Control (mean over portraits)\n\n", markdown_table(ctl_rows, CONTROL_COLUMNS, "pose script"),
               "\n", markdown_table(rate_rows, CONTROL_COLUMNS, "blink rate")]
        plot_bars(out / "control.png", {**ctl_rows, **rate_rows}, CONTROL_COLUMNS, "control", inputs=inputs)
    if not_run:
        md.append(f"\n**{len(not_run)} run(s) not started: the max_seconds={budget:g} budget was used up.**\n")
    if errors:
        md.append(f"\n**{len(errors)} run(s) failed** (see metrics.json `errors`).\n")
    text = "".join(md)
    write_json(out / "metrics.json", result, inputs=inputs)
    write_text(out / "table.md", text, inputs=inputs)
    if opts.get("progress", True):
        print(text)
        print(f"benchmark written to {out}")
    return result


@hydra.main(version_base="1.3", config_path="conf", config_name="benchmark")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    run_command("flap.benchmark", run, cfg, hydra_run_dir=HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    check_overrides("flap.benchmark")
    main()
