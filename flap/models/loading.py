"""Build the dual UNet and load local weights (SD 1.5 UNet, AnimateDiff ``MotionAdapter``).

Nothing is downloaded: every path is local. Supported sources:

* SD 1.5 UNet: a diffusers folder (``config.json`` + ``diffusion_pytorch_model[.fp16].safetensors``,
  or a pipeline folder with a ``unet/`` subfolder), or a single ``.safetensors`` file either in
  diffusers layout or the original LDM layout (``model.diffusion_model.*`` keys, converted with
  diffusers' ``convert_ldm_unet_checkpoint``; the UNet config is then :data:`SD15_UNET_CONFIG` or
  the one you pass).
* AnimateDiff: a diffusers ``MotionAdapter`` folder (``config.json`` + safetensors), or a single
  diffusers-layout ``.safetensors`` file with an explicit config. Original ``mm_sd_v15*.ckpt`` files
  must first be converted to a diffusers folder (diffusers' conversion script).

Loading reports missing and unexpected keys (:class:`LoadReport`) and raises on shape mismatches.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from flap.models.denoising_net import DenoisingNet
from flap.models.reference_net import ReferenceNet

__all__ = [
    "SD15_UNET_CONFIG",
    "LoadReport",
    "FLAPUNets",
    "read_unet_checkpoint",
    "read_motion_adapter",
    "load_weights",
    "denoising_config_from_unet2d",
    "build_flap_unets",
]

logger = logging.getLogger(__name__)

#: ``UNet2DConditionModel`` configuration of Stable Diffusion 1.5.
SD15_UNET_CONFIG: dict = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "use_linear_projection": False,
}

_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")


@dataclass
class LoadReport:
    """Result of loading a checkpoint into a model.

    Attributes:
        source: where the weights came from.
        missing: model parameter/buffer names absent from the checkpoint (left at init).
        unexpected: checkpoint names the model does not have (ignored).
    """

    source: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.source}: {len(self.missing)} missing (e.g. {self.missing[:3]}), "
            f"{len(self.unexpected)} unexpected (e.g. {self.unexpected[:3]})"
        )


@dataclass
class FLAPUNets:
    """The two networks of FLAP and how their weights were loaded."""

    reference_net: ReferenceNet
    denoising_net: DenoisingNet
    reports: dict[str, LoadReport] = field(default_factory=dict)


def _to_plain(obj):
    """OmegaConf containers → dict/list (Hydra passes DictConfig)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, (DictConfig, ListConfig)):
            return OmegaConf.to_container(obj, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return obj


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder}: expected a diffusers model folder with config.json") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from exc


def _folder_weights(folder: Path) -> Path:
    for name in _WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"{folder}: expected one of {list(_WEIGHT_NAMES)} (safetensors only; sharded or .bin weights "
        f"are not supported), found {sorted(p.name for p in folder.iterdir())}"
    )


