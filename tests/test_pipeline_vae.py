"""The demo's tiny AutoencoderKL (flap.training.vae): sizes, patch data, decoder-only fine-tuning, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from flap.training.vae import (
    FaceFrameDataset,
    VAELitModule,
    build_vae,
    tiny_vae_config,
    to_model_range,
    to_uint8,
)


def test_tiny_vae_latent_is_one_eighth():
    vae = build_vae()
    with torch.no_grad():
        z = vae.encode(torch.zeros(1, 3, 128, 128)).latent_dist.mode()
    assert z.shape == (1, 4, 16, 16)
    assert tiny_vae_config((32, 64, 128))["block_out_channels"] == [32, 64, 128]
    assert sum(p.numel() for p in vae.parameters()) < 2_000_000  # fits the 40 MB demo budget


def test_range_round_trip():
    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    x = to_model_range(frames)
    assert x.shape == (2, 3, 8, 8) and x.min() >= -1 and x.max() <= 1
    np.testing.assert_array_equal(to_uint8(x), frames)


def test_patch_dataset_shapes_and_errors():
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    assert FaceFrameDataset(frames, patch_size=16)[0].shape == (3, 16, 16)
    assert FaceFrameDataset(frames)[1].shape == (3, 32, 32)
    with pytest.raises(ValueError, match="patch_size"):
        FaceFrameDataset(frames, patch_size=64)
    with pytest.raises(ValueError, match="expected frames"):
        FaceFrameDataset(np.zeros((3, 32, 32), np.uint8))


def test_decoder_only_fine_tuning_keeps_the_latents(tmp_path):
    torch.manual_seed(0)
    small = {"block_out_channels": (8, 16), "norm_num_groups": 4, "sample_size": 16}
    first = VAELitModule(vae=small)
    first.export_pretrained(tmp_path / "v1")
    module = VAELitModule(init_from=str(tmp_path / "v1"), decoder_only=True, lr=1e-2)
    opt = module.configure_optimizers()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    enc_before = {k: v.clone() for k, v in module.vae.encoder.state_dict().items()}
    dec_before = {k: v.clone() for k, v in module.vae.decoder.state_dict().items()}
    for _ in range(2):
        loss = module.losses(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k, v in module.vae.encoder.state_dict().items():
        torch.testing.assert_close(v, enc_before[k])
    assert any(not torch.equal(v, dec_before[k]) for k, v in module.vae.decoder.state_dict().items())
    module.latent_std_sum, module.latent_std_n = 4.0, 1  # as after a validation epoch
    module.export_pretrained(tmp_path / "v2")
    loaded = AutoencoderKL.from_pretrained(tmp_path / "v2")
    assert loaded.config.scaling_factor == first.vae.config.scaling_factor  # kept: latents unchanged


def test_export_sets_scaling_factor_from_latent_std(tmp_path):
    module = VAELitModule(vae={"block_out_channels": (8, 16), "norm_num_groups": 4})
    module.latent_std_sum, module.latent_std_n = 8.0, 2  # mean std 4
    module.export_pretrained(tmp_path / "vae")
    assert AutoencoderKL.from_pretrained(tmp_path / "vae").config.scaling_factor == pytest.approx(0.25)


def test_checkpoint_records_the_init_from_scaling_factor(tmp_path):
    """A decoder-only run's Lightning checkpoint carries the scale of the VAE its UNets were trained on."""
    first = VAELitModule(vae={"block_out_channels": (8, 16), "norm_num_groups": 4})
    first.latent_std_sum, first.latent_std_n = 8.0, 2  # mean std 4 -> scaling_factor 0.25
    first.export_pretrained(tmp_path / "v1")
    module = VAELitModule(init_from=str(tmp_path / "v1"), decoder_only=True)
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["vae_config"]["scaling_factor"] == pytest.approx(0.25)


def test_init_from_missing_folder():
    with pytest.raises(FileNotFoundError, match="init_from"):
        VAELitModule(init_from="/nonexistent/vae")


def test_split_tail_holds_out_the_end_of_every_clip():
    from flap.training.vae import split_tail

    a = np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1).repeat(3, -1)
    b = 100 + np.arange(3, dtype=np.uint8).reshape(3, 1, 1, 1).repeat(3, -1)
    train, val = split_tail([a, b], 0.1)
    assert val[:, 0, 0, 0].tolist() == [18, 19, 102]  # ceil(2.0) = 2 of 20, at least 1 of 3
    assert train[:, 0, 0, 0].tolist() == list(range(18)) + [100, 101]
