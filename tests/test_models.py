"""Dual UNet (flap.models): equivalence with SD, conditioning, loading, save/load, groups."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import MotionAdapter, UNet2DConditionModel
from omegaconf import OmegaConf
from safetensors.torch import save_file

from flap import CONFIG_DIR
from flap.models import (
    PARAMETER_GROUPS,
    DenoisingNet,
    ReferenceNet,
    build_flap_unets,
    denoising_config_from_unet2d,
    parameter_group,
    set_trainable_groups,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model" / "flap_tiny.yaml"), resolve=True)
B, F_, H = 2, 3, 8


def tiny_unet2d(seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(**TINY["unet"])


def to_ldm_keys(state: dict, layers: int, levels: int) -> dict:
    """Diffusers UNet names → original SD (LDM) names, for the single-file conversion test only
    (inverse of the standard SD conversion map, generalised to ``layers`` per level)."""
    top = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
           "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    resnet = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
              "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
    prefix = {"mid_block.attentions.0.": "middle_block.1.", "mid_block.resnets.0.": "middle_block.0.",
              "mid_block.resnets.1.": "middle_block.2."}
    for i in range(levels):
        for j in range(layers):
            prefix[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{(layers + 1) * i + j + 1}.0."
            prefix[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{(layers + 1) * i + j + 1}.1."
        prefix[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{(layers + 1) * (i + 1)}.0.op."
        has_attn = any(k.startswith(f"up_blocks.{i}.attentions.") for k in state)
        prefix[f"up_blocks.{i}.upsamplers.0."] = f"output_blocks.{(layers + 1) * i + layers}.{2 if has_attn else 1}."
        for j in range(layers + 1):
            prefix[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{(layers + 1) * i + j}.0."
            prefix[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{(layers + 1) * i + j}.1."
    out = {}
    for key, value in state.items():
        new = key
        for a, b in list(top.items()) + list(prefix.items()):
            if key.startswith(a if a.endswith(".") else a + "."):
                new = b + key[len(a):]
        if ".resnets." in key:
            for a, b in resnet.items():
                new = new.replace(f".{a}.", f".{b}.")
        out["model.diffusion_model." + new] = value.contiguous()
    return out


def tiny_adapter(seed: int = 1) -> MotionAdapter:
    torch.manual_seed(seed)
    u = TINY["unet"]
    adapter = MotionAdapter(
        block_out_channels=u["block_out_channels"],
        motion_layers_per_block=u["layers_per_block"],
        motion_norm_num_groups=u["norm_num_groups"],
        **TINY["motion"],
    )
    with torch.no_grad():  # non-zero everywhere so that "loaded == source" is meaningful
        for p in adapter.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return adapter


def randomize_new_layers(net: DenoisingNet, seed: int = 3) -> None:
    """Give every FLAP layer (head-motion, spatial gate, expression, temporal) non-zero weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            group = parameter_group(name)
            if group == "spatial":
                p.fill_(1.0)
            elif group != "base":
                p.add_(torch.randn(p.shape, generator=g) * 0.2)


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        sample=torch.randn(B, 4, F_, H, H, generator=g),
        timestep=torch.tensor([10, 700]),
        c_motion=torch.randn(B, F_, 3, generator=g) * 0.3,
        c_exp=torch.randn(B, F_, 117, generator=g),
    ), torch.randn(B, 4, H, H, generator=g)


@pytest.fixture(scope="module")
def unet_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sd") / "unet"
    tiny_unet2d().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def adapter_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("adapter")
    tiny_adapter().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def trained_nets(unet_folder):
    nets = build_flap_unets(TINY["unet"], TINY["motion"], TINY["condition"], pretrained_unet=unet_folder)
    randomize_new_layers(nets.denoising_net)
    return nets.eval() if hasattr(nets, "eval") else nets


def run(nets, x, ref_latent, **over):
    reference = nets.reference_net(ref_latent)
    args = {**x, **over}
    with torch.no_grad():
        return nets.denoising_net(reference=reference, **args).sample