def read_unet_checkpoint(path: str | Path, config: dict | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an SD 1.5-layout UNet checkpoint into diffusers parameter names.

    Args:
        path: diffusers UNet folder, pipeline folder (uses ``unet/``), or single ``.safetensors``.
        config: ``UNet2DConditionModel`` config for single files (default :data:`SD15_UNET_CONFIG`).

    Returns:
        ``(state_dict, unet_config)``.

    Raises:
        FileNotFoundError: missing path/config/weights; ValueError: unknown file type or key layout.
    """
    path = Path(path)
    if path.is_dir():
        folder = path / "unet" if (path / "unet" / "config.json").is_file() else path
        return load_file(_folder_weights(folder)), _read_config(folder)
    if not path.is_file():
        raise FileNotFoundError(f"SD 1.5 UNet checkpoint not found: {path}")
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: expected a diffusers folder or a .safetensors file, found {path.suffix!r}")
    config = dict(_to_plain(config) or SD15_UNET_CONFIG)
    state = load_file(path)
    if any(k.startswith("model.diffusion_model.") for k in state):
        from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

        state = convert_ldm_unet_checkpoint(state, config)
    elif "conv_in.weight" not in state:
        raise ValueError(
            f"{path}: neither diffusers UNet keys (conv_in.weight) nor original SD keys "
            f"(model.diffusion_model.*) found; first keys: {list(state)[:3]}"
        )
    return state, config


def read_motion_adapter(path: str | Path, config: dict | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an AnimateDiff ``MotionAdapter`` (diffusers folder, or ``.safetensors`` + ``config``).

    Returns:
        ``(state_dict, motion_adapter_config)``; keys like ``down_blocks.0.motion_modules.0.*``.

    Raises:
        FileNotFoundError / ValueError: missing files, or a single file without ``config``.
    """
    path = Path(path)
    if path.is_dir():
        return load_file(_folder_weights(path)), _read_config(path)
    if not path.is_file():
        raise FileNotFoundError(f"motion adapter not found: {path}")
    if path.suffix != ".safetensors" or config is None:
        raise ValueError(
            f"{path}: a single-file motion adapter must be diffusers-layout .safetensors with an explicit "
            "config; convert original AnimateDiff .ckpt files to a diffusers MotionAdapter folder first"
        )
    state = load_file(path)
    if not any(".motion_modules." in k for k in state):
        raise ValueError(f"{path}: no motion_modules keys found; first keys: {list(state)[:3]}")
    return state, dict(_to_plain(config))


def load_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> LoadReport:
    """Copy ``state_dict`` into ``model`` (non-strict) and report missing/unexpected keys.

    Raises:
        ValueError: any common key has a different shape (lists every mismatch, with ``source``).
    """
    own = model.state_dict()
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and own[k].shape != v.shape
    ]
    if mismatched:
        raise ValueError(f"{source}: {len(mismatched)} shape mismatches, e.g. " + "; ".join(mismatched[:5]))
    result = model.load_state_dict(state_dict, strict=False)
    report = LoadReport(source, list(result.missing_keys), list(result.unexpected_keys))
    logger.info("loaded %s", report)
    return report


def denoising_config_from_unet2d(unet_config: dict, motion_config: dict | None = None,
                                 condition: dict | None = None) -> dict:
    """DenoisingNet config from a ``UNet2DConditionModel`` config (+ ``MotionAdapter`` config).

    Block types map to their motion counterparts (as ``UNetMotionModel.from_unet2d``), SD 1.5's
    ``attention_head_dim`` (= number of heads) becomes ``num_attention_heads``.

    Raises:
        ValueError: a UNet feature FLAP does not support, or adapter/UNet layout mismatch.
    """
    unet_config = dict(_to_plain(unet_config))
    motion_config = dict(_to_plain(motion_config) or {})
    for key, ok in (("class_embed_type", None), ("addition_embed_type", None), ("time_embedding_type", "positional"),
                    ("mid_block_type", "UNetMidBlock2DCrossAttn")):
        if unet_config.get(key, ok) != ok:
            raise ValueError(f"UNet config: {key}={unet_config[key]!r} is not supported (expected {ok!r})")
    cfg = {
        k: unet_config[k]
        for k in ("sample_size", "in_channels", "out_channels", "block_out_channels", "layers_per_block",
                  "downsample_padding", "mid_block_scale_factor", "act_fn", "norm_num_groups", "norm_eps",
                  "cross_attention_dim", "transformer_layers_per_block", "use_linear_projection")
        if k in unet_config
    }
    cfg["down_block_types"] = [
        "CrossAttnDownBlockMotion" if "CrossAttn" in t else "DownBlockMotion" for t in unet_config["down_block_types"]
    ]
    cfg["up_block_types"] = [
        "CrossAttnUpBlockMotion" if "CrossAttn" in t else "UpBlockMotion" for t in unet_config["up_block_types"]
    ]
    cfg["num_attention_heads"] = unet_config.get("num_attention_heads") or unet_config.get("attention_head_dim", 8)
    if motion_config:
        if motion_config.get("conv_in_channels"):
            raise ValueError("motion adapter: conv_in_channels (PIA adapters) is not supported")
        layers = motion_config.get("motion_layers_per_block", cfg.get("layers_per_block", 2))
        if layers != cfg.get("layers_per_block", 2):
            raise ValueError(
                f"motion adapter: motion_layers_per_block={layers} differs from the UNet's "
                f"layers_per_block={cfg.get('layers_per_block', 2)}"
            )
        groups = motion_config.get("motion_norm_num_groups", cfg.get("norm_num_groups", 32))
        if groups != cfg.get("norm_num_groups", 32):
            raise ValueError(
                f"motion adapter: motion_norm_num_groups={groups} differs from norm_num_groups={cfg.get('norm_num_groups', 32)}"
            )
        if list(motion_config.get("block_out_channels", cfg["block_out_channels"])) != list(cfg["block_out_channels"]):
            raise ValueError(
                f"motion adapter: block_out_channels={motion_config['block_out_channels']} differ from the UNet's "
                f"{cfg['block_out_channels']}"
            )
        for src, dst in (("motion_num_attention_heads", "motion_num_attention_heads"),
                         ("motion_max_seq_length", "motion_max_seq_length"),
                         ("use_motion_mid_block", "use_motion_mid_block"),
                         ("motion_transformer_layers_per_block", "temporal_transformer_layers_per_block"),
                         ("motion_transformer_layers_per_mid_block", "temporal_transformer_layers_per_mid_block")):
            if src in motion_config:
                cfg[dst] = motion_config[src]
    cfg.update(_to_plain(condition) or {})
    return cfg


