"""Progressively Focused Training: datasets, stage freezing, resume, export, DDP (tiny configs)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from test_data_prepare import _one_thread  # noqa: F401  (autouse: one torch thread in this module)

from flap import CONFIG_DIR
from flap.data.datamodule import FLAPDataModule
from flap.data.datasets import ImagePairDataset, VideoClipDataset, load_prepared_clips
from flap.data.prepare import PrepareConfig, prepare_dataset
from flap.flame.coeffs import HeadCoeffs
from flap.models import parameter_group

ROOT = Path(__file__).resolve().parents[1]



def nodding_tracker(frames, fps):
    """Stub FLAME tracker: yaw ±10°, jaw opening (the real tracker is tested elsewhere)."""
    t = np.arange(len(frames))
    c = HeadCoeffs.neutral(len(frames), fps)
    yaw = 10.0 * np.sin(t / 5.0) * (1 + len(frames) % 7)
    c.set_pose_degrees(torch.tensor(np.stack([0 * yaw, yaw, 0 * yaw], 1), dtype=torch.float32))
    c.jaw[:, 0] = torch.tensor(0.1 * np.abs(np.sin(t / 3.0)), dtype=torch.float32)
    return c


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, shared_data):
    raw = tmp_path_factory.mktemp("raw")
    for name in ("bbaf2n", "lbax4n", "sbia1a"):
        shutil.copy(shared_data / "video" / "grid" / f"{name}.mpg", raw / f"{name}.mpg")
    out = tmp_path_factory.mktemp("prepared")
    m = prepare_dataset(raw, out, PrepareConfig(size=32, tracker=nodding_tracker))
    assert m["summary"]["kept"] == 3
    return out


def tiny_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(8, 16, 16), down_block_types=["DownEncoderBlock2D"] * 3,
                         up_block_types=["UpDecoderBlock2D"] * 3, latent_channels=4, norm_num_groups=8,
                         sample_size=32)


def tiny_unets(seed=0):
    torch.manual_seed(seed)
    return instantiate(OmegaConf.load(CONFIG_DIR / "model" / "flap_tiny.yaml"))


def make_module(stage, **kw):
    from flap.training import FLAPLitModule

    if "init_from" not in kw:
        kw["unets"] = tiny_unets()
    return FLAPLitModule(stage, vae=tiny_vae(), **kw)


def trainer(**kw):
    kw = {"accelerator": "cpu", "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
          "enable_model_summary": False, "deterministic": False, **kw}
    return L.Trainer(**kw)


def test_datasets(prepared):
    clips = load_prepared_clips(prepared)
    assert [c.clip_id for c in clips] == ["bbaf2n", "lbax4n", "sbia1a"]
    top = load_prepared_clips(prepared, motion_top_fraction=0.2)
    assert len(top) == 1 and top[0].motion_variance == max(c.motion_variance for c in clips)
    pairs = ImagePairDataset(prepared, seed=3)
    assert len(pairs) == 225
    item = pairs[80]
    assert item["target"].shape == (3, 32, 32) and item["reference"].shape == (3, 32, 32)
    assert -1 <= item["target"].min() and item["target"].max() <= 1
    torch.testing.assert_close(item["coeffs"], torch.from_numpy(clips[1].coeffs[5]))
    torch.testing.assert_close(pairs[80]["reference"], item["reference"])  # same seed+index, same pair
    video = VideoClipDataset(prepared, num_frames=8, stride=4)
    assert len(video) == 3 * len(range(0, 75 - 8 + 1, 4))
    v = video[1]
    assert v["frames"].shape == (8, 3, 32, 32) and v["coeffs"].shape == (8, 120)
    torch.testing.assert_close(v["coeffs"], torch.from_numpy(clips[0].coeffs[4:12]))
    with pytest.raises(ValueError, match="no kept segment"):
        VideoClipDataset(prepared, num_frames=100)
    held = load_prepared_clips(prepared, holdout_tail=0.2)  # last ceil(0.2 * 75) = 15 frames out
    assert [len(c.frames) for c in held] == [60, 60, 60] and held[0].frames[-1] == 59
    assert held[0].segments == [(0, 60)]
    assert len(VideoClipDataset(prepared, num_frames=8, stride=4, holdout_tail=0.2)) == 3 * len(range(0, 53, 4))


def test_reference_redrawn_every_epoch(prepared):
    """Epoch-coded indices: same (epoch, index) -> same pair; a new epoch -> new reference frames."""
    from flap.data.datamodule import EpochShuffleSampler

    pairs = ImagePairDataset(prepared, seed=3)
    n = len(pairs)
    refs = {e: [pairs[e * n + i]["reference"] for i in range(0, n, 25)] for e in (0, 1)}
    same = [torch.equal(a, b) for a, b in zip(refs[0], refs[1])]
    assert sum(same) <= 2  # 9 targets; a 75-frame clip repeats a reference with probability 1/75 each
    torch.testing.assert_close(pairs[n + 25]["reference"], refs[1][1])  # pure function of the index
    torch.testing.assert_close(pairs[n + 25]["target"], pairs[25]["target"])  # the target is frame i
    sampler = EpochShuffleSampler(n, seed=1)
    first = list(sampler)
    sampler.set_epoch(2)
    second = list(sampler)
    assert sorted(first) == list(range(n)) and sorted(second) == list(range(2 * n, 3 * n))
    assert [k - 2 * n for k in second] != first
    assert list(EpochShuffleSampler(4, shuffle=False)) == [0, 1, 2, 3]


def test_augmented_pairs_and_flip_guard(prepared):
    from flap.data.augment import mirror_coeffs

    plain = ImagePairDataset(prepared, seed=3)
    flipped = ImagePairDataset(prepared, seed=3, augment={"flip": 1.0, "rotate_deg": 0.0, "scale": 0.0,
                                                          "shift": 0.0})
    a, b = plain[7], flipped[7]
    torch.testing.assert_close(b["target"], a["target"].flip(-1))
    torch.testing.assert_close(b["reference"], a["reference"].flip(-1))
    torch.testing.assert_close(b["coeffs"], torch.from_numpy(mirror_coeffs(a["coeffs"].numpy())))
    dm = FLAPDataModule(prepared, batch_size=2, augment={"flip": 0.5})
    with pytest.raises(ValueError, match="c_exp"):
        trainer(max_steps=1).fit(make_module(2), dm)


def test_gate_init_lr_and_fixed_normalization(prepared):
    from flap.training import FLAPLitModule
    from flap.training.lit_module import fixed_condition_normalization

    m = make_module(1, spatial_gate_init=1.0, spatial_gate_lr_scale=10.0, lr=1e-3)
    gates = [p for n, p in m.denoising_net.named_parameters() if n.endswith("spatial_gate")]
    assert gates and all(torch.equal(g, torch.ones_like(g)) for g in gates)
    opt = m.configure_optimizers()["optimizer"]
    assert [g["lr"] for g in opt.param_groups] == [1e-3, pytest.approx(1e-2)]
    assert opt.param_groups[1]["weight_decay"] == 0.0 and len(opt.param_groups[1]["params"]) == len(gates)
    assert all(torch.equal(g, torch.zeros_like(g)) for n, g in make_module(1).denoising_net.named_parameters()
               if n.endswith("spatial_gate"))  # default: as built (zero, SD 1.5 exact)
    trainer(max_steps=1).fit(m, FLAPDataModule(prepared, batch_size=2))
    mean, scale = fixed_condition_normalization()
    enc = m.denoising_net.expression_encoder
    torch.testing.assert_close(enc.std[:12], torch.full((12,), 0.25))  # eyes (6D)
    torch.testing.assert_close(enc.mean[:6], torch.tensor([1.0, 0, 0, 0, 1.0, 0]))
    torch.testing.assert_close(enc.std[12:15], torch.full((3,), 0.2))  # jaw, radians
    assert scale[0] == 0.5 and mean[0] == 0.0
    d = make_module(1, condition_normalization="data")
    trainer(max_steps=1).fit(d, FLAPDataModule(prepared, batch_size=2))
    yaw = torch.cat([torch.from_numpy(c.coeffs[c.frames, 1]) for c in load_prepared_clips(prepared)]).double()
    assert float(d.denoising_net.head_motion_encoder.std[1]) == pytest.approx(float(yaw.std()), rel=1e-5)
    with pytest.raises(ValueError, match="condition_normalization"):
        FLAPLitModule(1, unets=tiny_unets(), vae=tiny_vae(), condition_normalization="dataset")


def test_dataset_without_tracks(tmp_path, shared_data):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(shared_data / "video" / "grid" / "bbaf2n.mpg", raw)
    prepare_dataset(raw, tmp_path / "out", PrepareConfig(size=32, tracker="none"))
    with pytest.raises(FileNotFoundError, match="coeffs.npz"):
        load_prepared_clips(tmp_path / "out")


def _snapshot(module):
    return {f"{net}.{n}": p.detach().clone() for net in ("reference_net", "denoising_net")
            for n, p in getattr(module, net).named_parameters()}


def _group(name):
    net, rest = name.split(".", 1)
    return "spatial" if net == "reference_net" else parameter_group(rest)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_stage_freezing(prepared, stage):
    from flap.models import STAGE_TRAINABLE_GROUPS

    module = make_module(stage, head_motion_dropout=0.0, expression_dropout=0.0)
    dm = FLAPDataModule(prepared, mode="video" if stage == 3 else "pairs", batch_size=2, num_frames=4,
                        motion_top_fraction=0.2 if stage == 1 else None)
    before = _snapshot(module)
    trainer(max_steps=3).fit(module, dm)
    after = _snapshot(module)
    trained = set(STAGE_TRAINABLE_GROUPS[stage])
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    from flap.training.lit_module import unreachable_reference_parameters

    dead = {f"reference_net.{n}" for n in unreachable_reference_parameters(module.reference_net)}
    assert "reference_net.conv_out.weight" in dead
    frozen = [n for n in before if _group(n) not in trained or n in dead]
    assert frozen and not changed.intersection(frozen), sorted(changed.intersection(frozen))[:5]
    for group in trained:
        names = [n for n in before if _group(n) == group]
        assert names and changed.intersection(names), f"stage {stage}: no parameter of {group} changed"
    # Almost every trained tensor moves (a few receive exactly zero gradient behind zero-initialised layers).
    trainable = [n for n in before if _group(n) in trained]
    assert len(changed) >= 0.6 * len(trainable)
    if stage == 3:
        assert all(_group(n) == "temporal" for n in changed)


class _Losses(L.Callback):
    def __init__(self):
        self.losses = {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"])


def test_resume_gives_same_loss(prepared, tmp_path):
    def run(max_steps, ckpt_path=None):
        torch.manual_seed(0)
        module = make_module(1, ema_decay=0.9)
        dm = FLAPDataModule(prepared, batch_size=2, seed=1)
        rec = _Losses()
        tr = trainer(max_steps=max_steps, limit_train_batches=2, callbacks=[rec])
        tr.fit(module, dm, ckpt_path=ckpt_path)
        return tr, rec.losses

    _, full = run(3)
    tr, first = run(2)
    tr.save_checkpoint(tmp_path / "k2.ckpt")
    _, resumed = run(3, ckpt_path=tmp_path / "k2.ckpt")
    assert list(first) == [1, 2] and list(resumed) == [3]
    assert first[2] == full[2]
    assert resumed[3] == pytest.approx(full[3], rel=1e-6, abs=1e-7)
    assert full[3] != full[2]


def test_export_and_next_stage(prepared, tmp_path):
    from flap.training import load_stage_output

    m1 = make_module(1)
    trainer(max_steps=1).fit(m1, FLAPDataModule(prepared, batch_size=2))
    out = tmp_path / "stage1"
    assert m1.export_pretrained(out) == out
    assert (out / "denoising_net" / "config.json").is_file() and (out / "training_stage.json").is_file()
    nets = load_stage_output(out)
    for (n, p), q in zip(m1.denoising_net.state_dict().items(), nets.denoising_net.state_dict().values()):
        assert torch.equal(p, q), n
    # Condition normalisation was set in stage 1 (fixed scale by default) and is carried to stage 2.
    torch.testing.assert_close(nets.denoising_net.head_motion_encoder.std, torch.full((3,), 0.5))
    m2 = make_module(2, init_from=str(out))
    torch.testing.assert_close(m2.denoising_net.head_motion_encoder.mean, nets.denoising_net.head_motion_encoder.mean)
    with pytest.raises(FileNotFoundError, match="reference_net"):
        load_stage_output(tmp_path)
    with pytest.raises(ValueError, match="stage"):
        make_module(4)


DDP_SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    import lightning as L
    from lightning.pytorch.strategies import DDPStrategy
    from test_training import make_module
    from flap.data.datamodule import FLAPDataModule
    torch.set_num_threads(1)
    module = make_module(1)
    tr = L.Trainer(accelerator="cpu", devices=2, strategy=DDPStrategy(process_group_backend="gloo"),
                   max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False)
    tr.fit(module, FLAPDataModule({root!r}, batch_size=2))
    import json, pathlib
    pathlib.Path({out!r}, f"rank{{tr.global_rank}}.json").write_text(json.dumps(
        {{"world": tr.world_size, "step": tr.global_step, "loss": float(tr.callback_metrics["train/loss"])}}))
""")