def test_equivalence_with_unet2d_at_init(unet_folder):
    """New layers at init: DenoisingNet(+conditions, +reference) == the source UNet2DConditionModel."""
    nets = build_flap_unets(TINY["unet"], TINY["motion"], TINY["condition"], pretrained_unet=unet_folder)
    unet = tiny_unet2d()
    x, ref_latent = inputs()
    with torch.no_grad():
        reference = nets.reference_net(ref_latent)
        out = nets.denoising_net(reference=reference, **x).sample
        flat = x["sample"].permute(0, 2, 1, 3, 4).reshape(B * F_, 4, H, H)
        context = torch.zeros(B * F_, 1, TINY["unet"]["cross_attention_dim"])
        expected = unet(flat, x["timestep"].repeat_interleave(F_), context).sample
    expected = expected.reshape(B, F_, 4, H, H).permute(0, 2, 1, 3, 4)
    assert out.shape == (B, 4, F_, H, H)
    assert len(reference.tensors) == 7  # 2 down + 1 mid + 4 up transformer blocks
    assert (out - expected).abs().max().item() < 1e-5
    assert expected.abs().mean() > 0.1  # not trivially zero


def test_reference_records_inputs_of_self_attention(unet_folder):
    nets = build_flap_unets(TINY["unet"], TINY["motion"], TINY["condition"], pretrained_unet=unet_folder)
    _, ref_latent = inputs()
    ref = nets.reference_net(ref_latent)
    name = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
    assert ref[name].shape == (B, H * H, 32)
    # hidden states entering attn1 are LayerNorm outputs: per-token mean ~0 (affine is identity at init)
    assert ref[name].mean(-1).abs().max() < 1e-4
    with pytest.raises(KeyError, match="no features for layer"):
        ref["nope.attn1"]


def test_conditioning_changes_output(trained_nets):
    x, ref_latent = inputs()
    base = run(trained_nets, x, ref_latent)
    moved = run(trained_nets, x, ref_latent, c_motion=x["c_motion"] + 0.5)
    expr = run(trained_nets, x, ref_latent, c_exp=x["c_exp"] + 1.0)
    other_ref = run(trained_nets, x, ref_latent * -1.0 + 0.3)
    for changed in (moved, expr, other_ref):
        assert (changed - base).abs().max().item() > 1e-3