def build_flap_unets(
    unet: dict | None = None,
    motion: dict | None = None,
    condition: dict | None = None,
    pretrained_unet: str | Path | None = None,
    motion_adapter: str | Path | None = None,
    torch_dtype: torch.dtype | str | None = None,
) -> FLAPUNets:
    """Build ReferenceNet + DenoisingNet (Hydra target of ``flap/conf/model/flap_*.yaml``).

    Args:
        unet: ``UNet2DConditionModel`` config (ignored when ``pretrained_unet`` is a folder: its
            ``config.json`` wins); default :data:`SD15_UNET_CONFIG`.
        motion: ``MotionAdapter``-style config (``motion_num_attention_heads``, ``motion_max_seq_length``,
            ``use_motion_mid_block``…); a loaded adapter's config wins.
        condition: ``condition_dim``, ``num_head_motion_tokens``, ``num_expression_tokens``,
            ``condition_hidden_dim`` for :class:`DenoisingNet`.
        pretrained_unet: local SD 1.5 UNet (see :func:`read_unet_checkpoint`), loaded into both nets.
        motion_adapter: local ``MotionAdapter`` folder, loaded into the temporal layers.
        torch_dtype: e.g. ``torch.float16`` or ``"bfloat16"``.

    Returns:
        :class:`FLAPUNets`; ``reports`` has a :class:`LoadReport` per loaded network.
    """
    unet_config = dict(_to_plain(unet) or SD15_UNET_CONFIG)
    unet_state, adapter_state = None, {}
    if pretrained_unet is not None:
        unet_state, unet_config = read_unet_checkpoint(pretrained_unet, unet_config)
    motion_config = _to_plain(motion)
    if motion_adapter is not None:
        adapter_state, motion_config = read_motion_adapter(motion_adapter, motion_config)
    reference_net = ReferenceNet.from_config(unet_config)
    denoising_net = DenoisingNet.from_config(denoising_config_from_unet2d(unet_config, motion_config, condition))
    reports = {}
    if unet_state is not None:
        reports["reference_net"] = load_weights(reference_net, unet_state, str(pretrained_unet))
    if unet_state is not None or adapter_state:
        sources = " + ".join(str(s) for s in (pretrained_unet, motion_adapter) if s is not None)
        reports["denoising_net"] = load_weights(denoising_net, {**(unet_state or {}), **adapter_state}, sources)
    if torch_dtype is not None:
        dtype = getattr(torch, torch_dtype) if isinstance(torch_dtype, str) else torch_dtype
        reference_net.to(dtype)
        denoising_net.to(dtype)
    return FLAPUNets(reference_net, denoising_net, reports)