@pytest.mark.slow
def test_ddp_two_processes_gloo(prepared, tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT.format(tests=str(ROOT / "tests"), root=str(prepared), out=str(tmp_path)))
    res = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["step"] == 3 for r in ranks), ranks
    assert ranks[0]["loss"] == pytest.approx(ranks[1]["loss"])  # synchronised across the 2 processes


@pytest.mark.parametrize("names", [("stage1_motion", "stage2_expression", "stage3_video"),
                                   ("base_stage1", "base_stage2", "base_stage3")])
def test_hydra_three_stages_chain(prepared, tmp_path, names):
    """`python -m flap.train experiment=stage{1,2,3}_*` (and the base model's `base_stage{1,2,3}`) compose,
    train, export and chain: each stage starts from the previous stage's export (tiny, 2 steps)."""
    from hydra import compose, initialize_config_dir

    from flap.train import train

    tiny_vae().save_pretrained(tmp_path / "vae")
    common = [f"data.root={prepared}", f"model.vae={tmp_path / 'vae'}", f"train_root={tmp_path / 'run'}",
              "trainer.max_steps=2", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
              "logger=null", "callbacks=null", "data.batch_size=2"]
    for name, extra in zip(names, ([], [], ["data.num_frames=4"])):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={name}", *common, *extra,
                                              f"paths.output_dir={tmp_path / name}"])
        result = train(cfg)
        stage = names.index(name) + 1
        assert cfg.model.stage == stage
        assert result["export_dir"] == str(tmp_path / "run" / f"stage{stage}")
        info = (tmp_path / "run" / f"stage{stage}" / "training_stage.json").read_text()
        assert f'"stage": {stage}' in info and '"global_step": 2' in info