def test_null_mask_selects_null_tokens(trained_nets):
    x, ref_latent = inputs()
    masked = run(trained_nets, x, ref_latent, head_motion_null_mask=torch.tensor([True, False]))
    dropped = run(trained_nets, x, ref_latent, c_motion=None)
    full = run(trained_nets, x, ref_latent)
    torch.testing.assert_close(masked[0], dropped[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(masked[1], full[1], atol=1e-6, rtol=0)
    assert (masked[0] - full[0]).abs().max() > 1e-3


def test_frames_independent_without_temporal_layers(trained_nets):
    x, ref_latent = inputs()
    k, j = 2, 0
    changed = dict(x)
    changed["c_motion"] = x["c_motion"].clone()
    changed["c_exp"] = x["c_exp"].clone()
    changed["c_motion"][:, k] += 0.7
    changed["c_exp"][:, k] += 1.0
    net = trained_nets.denoising_net
    try:
        net.set_temporal_enabled(False)
        a = run(trained_nets, x, ref_latent)
        b = run(trained_nets, x, ref_latent, c_motion=changed["c_motion"], c_exp=changed["c_exp"])
        assert (a[:, :, j] - b[:, :, j]).abs().max().item() < 1e-6
        assert (a[:, :, k] - b[:, :, k]).abs().max().item() > 1e-3
    finally:
        net.set_temporal_enabled(True)
    a = run(trained_nets, x, ref_latent)
    b = run(trained_nets, x, ref_latent, c_motion=changed["c_motion"], c_exp=changed["c_exp"])
    assert (a[:, :, j] - b[:, :, j]).abs().max().item() > 1e-4  # temporal layers do mix frames


def test_loading_reports_only_new_layers_missing(unet_folder, adapter_folder, tmp_path):
    nets = build_flap_unets(pretrained_unet=unet_folder, motion_adapter=adapter_folder, condition=TINY["condition"])
    ref_report, den_report = nets.reports["reference_net"], nets.reports["denoising_net"]
    assert ref_report.missing == [] and ref_report.unexpected == []
    assert den_report.unexpected == []
    assert den_report.missing, "FLAP's new layers must be reported missing"
    assert {parameter_group(k) for k in den_report.missing} == {"head_motion", "spatial", "expression"}
    unet_sd, adapter_sd = tiny_unet2d().state_dict(), tiny_adapter().state_dict()
    ref_sd, den_sd = nets.reference_net.state_dict(), nets.denoising_net.state_dict()
    for k, v in unet_sd.items():
        assert torch.equal(ref_sd[k], v), k
        assert torch.equal(den_sd[k], v), k
    for k, v in adapter_sd.items():
        assert torch.equal(den_sd[k], v), k
    assert set(den_sd) == set(unet_sd) | set(adapter_sd) | set(den_report.missing)

    # single diffusers-layout .safetensors file
    single = tmp_path / "unet.safetensors"
    save_file({k: v.contiguous() for k, v in unet_sd.items()}, single)
    nets2 = build_flap_unets(TINY["unet"], TINY["motion"], TINY["condition"], pretrained_unet=single)
    assert nets2.reports["reference_net"].missing == []
    assert torch.equal(nets2.denoising_net.conv_in.weight, unet_sd["conv_in.weight"])

    # single original-SD (LDM-key) .safetensors file, converted by diffusers' utilities
    ldm = tmp_path / "sd_original.safetensors"
    save_file(to_ldm_keys(unet_sd, TINY["unet"]["layers_per_block"], len(TINY["unet"]["block_out_channels"])), ldm)
    nets3 = build_flap_unets(TINY["unet"], TINY["motion"], TINY["condition"], pretrained_unet=ldm)
    assert nets3.reports["reference_net"].missing == [] and nets3.reports["reference_net"].unexpected == []
    ref3 = nets3.reference_net.state_dict()
    assert all(torch.equal(ref3[k], v) for k, v in unet_sd.items())


def test_loading_fails_on_shape_mismatch(tmp_path):
    bad = dict(TINY["unet"], block_out_channels=[32, 64, 128])
    torch.manual_seed(0)
    folder = tmp_path / "bad"
    UNet2DConditionModel(**bad).save_pretrained(folder)
    state = {k: v.contiguous() for k, v in UNet2DConditionModel(**bad).state_dict().items()}
    save_file(state, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="shape mismatches"):
        build_flap_unets(TINY["unet"], TINY["motion"], TINY["condition"], pretrained_unet=tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError, match="not found"):
        build_flap_unets(TINY["unet"], pretrained_unet=tmp_path / "missing.safetensors")


def test_save_and_from_pretrained_identical(trained_nets, tmp_path):
    net = trained_nets.denoising_net
    net.head_motion_encoder.set_normalization(torch.tensor([0.1, -0.2, 0.0]), torch.tensor([0.5, 0.4, 0.3]))
    net.save_pretrained(tmp_path / "dn")
    trained_nets.reference_net.save_pretrained(tmp_path / "rn")
    net2 = DenoisingNet.from_pretrained(tmp_path / "dn")
    ref2 = ReferenceNet.from_pretrained(tmp_path / "rn")
    assert (tmp_path / "dn" / "diffusion_pytorch_model.safetensors").is_file()
    x, ref_latent = inputs()
    with torch.no_grad():
        a = net(reference=trained_nets.reference_net(ref_latent), **x).sample
        b = net2(reference=ref2(ref_latent), **x).sample
    assert torch.equal(a, b)
    assert torch.equal(net2.head_motion_encoder.std, net.head_motion_encoder.std)


def test_parameter_groups_cover_every_parameter_once(trained_nets):
    net = trained_nets.denoising_net
    groups = net.parameter_groups()
    assert tuple(groups) == PARAMETER_GROUPS
    ids = [id(p) for params in groups.values() for p in params]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))
    assert all(groups[g] for g in PARAMETER_GROUPS)
    assert all("motion_modules" in n for n, p in net.named_parameters() if parameter_group(n) == "temporal")
    try:
        n_train = set_trainable_groups([net, trained_nets.reference_net], ["temporal"])
        assert n_train == sum(p.numel() for p in groups["temporal"])
        assert not any(p.requires_grad for p in trained_nets.reference_net.parameters())
        set_trainable_groups([net, trained_nets.reference_net], ["base", "spatial", "expression"])
        assert all(p.requires_grad for p in trained_nets.reference_net.parameters())
        assert not any(p.requires_grad for p in groups["head_motion"])
        with pytest.raises(ValueError, match="unknown groups"):
            set_trainable_groups(net, ["decoder"])
    finally:
        set_trainable_groups([net, trained_nets.reference_net], PARAMETER_GROUPS)


