"""Audio2Flame training: data module, losses, the generic Hydra entry point (fit, export, resume)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from flap import CONFIG_DIR
from flap.audio.data import Audio2FlameDataModule, center_pose, find_clips, rest_jaw, rest_pose
from flap.audio.model import Audio2Flame
from flap.audio.module import Audio2FlameModule
from flap.audio.synthetic import synthetic_pair
from flap.flame.coeffs import HeadCoeffs
from flap.signals import best_lag_correlation
from flap.train import train

CONF = CONFIG_DIR


def _cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[f"paths.output_dir={tmp_path}", *overrides])


def test_synthetic_pair_shapes():
    audio, coeffs = synthetic_pair(2.0, seed=1)
    assert audio.shape == (32000,) and audio.dtype == np.float32
    assert coeffs.num_frames == 50 and coeffs.jaw[:, 0].max() > 0.1


def test_datamodule_synthetic():
    dm = Audio2FlameDataModule(
        synthetic=4, val_names=["synth_3"], crop_frames=20, batch_size=3, samples_per_epoch=6
    )
    dm.setup("fit")
    assert [c.name for c in dm.val_clips] == ["synth_3"] and len(dm.train_clips) == 3
    batch = next(iter(dm.train_dataloader()))
    assert batch["features"].shape == (3, 20, 80) and batch["coeffs"].shape == (3, 20, 120)
    assert batch["mask"].dtype == torch.bool
    stats = dm.normalization_stats()
    assert stats["feature_mean"].shape == (80,) and stats["coeff_std"].shape == (120,)
    assert np.allclose(dm.silence_feature(), -80.0)
    with pytest.raises(ValueError, match=r"val_names \['nope'\] match no clip"):
        Audio2FlameDataModule(synthetic=2, val_names=["nope"]).setup("fit")


def test_rest_jaw_and_pose():
    coeffs = np.zeros((100, 120), np.float32)
    coeffs[:, 15] = np.linspace(0.0, 0.99, 100)
    coeffs[:, 16] = 7.0
    assert np.allclose(rest_jaw(coeffs, 5.0), [0.05, 7.0, 0.0])
    frame = np.ones((1, 120), np.float32)
    out = rest_pose(frame, np.array([0.1, 0.2, 0.3]))
    assert np.allclose(out[0, 15:18], [0.1, 0.2, 0.3]) and np.allclose(out[0, :15], 1) and frame[0, 15] == 1


def test_center_pose_removes_the_mean_orientation_only():
    c = HeadCoeffs.neutral(3)
    c.set_pose_degrees([[4.0, -20.0, 1.0], [6.0, -26.0, 3.0], [8.0, -32.0, 5.0]])
    c.data[:, 15] = torch.tensor([0.1, 0.2, 0.3])  # jaw opening
    out = center_pose(c)
    # mean (6, -26, 3) degrees subtracted
    np.testing.assert_allclose(out.pose_degrees().numpy(), [[-2, 6, -2], [0, 0, 0], [2, -6, 2]], atol=1e-4)
    assert torch.equal(out.data[:, 3:], c.data[:, 3:])  # eyes, jaw, eyelids, expression untouched
    assert c.pose_degrees()[1, 1].item() == pytest.approx(-26.0, abs=1e-4)  # input not modified
    dm = Audio2FlameDataModule(synthetic=2, center_pose=True)
    dm.setup("fit")
    for clip in dm.train_clips + dm.val_clips:
        pyr = HeadCoeffs(clip.coeffs, fps=clip.fps).pose_degrees().numpy()
        np.testing.assert_allclose(pyr.mean(0), 0.0, atol=1e-3)


def test_silence_padding_targets_closed_jaw():
    dm = Audio2FlameDataModule(synthetic=2, crop_frames=200, samples_per_epoch=6, silence_pad=25, gain_db=0)
    dm.setup("fit")
    ds = dm.train_dataloader().dataset
    closed = rest_jaw(np.concatenate([c.coeffs for c in dm.train_clips]), 5.0)
    assert np.allclose(ds.silence_jaw, closed)
    padded = 0
    for i in range(len(ds)):
        item = ds[i]
        valid = int(item["mask"].sum())
        assert 75 <= valid <= 125
        feats, c = item["features"][:valid].numpy(), item["coeffs"][:valid].numpy()
        silent = np.all(
            np.abs(feats + 80.0) < 1e-3, axis=1
        )  # digital silence (the synthetic noise is louder)
        padded += silent.sum()
        assert np.allclose(c[silent, 15:18], closed)
    assert padded > 0


def test_find_clips_real_media(tmp_path, shared_data):
    HeadCoeffs.neutral(75).save(tmp_path / "bbaf2n.npz")
    clips = find_clips([str(shared_data / "video" / "grid" / "*.mpg")], tmp_path)
    assert [c[0] for c in clips] == ["bbaf2n"]
    dm = Audio2FlameDataModule(
        media=[str(shared_data / "video" / "grid" / "*.mpg")], tracked_dir=str(tmp_path)
    )
    dm.setup("fit")
    assert dm.train_clips[0].features.shape == (75, 80)
    with pytest.raises(FileNotFoundError, match="has tracked coefficients"):
        find_clips([str(shared_data / "audio" / "*.wav")], tmp_path)
    with pytest.raises(FileNotFoundError, match="folder not found"):
        find_clips(["*.mpg"], tmp_path / "missing")


def test_losses_and_mouth_loss_gradient():
    net = Audio2Flame(hidden_dim=16, dilations=(1,))
    module = Audio2FlameModule(net, mouth_weight=1.0, mouth_frames=4, group_weights={"jaw": 4.0})
    target = HeadCoeffs.neutral(10).data[None].repeat(2, 1, 1)
    target[:, :, 15] = 0.2
    batch = {
        "features": torch.randn(2, 10, 80),
        "coeffs": target,
        "mask": torch.ones(2, 10, dtype=torch.bool),
    }
    losses = module._losses(batch)
    assert {"coeff", "velocity", "loss"} <= set(losses)
    if module.flame() is not None:  # FLAME (or its proxy) available: open vs closed jaw differ by mm
        assert losses["mouth_mm"] > 0.1
    losses["loss"].backward()
    assert net.head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown group 'lips'"):
        Audio2FlameModule(net, group_weights={"lips": 2.0})


def test_masked_std_by_hand():
    from flap.audio.module import masked_std

    x = torch.tensor([[[0.0], [2.0], [100.0]], [[5.0], [7.0], [9.0]]])  # (B=2, T=3, D=1)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    std = masked_std(x, mask)  # population std of {0, 2} = 1; of {5, 7, 9} = sqrt(8/3)
    assert std[:, 0].tolist() == pytest.approx([1.0, (8 / 3) ** 0.5], abs=1e-6)
    assert masked_std(x, torch.tensor([[True, False, False]] * 2)).abs().max() == 0  # one frame: no spread


def test_amplitude_loss_by_hand():
    net = Audio2Flame(hidden_dim=16, dilations=(1,))
    net.set_normalization(torch.zeros(80), torch.ones(80), torch.zeros(120), torch.ones(120))  # normalised = raw
    module = Audio2FlameModule(net, mouth_weight=0.0, std_weight=1.0)
    target = HeadCoeffs.neutral(10).data[None].repeat(2, 1, 1)
    target[:, :, 1] = torch.linspace(-0.3, 0.3, 10)  # yaw sweeps: std ~0.19 rad per clip
    batch = {"features": torch.randn(2, 10, 80), "coeffs": target, "mask": torch.ones(2, 10, dtype=torch.bool)}
    with torch.no_grad():
        net.head.weight.zero_()  # a prediction that does not move
    losses = module._losses(batch)  # mean over 2 clips x 3 rotation axes of |0 - real std|: yaw's / 3
    assert losses["std"].item() == pytest.approx(float(target[0, :, 1].std(unbiased=False)) / 3, rel=1e-3)
    assert "std" not in Audio2FlameModule(net, mouth_weight=0.0)._losses(batch)  # off by default
    with pytest.raises(ValueError, match="std_groups"):
        Audio2FlameModule(net, std_groups=["lips"])


SMOKE = [
    "experiment=audio2flame",
    "data.synthetic=3",
    "data.val_names=[synth_2]",
    "data.crop_frames=40",
    "model.mouth_weight=0",
    "model.net.hidden_dim=32",
    "trainer.enable_progress_bar=false",
]


def test_train_entry_point_fit_export_resume(tmp_path):
    overrides = [*SMOKE, "data.samples_per_epoch=16", "trainer.max_epochs=1"]
    result = train(_cfg(tmp_path, *overrides, f"export_dir={tmp_path / 'export'}"))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "csv").is_dir() and np.isfinite(result["val/loss"])
    model = Audio2Flame.from_pretrained(tmp_path / "export").eval()
    assert model.config.features["type"] == "logmel" and model.config.fps == 25.0
    assert model.config.hidden_dim == 32
    assert not torch.equal(model.coeff_std, torch.ones(120))  # statistics were stored
    # resume from last.ckpt for one more epoch; default export goes to <run dir>/export
    result2 = train(
        _cfg(
            tmp_path / "resumed",
            *overrides[:-1],
            "trainer.max_epochs=2",
            f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}",
        )
    )
    assert Path(result2["export_dir"]) == tmp_path / "resumed" / "export"
    assert (tmp_path / "resumed" / "export" / "config.json").is_file()


@pytest.mark.slow
def test_training_learns_jaw_from_audio(tmp_path):
    overrides = [
        *SMOKE,
        "data.synthetic=6",
        "data.val_names=[synth_5]",
        "data.samples_per_epoch=64",
        "model.net.hidden_dim=64",
        "trainer.max_epochs=6",
        f"export_dir={tmp_path / 'export'}",
    ]
    result = train(_cfg(tmp_path, *overrides))
    assert result["val/jaw_r"] > 0.7
    model = Audio2Flame.from_pretrained(tmp_path / "export").eval()
    audio, coeffs = synthetic_pair(3.0, seed=5)  # the held-out clip
    r, lag = best_lag_correlation(model.predict(audio).jaw[:, 0].numpy(), coeffs.jaw[:, 0].numpy(), 2)
    assert r > 0.7, (r, lag)


def test_train_requires_experiment(tmp_path):
    with pytest.raises(ValueError, match="choose an experiment"):
        train(_cfg(tmp_path))


def test_train_with_wav2vec2_features(tmp_path):
    from test_audio_features import make_tiny_wav2vec2

    w2v = make_tiny_wav2vec2(tmp_path / "w2v", num_layers=1)
    overrides = [
        *SMOKE,
        "data.samples_per_epoch=8",
        "trainer.max_epochs=1",
        "features@data.features=wav2vec2",
        f"data.features.model_path={w2v}",
        "data.features.layers=[-1]",
        "model.net.feature_dim=16",
    ]
    result = train(_cfg(tmp_path / "run", *overrides))
    model = Audio2Flame.from_pretrained(result["export_dir"]).eval()
    assert model.config.features == {
        "type": "wav2vec2",
        "model_path": str(w2v),
        "layers": [1],
        "normalize": True,
        "sr": 16000,
    }
    assert model.predict(synthetic_pair(1.0)[0]).num_frames == 25
    with pytest.raises(ValueError, match="set model.net.feature_dim"):
        train(_cfg(tmp_path / "bad", *overrides[:-1]))