def test_gradient_checkpointing_same_gradients(prepared):
    from torch.utils.data import default_collate

    ds = ImagePairDataset(prepared)
    batch = default_collate([ds[0], ds[100]])
    results = []
    for checkpointing in (False, True):
        m = make_module(2, gradient_checkpointing=checkpointing, head_motion_dropout=0.0, expression_dropout=0.0)
        m.train()
        loss = m.loss(batch)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in m.trainable_parameters() if p.grad is not None])
        results.append((loss.detach(), grads))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-6, rtol=1e-5)


def test_mouth_weight_map_hand_computed():
    from flap.training.loss_weights import mouth_weight_map

    torch.testing.assert_close(mouth_weight_map(4, 4, 0.0), torch.ones(4, 4))
    w = mouth_weight_map(2, 2, 3.0, centre=(0.25, 0.75), sigma=(0.5, 0.5))
    # cell centres at 0.25 / 0.75: the cell (row 1, col 0) is the centre; a neighbour is 0.5 = 1 σ away
    g1 = float(np.exp(-0.5))
    torch.testing.assert_close(w, torch.tensor([[1 + 3 * g1, 1 + 3 * g1 * g1], [4.0, 1 + 3 * g1]]))
    w = mouth_weight_map(16, 16, 4.0)
    assert divmod(int(w.argmax()), 16) == (10, 7) or divmod(int(w.argmax()), 16) == (10, 8)  # y 0.68, x 0.5
    assert torch.equal(w, w.flip(1))  # left-right symmetric: the flip augmentation keeps it exact
    with pytest.raises(ValueError, match="weight"):
        mouth_weight_map(4, 4, -1.0)