def test_reference_pass_runs_once_per_video(trained_nets):
    """The reference features are computed once and reused by every step and window."""
    calls = []
    handle = trained_nets.reference_net.register_forward_hook(lambda *a: calls.append(1))
    try:
        x, ref_latent = inputs()
        reference = trained_nets.reference_net(ref_latent)
        with torch.no_grad():
            for _window in range(2):
                for t in (900, 500, 100):
                    trained_nets.denoising_net(reference=reference, **dict(x, timestep=torch.tensor(t)))
    finally:
        handle.remove()
    assert len(calls) == 1


@pytest.mark.slow
def test_gradient_checkpointing_matches(unet_folder):
    nets = build_flap_unets(TINY["unet"], TINY["motion"], TINY["condition"], pretrained_unet=unet_folder)
    randomize_new_layers(nets.denoising_net)
    x, ref_latent = inputs()

    def grads():
        nets.denoising_net.zero_grad()
        nets.reference_net.zero_grad()
        out = nets.denoising_net(reference=nets.reference_net(ref_latent), **x).sample
        out.square().mean().backward()
        return [p.grad.clone() for p in nets.denoising_net.parameters()]

    plain = grads()
    nets.denoising_net.enable_gradient_checkpointing()
    nets.reference_net.enable_gradient_checkpointing()
    ckpt = grads()
    for a, b in zip(plain, ckpt):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert nets.reference_net.conv_in.weight.grad is not None  # gradients reach the ReferenceNet


@pytest.mark.slow
def test_bfloat16_forward(unet_folder):
    nets = build_flap_unets(TINY["unet"], TINY["motion"], TINY["condition"], pretrained_unet=unet_folder,
                            torch_dtype="bfloat16")
    x, ref_latent = inputs()
    with torch.no_grad():
        ref = nets.reference_net(ref_latent.bfloat16())
        out = nets.denoising_net(reference=ref, **dict(x, sample=x["sample"].bfloat16())).sample
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_bad_inputs_raise(trained_nets):
    x, ref_latent = inputs()
    reference = trained_nets.reference_net(ref_latent)
    net = trained_nets.denoising_net
    with pytest.raises(ValueError, match="c_motion must be"):
        net(reference=reference, **dict(x, c_motion=torch.zeros(B, F_ + 1, 3)))
    with pytest.raises(ValueError, match=r"expected condition of shape \(B, F, 117\)"):
        net(reference=reference, **dict(x, c_exp=torch.zeros(B, F_, 100)))
    with pytest.raises(ValueError, match="reference batch"):
        net(reference=reference.repeat(2), **x)
    with pytest.raises(ValueError, match="motion_max_seq_length"):
        net(sample=torch.zeros(1, 4, 33, 8, 8), timestep=1)
    with pytest.raises(ValueError, match="null_mask"):
        net(reference=reference, head_motion_null_mask=torch.ones(3, dtype=torch.bool), **x)
    with pytest.raises(ValueError, match=r"sample must be \(B, C, F, H, W\)"):
        net(sample=torch.zeros(1, 4, 8, 8), timestep=1)


