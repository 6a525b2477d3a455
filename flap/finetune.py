"""``python -m flap.finetune video=me.mp4 out=DIR``: a person-specific model from one short video (Hydra).

The way AD-NeRF, ER-NeRF or GeneFace users make a model of one person, but by fine-tuning FLAP's
base model, in minutes on a CPU (issue 13):

1. **prepare** ``video`` with :func:`flap.data.prepare.prepare_clip` (25 fps, face crop at the base
   VAE's size, FLAME tracking) into ``out/data``;
2. **hold out** the last ``holdout`` of its frames: they are never trained on; they are written to
   ``out/eval/holdout.mp4`` (full frames) with ``out/eval/portrait.png`` (its first frame);
3. **fine-tune the VAE decoder** on the training frames (``stages.decoder``, in ``out/work/decoder``;
   the encoder is frozen, so the latents and the UNets trained on them are unchanged): the person's
   face, hair and background decode sharper than through the base VAE, which all people share and
   which caps identity;
4. **fine-tune** the base UNets through the three Progressively Focused Training stages (paper
   Sec. 4.3, :class:`flap.training.FLAPLitModule`) in ``out/work/stageK``; every stage (the decoder
   too) is bounded by its share of the time left (``stages.<name>.share``) and by ``max_steps``
   (Lightning checkpoints every ``checkpoint_every`` steps and when stopped);
5. **assemble** a pipeline folder at ``out`` (fine-tuned VAE decoder and UNets, base Audio2Flame), which
   ``python -m flap.generate checkpoint=out`` loads;
6. **benchmark** it on the held-out part (:func:`flap.benchmark.run`: self-reenactment with the
   ``real`` floor and ``vae`` ceiling rows, and the pose / blink control runs from the held-out
   portrait) into ``out/eval/benchmark`` and print the table.

``max_minutes`` bounds the whole run; the time left after preparation, minus ``eval_minutes``, is
split between the stages once and recorded in ``out/work/plan.json``. Running the same command
again resumes: a prepared clip, a finished stage and a written pipeline are not redone, and an
unfinished stage continues from its newest checkpoint (with the time it had already used).
Config: ``flap/conf/finetune.yaml``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from flap.cli_support import (  # imported before Hydra makes its run folder (see run_command)
    check_overrides,
    run_command,
    single_lightning_log,
)

__all__ = ["finetune", "plan_stages", "holdout_boundary", "newest_checkpoint", "fit_resuming", "main"]

log = logging.getLogger(__name__)

STAGE_NAMES = {1: "head motion", 2: "expression", 3: "video"}
#: training order of the stages in ``cfg.stages``: the VAE decoder first (short; every UNet snapshot
#: can then be judged through it, ``tools/finetune_curve.py``), then the PFT stages
STAGE_ORDER = ("decoder", "stage1", "stage2", "stage3")


def plan_stages(seconds: float, stages: dict) -> dict[str, float]:
    """Split ``seconds`` of training between the stages in proportion to their ``share``.

    Args:
        seconds: training time available (s).
        stages: ``{"stage1": {"share": ...}, ...}``.

    Returns:
        ``{"stage1": seconds, ...}`` (0 for a stage with share 0: it is skipped).

    Raises:
        flap.errors.UsageError: a negative share, all shares 0, or less than one second in all.
    """
    from flap.errors import UsageError

    shares = {name: float(spec.get("share", 0.0)) for name, spec in stages.items()}
    bad = [name for name, s in shares.items() if s < 0]
    if bad or not sum(shares.values()) > 0:
        raise UsageError(f"stages: shares must be >= 0 and not all 0, got {shares}")
    if seconds < 1:
        raise UsageError(f"max_minutes: no training time left ({seconds:.0f} s after preparation and "
                         "eval_minutes); raise max_minutes")
    total = sum(shares.values())
    return {name: seconds * s / total for name, s in shares.items()}


def holdout_boundary(data_dir: str | Path, holdout: float) -> tuple[str, int]:
    """``(clip_id, first held-out frame index)`` of the one prepared clip in ``data_dir``.

    The boundary is the one :func:`flap.data.datasets.load_prepared_clips` uses with
    ``holdout_tail=holdout``: frames at or after it (25 fps indices) are never trained on.
    """
    from flap.data.datasets import load_prepared_clips

    clip = load_prepared_clips(data_dir, holdout_tail=holdout)[0]
    return clip.clip_id, int(clip.frames[-1]) + 1


def newest_checkpoint(folder: Path) -> Path | None:
    """The most recently written ``*.ckpt`` in ``folder`` (periodic ``last`` or ``interrupted``), or None."""
    ckpts = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return ckpts[-1] if ckpts else None


def fit_resuming(trainer, model, datamodule, ckpt_dir: Path) -> None:
    """``trainer.fit`` from the newest checkpoint in ``ckpt_dir`` (see :func:`newest_checkpoint`), or fresh.

    On a fresh start Lightning turns ``ckpt_path=None`` into ``"last"`` because an
    ``OnExceptionCheckpoint`` is configured, and warns twice about a "last model of the previous
    fit" that does not exist; those two messages are dropped, all others pass. The frozen VAE is in
    eval mode by design (:class:`flap.training.FLAPLitModule`), so Lightning's eval-mode notice is dropped too.
    """
    import warnings

    with warnings.catch_warnings():
        for message in (r".*\(ckpt_path=None\)` was called without a model",
                        r'.*\(ckpt_path="last"\) is set, but there is no last checkpoint',
                        r"Found \d+ module\(s\) in eval mode"):
            warnings.filterwarnings("ignore", message=message)
        trainer.fit(model, datamodule=datamodule, ckpt_path=newest_checkpoint(ckpt_dir))


def _check_folders(video: Path, out: Path, base: Path) -> None:
    from flap.errors import InputError, InputNotFoundError

    if not video.is_file():
        raise InputNotFoundError(f"video={video}: no such file")
    if not (base / "model_index.json").is_file():
        raise InputNotFoundError(f"base={base}: not a FLAPPipeline folder (no model_index.json)")
    if out.resolve() == base.resolve() or out.resolve() in video.resolve().parents:
        raise InputError(f"out={out}: would write into an input (base or the video's folder); choose a new folder")
    if out.exists() and any(out.iterdir()) and not (out / "work" / "plan.json").is_file():
        raise InputError(f"out={out}: exists and is not a flap.finetune run folder (no work/plan.json); "
                         "choose a new folder")


def _prepare(video: Path, data_dir: Path, size: int) -> dict:
    from flap.data.prepare import PrepareConfig, prepare_clip

    records = sorted((data_dir / "records").glob("*.json"))
    if records:
        record = json.loads(records[0].read_text())
    else:
        log.info("preparing %s (crop %d px, FLAME tracking)", video, size)
        record = prepare_clip(video, video.parent, data_dir, PrepareConfig(size=size))
    if record.get("status") != "kept":
        from flap.errors import InputError

        raise InputError(f"video={video}: cannot be used ({record.get('status')}: {record.get('reason')})")
    return record


def _check_stage_options(stages) -> None:
    """Refuse a bad ``mouth_weight`` / ``condition_scale`` before anything is prepared or trained.

    Raises:
        flap.errors.UsageError: naming ``stages.<name>.<key>``, what was expected and what was found.
    """
    from flap.errors import UsageError
    from flap.training.lit_module import fixed_condition_normalization

    for name, spec in stages.items():
        scale = spec.get("condition_scale")
        if scale is not None and not isinstance(scale, dict):
            raise UsageError(f"stages.{name}.condition_scale: expected a mapping such as {{jaw: 0.04}}, found {scale!r}")
        try:
            fixed_condition_normalization(scale)
        except ValueError as err:
            raise UsageError(f"stages.{name}.{err}") from None
        weight = spec.get("mouth_weight", 0.0)
        if not isinstance(weight, (int, float)) or weight < 0:
            raise UsageError(f"stages.{name}.mouth_weight: expected a number >= 0, found {weight!r}")


def _write_holdout(video: Path, start: int, eval_dir: Path) -> tuple[Path, Path]:
    """Write the held-out frames (25 fps, full size) and their first frame; returns ``(video, png)``."""
    import cv2

    from flap.data.prepare import resample_indices
    from flap.flame.coeffs import DEFAULT_FPS
    from flap.io import read_video, write_video

    clip, portrait = eval_dir / "holdout.mp4", eval_dir / "portrait.png"
    if clip.is_file() and portrait.is_file():
        return clip, portrait
    frames, fps = read_video(video)
    frames = frames[resample_indices(len(frames), fps, DEFAULT_FPS)][start:]
    eval_dir.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(portrait), frames[0][:, :, ::-1])
    write_video(clip, frames, DEFAULT_FPS)
    return clip, portrait


def _stage_callbacks(run_dir: Path, every: int, progress, snapshots=None):
    from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint

    ckpt_dir = run_dir / "checkpoints"
    periodic = ModelCheckpoint(dirpath=ckpt_dir, filename="last", every_n_train_steps=max(1, int(every)),
                               save_top_k=1, monitor=None, enable_version_counter=False)
    extra = [snapshots] if snapshots is not None else []
    return [periodic, OnExceptionCheckpoint(ckpt_dir, filename="interrupted"), progress, *extra]


def _train_stage(k: int, spec: dict, seconds: float, init_from: Path, vae: Path, data_dir: Path,
                 work: Path, cfg: DictConfig, offset_seconds: float = 0.0) -> Path:
    """Run (or resume, or skip if done) stage ``k``; returns its export folder.

    ``offset_seconds`` is the run's time before this stage (the clock of ``snapshot_minutes``).
    """
    import lightning as L

    from flap.data.datamodule import FLAPDataModule
    from flap.training import FLAPLitModule
    from flap.training.progress import StageProgress
    from flap.training.snapshots import TimedSnapshots

    single_lightning_log()
    run_dir = work / f"stage{k}"
    export = run_dir / "export"
    if (export / "training_stage.json").is_file():
        log.info("stage %d already done (%s)", k, export)
        return export
    video_mode = k == 3
    dm = FLAPDataModule(data_dir, mode="video" if video_mode else "pairs", num_frames=int(spec.get("num_frames", 8)),
                        stride=2, batch_size=int(spec["batch_size"]), seed=int(cfg.seed),
                        augment=None if video_mode else spec.get("augment"), holdout_tail=float(cfg.holdout))
    model = FLAPLitModule(stage=k, init_from=str(init_from), vae=str(vae), lr=float(spec["lr"]),
                          warmup_steps=int(cfg.warmup_steps), mouth_weight=float(spec.get("mouth_weight", 0.0)),
                          condition_scale=spec.get("condition_scale"), seed=int(cfg.seed))
    progress = StageProgress(f"stage {k}/3 {STAGE_NAMES[k]}", int(spec["max_steps"]), seconds,
                             enabled=bool(cfg.progress))
    every = cfg.get("snapshot_minutes")
    snapshots = TimedSnapshots(work / "snapshots", float(every), offset_seconds / 60) if every else None
    trainer = L.Trainer(max_steps=int(spec["max_steps"]), max_epochs=-1, max_time={"seconds": max(1.0, seconds)},
                        accelerator=_accelerator(str(cfg.device)), devices=1, default_root_dir=str(run_dir),
                        callbacks=_stage_callbacks(run_dir, cfg.checkpoint_every, progress, snapshots),
                        logger=L.pytorch.loggers.CSVLogger(str(run_dir), name="csv"),
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10,
                        gradient_clip_val=1.0)
    fit_resuming(trainer, model, dm, run_dir / "checkpoints")
    model.export_pretrained(export)
    return export


def _train_decoder(spec: dict, seconds: float, base_vae: Path, data_dir: Path, work: Path, cfg: DictConfig) -> Path:
    """Fine-tune the VAE decoder on the person's training frames (or skip if done); returns its folder.

    The encoder and ``quant_conv`` stay frozen (:class:`flap.training.vae.VAELitModule` with
    ``decoder_only``), so every latent, the ``scaling_factor`` and the UNets stay valid. Trains on
    random ``patch_size`` patches of the frames before the held-out part and checks PSNR on the
    held-out frames (``val/psnr`` in ``work/decoder/csv``); the run resumes from its newest checkpoint.
    """
    import lightning as L

    from flap.training.progress import StageProgress
    from flap.training.vae import FaceFrameDataModule, VAELitModule

    single_lightning_log()
    run_dir = work / "decoder"
    export = run_dir / "export"
    if (export / "config.json").is_file():
        log.info("VAE decoder already done (%s)", export)
        return export
    dm = FaceFrameDataModule(prepared_root=str(data_dir), val_split="tail", val_fraction=float(cfg.holdout),
                             val_max_frames=int(spec.get("val_max_frames", 32)), patch_size=spec.get("patch_size"),
                             batch_size=int(spec["batch_size"]), seed=int(cfg.seed))
    model = VAELitModule(lr=float(spec["lr"]), init_from=str(base_vae), decoder_only=True)
    progress = StageProgress("VAE decoder", int(spec["max_steps"]), seconds, enabled=bool(cfg.progress))
    every = max(1, int(spec.get("val_every", 100)))
    trainer = L.Trainer(max_steps=int(spec["max_steps"]), max_epochs=-1, max_time={"seconds": max(1.0, seconds)},
                        accelerator=_accelerator(str(cfg.device)), devices=1, default_root_dir=str(run_dir),
                        callbacks=_stage_callbacks(run_dir, cfg.checkpoint_every, progress),
                        logger=L.pytorch.loggers.CSVLogger(str(run_dir), name="csv"),
                        val_check_interval=every, check_val_every_n_epoch=None, num_sanity_val_steps=0,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10)
    fit_resuming(trainer, model, dm, run_dir / "checkpoints")
    return model.export_pretrained(export)


def _accelerator(device: str) -> str:
    from flap.io.runtime import resolve_device

    return "gpu" if resolve_device(device).type == "cuda" else "cpu"


def _benchmark(out: Path, clip: Path, portrait: Path, cfg: DictConfig) -> dict:
    from flap.benchmark import run as run_benchmark

    defaults = OmegaConf.load(Path(__file__).parent / "conf" / "benchmark.yaml")
    defaults.pop("hydra", None)
    bench = OmegaConf.to_container(cfg.benchmark, resolve=True)
    bench.pop("enabled", None)
    opts = OmegaConf.merge(defaults, bench, {"checkpoint": str(out), "clips": str(clip), "portraits": str(portrait),
                                             "out": str(out / "eval" / "benchmark"), "max_seconds": 0,
                                             "device": cfg.device, "threads": cfg.threads,
                                             "progress": cfg.progress})
    return run_benchmark(opts)


def finetune(cfg: DictConfig) -> dict:
    """Run the five steps of the module docstring; returns a summary (paths, plan, wall time, metrics).

    Raises:
        flap.errors.InputNotFoundError: missing ``video`` or ``base``.
        flap.errors.InputError: ``out`` is an input, a folder that is not a fine-tuning run or a run
            of another video or base, or the video has no usable face (names the file and the reason).
        flap.errors.UsageError: bad stage shares, ``mouth_weight`` or ``condition_scale``, or no
            training time left.
    """
    import torch

    from flap.errors import InputError
    from flap.training.assemble import assemble_pipeline

    start = time.perf_counter()
    video, out, base = Path(str(cfg.video)), Path(str(cfg.out)), Path(str(cfg.base))
    stages = OmegaConf.to_container(cfg.stages, resolve=True)  # plain dicts, used by every stage below
    _check_stage_options(stages)
    _check_folders(video, out, base)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    work, data_dir, eval_dir = out / "work", out / "data", out / "eval"
    work.mkdir(parents=True, exist_ok=True)
    plan_path = work / "plan.json"
    plan = json.loads(plan_path.read_text()) if plan_path.is_file() else {"used_seconds": 0.0}
    for key, value in (("video", str(video)), ("base", str(base))):
        if plan.get(key, value) != value:
            raise InputError(f"out={out}: is a fine-tuning run of {key}={plan[key]}, not {value}; "
                             "choose a new folder")
    if not plan_path.is_file():
        plan_path.write_text(json.dumps(plan))  # marks `out` as a fine-tuning run folder
    vae_cfg = json.loads((base / "vae" / "config.json").read_text())
    size = vae_cfg["sample_size"]
    size = int(size[0] if isinstance(size, list) else size)

    record = _prepare(video, data_dir, size)
    clip_id, boundary = holdout_boundary(data_dir, float(cfg.holdout))
    clip, portrait = _write_holdout(video, boundary, eval_dir)
    if "stage_seconds" not in plan:
        spent = plan["used_seconds"] + time.perf_counter() - start
        left = float(cfg.max_minutes) * 60 - spent - float(cfg.eval_minutes) * 60
        plan = {"used_seconds": spent, "stage_seconds": plan_stages(left, stages),
                "clip_id": clip_id, "holdout_start_frame": boundary, "kept_frames": record["kept_frames"],
                "video": str(video), "base": str(base), "max_minutes": float(cfg.max_minutes)}
        plan_path.write_text(json.dumps(plan, indent=1))
    log.info("plan: %s", plan["stage_seconds"])

    current, vae, offset = base, base / "vae", float(plan["used_seconds"])
    for name in STAGE_ORDER:
        seconds = float(plan["stage_seconds"].get(name, 0.0))
        if seconds <= 0:
            continue
        if name == "decoder":
            vae = _train_decoder(stages[name], seconds, base / "vae", data_dir, work, cfg)
        else:
            current = _train_stage(int(name[-1]), stages[name], seconds, current, base / "vae", data_dir,
                                   work, cfg, offset_seconds=offset)
        offset += seconds

    sources = json.loads((out / "sources.json").read_text()) if (out / "sources.json").is_file() else {}
    if sources.get("unets") != str(current) or sources.get("vae") != str(vae):
        audio = base / "audio2flame" if (base / "audio2flame").is_dir() else None
        assemble_pipeline(vae, current, audio, out, keep_other_files=True,
                          sources={"finetuned_from": str(base), "video": str(video), "holdout_start_frame": boundary})
    summary = {"out": str(out), "plan": plan, "unets": str(current), "holdout_video": str(clip),
               "portrait": str(portrait)}
    if cfg.benchmark.enabled:
        summary["benchmark"] = _benchmark(out, clip, portrait, cfg)
    summary["wall_seconds_this_run"] = time.perf_counter() - start
    (eval_dir / "finetune.json").write_text(json.dumps(summary, indent=1, default=str))
    if cfg.progress:
        print(f"person-specific model written to {out}: python -m flap.generate checkpoint={out}")
    return summary


@hydra.main(version_base="1.3", config_path="conf", config_name="finetune")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    run_command("flap.finetune", finetune, cfg, hydra_run_dir=HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    check_overrides("flap.finetune")
    main()
