"""``flap.finetune``: time plan, folder checks, and one whole run (prepare, hold out, three PFT stages,
pipeline, benchmark) with resume, on a tiny random base pipeline and a real 4.6 s clip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from flap.errors import InputError, InputNotFoundError, UsageError
from flap.finetune import finetune, fit_resuming, newest_checkpoint, plan_stages

ROOT = Path(__file__).resolve().parents[1]
CLIP = "video/motion/pcavs_pose_00067.mp4"  # 224² at 25 fps, 4.56 s = 114 frames, one speaker


def _cfg(**overrides):
    cfg = OmegaConf.load(ROOT / "flap" / "conf" / "finetune.yaml")
    cfg.pop("hydra")
    return OmegaConf.merge(cfg, overrides)


def test_plan_stages_splits_time_by_share():
    stages = {"stage1": {"share": 0.5}, "stage2": {"share": 0.3}, "stage3": {"share": 0.2}}
    assert plan_stages(1000.0, stages) == pytest.approx({"stage1": 500.0, "stage2": 300.0, "stage3": 200.0})
    assert plan_stages(90.0, {"stage1": {"share": 2}, "stage2": {"share": 1}, "stage3": {"share": 0}}) == \
        pytest.approx({"stage1": 60.0, "stage2": 30.0, "stage3": 0.0})
    with pytest.raises(UsageError, match="shares"):
        plan_stages(100.0, {"stage1": {"share": 0}, "stage2": {"share": 0}})
    with pytest.raises(UsageError, match="shares"):
        plan_stages(100.0, {"stage1": {"share": -1}, "stage2": {"share": 2}})
    with pytest.raises(UsageError, match="max_minutes"):
        plan_stages(-30.0, stages)


@pytest.mark.parametrize("stage2,expected", [
    ({"condition_scale": {"jow": 0.04}}, "stages.stage2.condition_scale.jow: expected one of"),
    ({"condition_scale": {"jaw": 0}}, "stages.stage2.condition_scale.jaw: expected a positive number"),
    ({"condition_scale": 0.04}, "stages.stage2.condition_scale: expected a mapping"),
    ({"mouth_weight": -1}, "stages.stage2.mouth_weight: expected a number >= 0, found -1"),
])
def test_bad_stage_options_stop_before_anything_is_written(tmp_path, stage2, expected):
    """A typo in an optional stage key fails at once, not after minutes of preparation and training."""
    cfg = _cfg(video=str(tmp_path / "me.mp4"), out=str(tmp_path / "o"), base=str(tmp_path / "base"),
               stages={"stage2": stage2})
    with pytest.raises(UsageError, match=expected):
        finetune(cfg)
    assert not (tmp_path / "o").exists()


def test_default_base_is_a_committed_pipeline_folder():
    """``python -m flap.finetune video=... out=...`` with no ``base=`` must find a whole pipeline
    (VAE, both UNets, scheduler; ``vae/`` and ``audio2flame/`` of ``flap_base_wip`` are symlinks)."""
    from flap.models.checkpoint_files import check_pipeline_folder

    base = ROOT / _cfg().base
    index = check_pipeline_folder(base, required=("vae", "reference_net", "denoising_net", "scheduler"),
                                  optional=("audio2flame",))
    assert index["audio2flame"][0] is not None
    assert (base / "vae" / "diffusion_pytorch_model.safetensors").is_file()


def test_newest_checkpoint(tmp_path):
    assert newest_checkpoint(tmp_path / "absent") is None
    assert newest_checkpoint(tmp_path) is None
    old, new = tmp_path / "last.ckpt", tmp_path / "interrupted.ckpt"
    old.write_bytes(b"1")
    new.write_bytes(b"2")
    os.utime(old, (1_000, 1_000))
    assert newest_checkpoint(tmp_path) == new


def test_fit_resuming_is_quiet_when_fresh_and_resumes(tmp_path, recwarn):
    """A fresh fit logs no "last model of the previous fit" warnings; a second trainer continues
    from the periodic ``last.ckpt`` (step count carried over, not restarted)."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint
    from torch.utils.data import TensorDataset

    class Linear(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)
            self.calls = 0

        def training_step(self, batch, _):
            self.calls += 1
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = L.LightningDataModule.from_datasets(train_dataset=TensorDataset(torch.randn(8, 2)), batch_size=2)
    ckpt_dir = tmp_path / "checkpoints"

    def trainer(steps):
        return L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[ModelCheckpoint(dirpath=ckpt_dir, filename="last", every_n_train_steps=2),
                                    OnExceptionCheckpoint(ckpt_dir, filename="interrupted")])

    torch.manual_seed(0)
    first = Linear()
    fit_resuming(trainer(4), first, data, ckpt_dir)
    assert not [w for w in recwarn if "ckpt_path" in str(w.message)]
    assert (ckpt_dir / "last.ckpt").is_file()
    second, t = Linear(), trainer(6)
    fit_resuming(t, second, data, ckpt_dir)
    assert (t.global_step, second.calls) == (6, 2)  # 4 restored + 2 new; from scratch it would run 6


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from flap.testing import tiny_random_pipeline

    path = tmp_path_factory.mktemp("finetune") / "base"
    tiny_random_pipeline(seed=0, image_size=64).save_pretrained(path)
    return path