def test_config_mapping_rejects_incompatible_adapter():
    with pytest.raises(ValueError, match="motion_layers_per_block"):
        denoising_config_from_unet2d(TINY["unet"], {"motion_layers_per_block": 2})
    cfg = denoising_config_from_unet2d(TINY["unet"], TINY["motion"], TINY["condition"])
    assert cfg["down_block_types"] == ["CrossAttnDownBlockMotion", "CrossAttnDownBlockMotion", "DownBlockMotion"]
    assert cfg["num_attention_heads"] == 2 and cfg["condition_dim"] == 32


def test_sd15_yaml_matches_sd15_constants():
    from flap.models import SD15_UNET_CONFIG

    sd15 = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model" / "flap_sd15.yaml"), resolve=True)
    for key, value in sd15["unet"].items():
        assert SD15_UNET_CONFIG[key] == value, key
    assert sd15["_target_"] == TINY["_target_"] == "flap.models.build_flap_unets"
    cfg = denoising_config_from_unet2d(sd15["unet"], sd15["motion"], sd15["condition"])
    assert cfg["block_out_channels"] == [320, 640, 1280, 1280] and cfg["num_attention_heads"] == 8


def test_tiny_config_is_a_few_million_parameters():
    nets = build_flap_unets(TINY["unet"], TINY["motion"], TINY["condition"])
    n = sum(p.numel() for p in nets.denoising_net.parameters()) + sum(p.numel() for p in nets.reference_net.parameters())
    assert 1e6 < n < 1e7


def test_checkpoints_with_the_old_num_motion_tokens_key_still_load(tmp_path):
    """`num_motion_tokens` (before the head_motion_* naming) is read as `num_head_motion_tokens`."""
    import json

    from flap.models import build_flap_unets

    nets = build_flap_unets(unet=TINY["unet"], motion=TINY["motion"], condition={**TINY["condition"],
                                                                                  "num_head_motion_tokens": 2})
    nets.denoising_net.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["num_motion_tokens"] = cfg.pop("num_head_motion_tokens")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    loaded = DenoisingNet.from_pretrained(tmp_path, low_cpu_mem_usage=False)
    assert loaded.config.num_head_motion_tokens == 2  # not the default 4 (that would fail to load the weights)
    torch.testing.assert_close(loaded.head_motion_encoder.null_tokens, nets.denoising_net.head_motion_encoder.null_tokens)


def test_renormalize_keeps_the_encoder_output():
    """New statistics, same tokens: the first layer absorbs the change (W·diag(r), b + W·d)."""
    from flap.models.conditions import ConditionEncoder

    torch.manual_seed(0)
    enc = ConditionEncoder(5, token_dim=8, num_tokens=2, hidden_dim=16).double()
    enc.set_normalization(torch.tensor([0.0, 1.0, 0.0, 0.5, 0.0]), torch.tensor([0.2, 1.0, 0.5, 2.0, 1.0]))
    c = torch.randn(3, 4, 5, dtype=torch.float64)
    before = enc(c)
    w_jaw = enc.mlp[0].weight[:, 0].clone()
    enc.renormalize(torch.tensor([0.1, 1.0, 0.0, 0.0, 0.0]), torch.tensor([0.04, 1.0, 0.5, 1.0, 1.0]))
    assert enc.std[0] == pytest.approx(0.04) and enc.mean[0] == pytest.approx(0.1) and enc.mean[3] == 0.0
    # Hand-computed: column 0's weight shrinks by 0.04 / 0.2 = 5x, so its input (5x larger) gives the same.
    torch.testing.assert_close(enc.mlp[0].weight[:, 0], w_jaw * 0.2)
    torch.testing.assert_close(enc(c), before, rtol=1e-12, atol=1e-12)  # float64: exact up to rounding
    with pytest.raises(ValueError, match="5 numbers"):
        enc.renormalize(torch.zeros(4), torch.ones(4))