def test_mouth_weight_changes_only_the_expression_stages(prepared):
    """Same batch and step randomness: the stage-1 loss ignores mouth_weight, the stage-2 loss uses it."""
    from flap.training import FLAPLitModule

    dm = FLAPDataModule(prepared, batch_size=2, seed=1)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    losses = {}
    for stage in (1, 2):
        for w in (0.0, 5.0):
            torch.manual_seed(0)
            m = make_module(stage, mouth_weight=w, head_motion_dropout=0.0, expression_dropout=0.0)
            with torch.no_grad():  # open the zero-initialised condition layers so predictions differ per pixel
                for p in m.denoising_net.parameters():
                    p.add_(0.01 * torch.randn_like(p))
                losses[stage, w] = float(m.loss(batch))
    assert losses[1, 0.0] == losses[1, 5.0]
    assert losses[2, 0.0] != pytest.approx(losses[2, 5.0], rel=1e-4)
    with pytest.raises(ValueError, match="mouth_weight"):
        FLAPLitModule(2, unets=tiny_unets(), vae=tiny_vae(), mouth_weight=-1.0)


def test_condition_scale_override_new_and_loaded(tmp_path):
    """condition_scale sets a new model's jaw scale, re-normalises a loaded one without changing its output."""
    from flap.training import FLAPLitModule, load_stage_output

    m = make_module(1, condition_scale={"jaw": 0.04})
    m.setup("fit")  # no trainer: the fixed normalisation of new networks
    enc = m.denoising_net.expression_encoder
    torch.testing.assert_close(enc.std[12:15], torch.full((3,), 0.04))
    torch.testing.assert_close(enc.std[:12], torch.full((12,), 0.25))  # other parts keep their scale
    out = m.export_pretrained(tmp_path / "stage1")
    with torch.no_grad():  # make the jaw matter, then check the loaded model computes the same tokens
        load = load_stage_output(out)
        c = torch.randn(2, 3, 117) * 0.1
        c[..., 12] = torch.linspace(0.0, 0.3, 3)
        before = load.denoising_net.expression_encoder(c)
    m2 = make_module(2, init_from=str(out), condition_scale={"jaw": 0.01})
    enc2 = m2.denoising_net.expression_encoder
    torch.testing.assert_close(enc2.std[12:15], torch.full((3,), 0.01))
    with torch.no_grad():
        torch.testing.assert_close(enc2(c), before, rtol=1e-4, atol=1e-5)
    m3 = make_module(2, init_from=str(out))  # no override: the stored statistics stay
    torch.testing.assert_close(m3.denoising_net.expression_encoder.std[12:15], torch.full((3,), 0.04))
    with pytest.raises(ValueError, match="condition_scale.jow"):
        FLAPLitModule(1, unets=tiny_unets(), vae=tiny_vae(), condition_scale={"jow": 0.04})
    with pytest.raises(ValueError, match="condition_scale.jaw: expected a positive number"):
        FLAPLitModule(1, unets=tiny_unets(), vae=tiny_vae(), condition_scale={"jaw": 0.0})