def test_refuses_inputs_as_output(shared_data, tiny_base, tmp_path):
    video = shared_data / CLIP
    with pytest.raises(InputNotFoundError, match="video="):
        finetune(_cfg(video=str(tmp_path / "none.mp4"), out=str(tmp_path / "o"), base=str(tiny_base)))
    with pytest.raises(InputNotFoundError, match="base="):
        finetune(_cfg(video=str(video), out=str(tmp_path / "o"), base=str(tmp_path)))
    with pytest.raises(InputError, match="would write into an input"):
        finetune(_cfg(video=str(video), out=str(tiny_base), base=str(tiny_base)))
    with pytest.raises(InputError, match="would write into an input"):
        finetune(_cfg(video=str(video), out=str(video.parent), base=str(tiny_base)))
    other = tmp_path / "my_photos"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not a flap.finetune run folder"):
        finetune(_cfg(video=str(video), out=str(other), base=str(tiny_base)))
    assert sorted(p.name for p in other.iterdir()) == ["keep.txt"]  # nothing written
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_finetune_runs_resumes_and_loads(shared_data, tiny_base, tmp_path):
    from flap.pipeline import FLAPPipeline

    out = tmp_path / "me"
    cfg = _cfg(video=str(shared_data / CLIP), out=str(out), base=str(tiny_base), max_minutes=30, eval_minutes=1,
               threads=1, progress=False, checkpoint_every=1,
               stages={"stage1": {"max_steps": 2, "batch_size": 2}, "stage2": {"max_steps": 2, "batch_size": 2},
                       "stage3": {"max_steps": 1, "batch_size": 1, "num_frames": 4},
                       "decoder": {"max_steps": 2, "batch_size": 2, "patch_size": 32, "val_every": 1}},
               benchmark={"max_frames": 4, "identity_frames": 2,
                          "control": {"pose_scripts": ["nod"], "blinks_per_minute": [0], "seconds": 0.6},
                          "sampling": {"num_inference_steps": 1}})
    summary = finetune(cfg)

    plan = json.loads((out / "work" / "plan.json").read_text())
    assert plan["holdout_start_frame"] == 91  # ceil(0.2 * 114) = 23 frames, 91..113, are never trained on
    assert sum(plan["stage_seconds"].values()) == pytest.approx(29 * 60 - plan["used_seconds"], abs=1.0)
    for k, steps in ((1, 2), (2, 2), (3, 1)):
        stage = json.loads((out / "work" / f"stage{k}" / "export" / "training_stage.json").read_text())
        assert stage["stage"] == k and stage["global_step"] == steps
    sources = json.loads((out / "sources.json").read_text())
    assert sources["unets"] == str(out / "work" / "stage3" / "export")
    assert sources["finetuned_from"] == str(tiny_base) and sources["holdout_start_frame"] == 91
    assert sources["vae"] == str(out / "work" / "decoder" / "export")
    from diffusers import AutoencoderKL

    before, after = (AutoencoderKL.from_pretrained(p).state_dict() for p in (tiny_base / "vae", out / "vae"))
    frozen = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # the latents the UNets know
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    pipe = FLAPPipeline.from_pretrained(out)  # `flap.generate checkpoint=out` loads it
    assert pipe.audio2flame is not None
    from flap.io import probe_video

    assert probe_video(out / "eval" / "holdout.mp4").num_frames == 114 - 91
    rows = summary["benchmark"]["reenactment"]["mean"]
    assert set(rows) == {"real", "vae", "me"}
    assert (out / "eval" / "benchmark" / "table.md").is_file()

    # the same command again: nothing is prepared or trained again
    ckpt = newest_checkpoint(out / "work" / "stage1" / "checkpoints")
    stamp = ckpt.stat().st_mtime_ns
    again = finetune(OmegaConf.merge(cfg, {"benchmark": {"enabled": False}}))
    assert ckpt.stat().st_mtime_ns == stamp
    assert again["plan"] == plan and again["unets"] == summary["unets"]
    with pytest.raises(InputError, match="is a fine-tuning run of video="):
        finetune(OmegaConf.merge(cfg, {"video": str(shared_data / "video" / "motion" / "lp_d12.mp4")}))


@pytest.mark.slow
def test_finetune_resumes_an_unfinished_stage(shared_data, tiny_base, tmp_path):
    """A stage stopped after its checkpoint (no export) continues from that checkpoint's step."""
    out = tmp_path / "me"
    base_cfg = dict(video=str(shared_data / CLIP), out=str(out), base=str(tiny_base), threads=1, progress=False,
                    checkpoint_every=1, benchmark={"enabled": False}, snapshot_minutes=30,
                    stages={"stage1": {"max_steps": 2, "batch_size": 2}, "stage2": {"share": 0},
                            "stage3": {"share": 0}, "decoder": {"share": 0}})
    finetune(_cfg(**base_cfg))
    from flap.training.snapshots import list_snapshots

    (minutes, snap), = list_snapshots(out / "work" / "snapshots")  # the end of the stage (no 30-min mark)
    used = json.loads((out / "work" / "plan.json").read_text())["used_seconds"] / 60
    assert used <= minutes < used + 5
    assert json.loads((snap / "snapshot.json").read_text())["global_step"] == 2
    assert (snap / "denoising_net").is_dir() and (snap / "reference_net").is_dir()
    export = out / "work" / "stage1" / "export"
    import shutil

    shutil.rmtree(export)  # as if the run had stopped after its last checkpoint
    base_cfg["stages"]["stage1"]["max_steps"] = 3
    finetune(_cfg(**base_cfg))
    assert json.loads((export / "training_stage.json").read_text())["global_step"] == 3


def test_help_lists_keys(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "flap.finetune", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "video=FILE out=DIR" in proc.stdout and "max_minutes" in proc.stdout
