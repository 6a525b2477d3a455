"""DenoisingNet: the video UNet of FLAP (paper Sec. 4.1-4.2, Fig. 2).

Built on diffusers' :class:`~diffusers.UNetMotionModel` (SD 1.5 layout + AnimateDiff motion
modules, so SD 1.5 and ``MotionAdapter`` weights load under their own names). Every spatial
``BasicTransformerBlock`` is a :class:`FLAPTransformerBlock` that runs, in order:

1. **head-motion attention** — cross-attention to the ``c_motion`` tokens of its frame;
2. **spatial attention** — ``attn1`` with :class:`ReferenceAttnProcessor`: self-attention whose
   keys/values are ``[frame tokens; ReferenceNet tokens of the same layer]``;
3. **expression attention** — cross-attention to the ``c_exp`` tokens of its frame;
   (then SD's own ``attn2`` context cross-attention and feed-forward, unchanged);
4. **temporal layer** — the AnimateDiff motion module that follows the transformer
   (:class:`TemporalLayer`, diffusers' ``AnimateDiffTransformer3D`` with an on/off switch).

New layers start as no-ops: zero output projections (head-motion, expression, temporal) and a
zero gate on the reference part of the spatial attention, so a freshly built DenoisingNet with SD
1.5 weights computes exactly SD 1.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import UNetMotionModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D, UNetMotionOutput
from torch import nn

from flap.models.conditions import ExpressionEncoder, HeadMotionEncoder
from flap.models.param_groups import parameter_group
from flap.models.reference_net import ReferenceFeatures, sdpa_attention

__all__ = [
    "DenoisingNet",
    "FLAPTransformerBlock",
    "FLAPBlockInputs",
    "ReferenceAttnProcessor",
    "TemporalLayer",
]


@dataclass
class FLAPBlockInputs:
    """What every :class:`FLAPTransformerBlock` reads (passed as ``cross_attention_kwargs["flap"]``).

    Attributes:
        head_motion_tokens: ``(B*F, L_m, D)`` head-motion tokens, frame-major within each sample.
        expression_tokens: ``(B*F, L_e, D)`` expression tokens.
        reference: ReferenceNet features (batch ``B`` or 1) or ``None`` (plain self-attention).
        num_frames: ``F``.
    """

    head_motion_tokens: torch.Tensor
    expression_tokens: torch.Tensor
    reference: ReferenceFeatures | None
    num_frames: int


class ReferenceAttnProcessor:
    """``attn1`` processor of the DenoisingNet: gated self-attention over [frame; reference] tokens.

    ``out = to_out(A_self + g ⊙ (A_joint - A_self))`` where ``A_self`` attends over the frame's
    tokens, ``A_joint`` over ``[frame tokens; reference tokens]`` (one softmax, paper Sec. 4.1) and
    ``g`` is the block's ``spatial_gate`` (``(heads*head_dim,)``, zero at init: no-op). With
    ``g = 1`` this is exactly the paper's reference attention. Reference keys/values are projected
    once per reference image and shared by its ``F`` frames.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        reference_hidden_states: torch.Tensor | None = None,
        reference_gate: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if reference_hidden_states is None:
            return sdpa_attention(attn, hidden_states, encoder_hidden_states, attention_mask)
        if attention_mask is not None:
            raise ValueError("ReferenceAttnProcessor: attention_mask is not supported with reference tokens")
        b, n, _ = hidden_states.shape
        ref = reference_hidden_states.to(hidden_states.dtype)
        rb = ref.shape[0]
        if b % rb:
            raise ValueError(f"ReferenceAttnProcessor: batch {b} is not a multiple of reference batch {rb}")
        heads = attn.heads
        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        ref_key, ref_value = attn.to_k(ref), attn.to_v(ref)
        head_dim = key.shape[-1] // heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(x.shape[0], -1, heads, head_dim).transpose(1, 2)

        query, key, value = split(query), split(key), split(value)
        ref_key = split(ref_key).repeat_interleave(b // rb, dim=0)
        ref_value = split(ref_value).repeat_interleave(b // rb, dim=0)
        own = F.scaled_dot_product_attention(query, key, value)
        joint = F.scaled_dot_product_attention(
            query, torch.cat([key, ref_key], dim=2), torch.cat([value, ref_value], dim=2)
        )
        own = own.transpose(1, 2).reshape(b, n, heads * head_dim)
        joint = joint.transpose(1, 2).reshape(b, n, heads * head_dim)
        gate = reference_gate.to(own.dtype) if reference_gate is not None else 1.0
        out = own + gate * (joint - own)
        out = attn.to_out[1](attn.to_out[0](out.to(query.dtype)))
        return out / attn.rescale_output_factor


def _zero_init_(module: nn.Module) -> None:
    for p in module.parameters():
        nn.init.zeros_(p)


class FLAPTransformerBlock(BasicTransformerBlock):
    """SD transformer block + FLAP's head-motion, reference (spatial) and expression layers.

    Args:
        dim, num_attention_heads, attention_head_dim, **kwargs: as
            :class:`diffusers.models.attention.BasicTransformerBlock` (``norm_type="layer_norm"``).
        condition_dim: channels ``D`` of the head-motion/expression tokens.
        reference_name: key of this block's ``attn1`` in :class:`ReferenceFeatures`.

    New submodules (parameter groups by name): ``head_motion_norm``/``head_motion_attn``
    (``head_motion``), ``spatial_gate`` (``spatial``), ``expression_norm``/``expression_attn``
    (``expression``); their outputs are zero at init.
    """

    def __init__(self, dim: int, num_attention_heads: int, attention_head_dim: int, *,
                 condition_dim: int, reference_name: str, **kwargs):
        super().__init__(dim, num_attention_heads, attention_head_dim, **kwargs)
        if self.norm_type != "layer_norm" or self.pos_embed is not None or self.only_cross_attention:
            raise ValueError(
                f"FLAPTransformerBlock supports the SD 1.5 block (layer_norm, no positional embedding, "
                f"self-attention attn1); got norm_type={self.norm_type!r}"
            )
        self.reference_name = reference_name
        eps = self.norm1.eps
        affine = self.norm_elementwise_affine
        attn_kwargs = dict(query_dim=dim, cross_attention_dim=condition_dim, heads=num_attention_heads,
                           dim_head=attention_head_dim, bias=self.attention_bias)
        self.head_motion_norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)
        self.head_motion_attn = Attention(**attn_kwargs)
        self.spatial_gate = nn.Parameter(torch.zeros(num_attention_heads * attention_head_dim))
        self.expression_norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)
        self.expression_attn = Attention(**attn_kwargs)
        _zero_init_(self.head_motion_attn.to_out)
        _zero_init_(self.expression_attn.to_out)
        self.attn1.set_processor(ReferenceAttnProcessor())

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        timestep: torch.LongTensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        class_labels: torch.LongTensor | None = None,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``hidden_states`` ``(B*F, H*W, dim)`` → same shape; FLAP inputs come in
        ``cross_attention_kwargs["flap"]`` (:class:`FLAPBlockInputs`).

        Raises:
            ValueError: ``cross_attention_kwargs["flap"]`` is missing.
        """
        flap = (cross_attention_kwargs or {}).get("flap")
        if not isinstance(flap, FLAPBlockInputs):
            raise ValueError("FLAPTransformerBlock: cross_attention_kwargs['flap'] (FLAPBlockInputs) is required")
        reference = flap.reference[self.reference_name] if flap.reference is not None else None
        if reference is not None and not isinstance(self.attn1.processor, ReferenceAttnProcessor):
            raise ValueError(
                f"FLAPTransformerBlock {self.reference_name}: attn1 processor "
                f"{type(self.attn1.processor).__name__} cannot read reference tokens; call "
                "DenoisingNet.set_reference_processors()"
            )

        # 1. head-motion attention (c_motion tokens)
        hidden_states = hidden_states + self.head_motion_attn(
            self.head_motion_norm(hidden_states), encoder_hidden_states=flap.head_motion_tokens
        )
        # 2. spatial attention over [frame tokens; reference tokens]
        hidden_states = hidden_states + self.attn1(
            self.norm1(hidden_states), reference_hidden_states=reference, reference_gate=self.spatial_gate
        )
        # 3. expression attention (c_exp tokens)
        hidden_states = hidden_states + self.expression_attn(
            self.expression_norm(hidden_states), encoder_hidden_states=flap.expression_tokens
        )
        # SD 1.5 context cross-attention and feed-forward (unchanged)
        if self.attn2 is not None:
            hidden_states = hidden_states + self.attn2(
                self.norm2(hidden_states), encoder_hidden_states=encoder_hidden_states,
                attention_mask=encoder_attention_mask,
            )
        hidden_states = hidden_states + self.ff(self.norm3(hidden_states))
        # 4. the temporal layer is the AnimateDiff motion module that follows this transformer
        return hidden_states


class TemporalLayer(AnimateDiffTransformer3D):
    """AnimateDiff motion module (diffusers' ``AnimateDiffTransformer3D``, same parameter names)
    with an ``enabled`` switch: when ``False`` it is skipped (identity), e.g. for image-pair
    training (stages 1-2) or frame-independence tests. ``proj_out`` is zero at init (no-op)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.enabled = True
        _zero_init_(self.proj_out)

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """``(B*F, C, H, W)`` → same; attention along frames (``num_frames`` keyword)."""
        if not self.enabled:
            return hidden_states
        return super().forward(hidden_states, *args, **kwargs)

    @classmethod
    def like(cls, module: AnimateDiffTransformer3D) -> TemporalLayer:
        """A fresh :class:`TemporalLayer` with the same configuration as ``module``."""
        block = module.transformer_blocks[0]
        return cls(
            num_attention_heads=module.num_attention_heads,
            attention_head_dim=module.attention_head_dim,
            in_channels=module.in_channels,
            num_layers=len(module.transformer_blocks),
            norm_num_groups=module.norm.num_groups,
            cross_attention_dim=block.cross_attention_dim,
            attention_bias=block.attention_bias,
            activation_fn=block.activation_fn,
            positional_embeddings=block.positional_embeddings,
            num_positional_embeddings=block.num_positional_embeddings,
            double_self_attention=block.double_self_attention,
        )


def _flap_block_like(block: BasicTransformerBlock, condition_dim: int, reference_name: str) -> FLAPTransformerBlock:
    attn1, attn2 = block.attn1, block.attn2
    return FLAPTransformerBlock(
        block.dim,
        block.num_attention_heads,
        block.attention_head_dim,
        condition_dim=condition_dim,
        reference_name=reference_name,
        dropout=block.dropout,
        cross_attention_dim=block.cross_attention_dim,
        activation_fn=block.activation_fn,
        attention_bias=block.attention_bias,
        double_self_attention=block.double_self_attention,
        upcast_attention=attn1.upcast_attention,
        norm_elementwise_affine=block.norm_elementwise_affine,
        norm_eps=block.norm1.eps,
        attention_out_bias=attn2.to_out[0].bias is not None if attn2 is not None else True,
    )


class DenoisingNet(UNetMotionModel):
    """FLAP's denoising video UNet (SD 1.5 layout + FLAP layers + AnimateDiff temporal layers).

    Constructor arguments: those of :class:`diffusers.UNetMotionModel`, plus

    Args:
        condition_dim: channels ``D`` of the condition tokens (``cross_attention_dim`` of the
            head-motion and expression attentions).
        num_head_motion_tokens, num_expression_tokens: tokens per frame for ``c_motion`` / ``c_exp``.
        condition_hidden_dim: MLP width of the condition encoders.

    Submodules: ``head_motion_encoder`` (:class:`HeadMotionEncoder`), ``expression_encoder``
    (:class:`ExpressionEncoder`); all spatial transformer blocks are :class:`FLAPTransformerBlock`
    and all motion modules :class:`TemporalLayer`. Attention uses PyTorch SDPA.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        down_block_types: tuple[str, ...] = (
            "CrossAttnDownBlockMotion", "CrossAttnDownBlockMotion", "CrossAttnDownBlockMotion", "DownBlockMotion",
        ),
        up_block_types: tuple[str, ...] = (
            "UpBlockMotion", "CrossAttnUpBlockMotion", "CrossAttnUpBlockMotion", "CrossAttnUpBlockMotion",
        ),
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int | tuple[int] = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 768,
        transformer_layers_per_block: int | tuple[int] = 1,
        reverse_transformer_layers_per_block: int | tuple[int] | None = None,
        temporal_transformer_layers_per_block: int | tuple[int] = 1,
        reverse_temporal_transformer_layers_per_block: int | tuple[int] | None = None,
        transformer_layers_per_mid_block: int | None = None,
        temporal_transformer_layers_per_mid_block: int | None = 1,
        use_linear_projection: bool = False,
        num_attention_heads: int | tuple[int, ...] = 8,
        motion_max_seq_length: int = 32,
        motion_num_attention_heads: int | tuple[int, ...] = 8,
        reverse_motion_num_attention_heads: int | tuple[int, ...] | None = None,
        use_motion_mid_block: bool = True,
        mid_block_layers: int = 1,
        encoder_hid_dim: int | None = None,
        encoder_hid_dim_type: str | None = None,
        addition_embed_type: str | None = None,
        addition_time_embed_dim: int | None = None,
        projection_class_embeddings_input_dim: int | None = None,
        time_cond_proj_dim: int | None = None,
        condition_dim: int = 768,
        num_head_motion_tokens: int = 4,
        num_expression_tokens: int = 8,
        condition_hidden_dim: int = 256,
    ):
        super().__init__(
            sample_size=sample_size, in_channels=in_channels, out_channels=out_channels,
            down_block_types=down_block_types, up_block_types=up_block_types,
            block_out_channels=block_out_channels, layers_per_block=layers_per_block,
            downsample_padding=downsample_padding, mid_block_scale_factor=mid_block_scale_factor,
            act_fn=act_fn, norm_num_groups=norm_num_groups, norm_eps=norm_eps,
            cross_attention_dim=cross_attention_dim, transformer_layers_per_block=transformer_layers_per_block,
            reverse_transformer_layers_per_block=reverse_transformer_layers_per_block,
            temporal_transformer_layers_per_block=temporal_transformer_layers_per_block,
            reverse_temporal_transformer_layers_per_block=reverse_temporal_transformer_layers_per_block,
            transformer_layers_per_mid_block=transformer_layers_per_mid_block,
            temporal_transformer_layers_per_mid_block=temporal_transformer_layers_per_mid_block,
            use_linear_projection=use_linear_projection, num_attention_heads=num_attention_heads,
            motion_max_seq_length=motion_max_seq_length, motion_num_attention_heads=motion_num_attention_heads,
            reverse_motion_num_attention_heads=reverse_motion_num_attention_heads,
            use_motion_mid_block=use_motion_mid_block, mid_block_layers=mid_block_layers,
            encoder_hid_dim=encoder_hid_dim, encoder_hid_dim_type=encoder_hid_dim_type,
            addition_embed_type=addition_embed_type, addition_time_embed_dim=addition_time_embed_dim,
            projection_class_embeddings_input_dim=projection_class_embeddings_input_dim,
            time_cond_proj_dim=time_cond_proj_dim,
        )
        self.head_motion_encoder = HeadMotionEncoder(condition_dim, num_head_motion_tokens, condition_hidden_dim)
        self.expression_encoder = ExpressionEncoder(condition_dim, num_expression_tokens, condition_hidden_dim)
        self._install_flap_layers(condition_dim)


    #: config keys renamed since checkpoints were written (old name → new name); see extract_init_dict
    RENAMED_CONFIG_KEYS = {"num_motion_tokens": "num_head_motion_tokens"}

    @classmethod
    def extract_init_dict(cls, config_dict, **kwargs):
        """diffusers' config parsing, reading old key names too (:data:`RENAMED_CONFIG_KEYS`), so
        checkpoints written before the ``head_motion_*`` naming still load with their values."""
        config_dict = dict(config_dict)
        for old, new in cls.RENAMED_CONFIG_KEYS.items():
            if old in config_dict:
                config_dict.setdefault(new, config_dict.pop(old))
        return super().extract_init_dict(config_dict, **kwargs)

    def _install_flap_layers(self, condition_dim: int) -> None:
        """Swap diffusers' spatial blocks / motion modules for FLAP's subclasses (same names)."""
        for name, module in list(self.named_modules()):
            if isinstance(module, Transformer2DModel):
                for i, block in enumerate(module.transformer_blocks):
                    ref_name = f"{name}.transformer_blocks.{i}.attn1"
                    module.transformer_blocks[i] = _flap_block_like(block, condition_dim, ref_name)
            elif hasattr(module, "motion_modules") and isinstance(module.motion_modules, nn.ModuleList):
                for i, motion in enumerate(module.motion_modules):
                    module.motion_modules[i] = TemporalLayer.like(motion)

    def set_reference_processors(self) -> None:
        """(Re)install :class:`ReferenceAttnProcessor` on every spatial ``attn1`` (e.g. after
        ``set_default_attn_processor``, which would drop the reference tokens)."""
        for module in self.modules():
            if isinstance(module, FLAPTransformerBlock):
                module.attn1.set_processor(ReferenceAttnProcessor())

    # ------------------------------------------------------------------ groups and switches
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``{"head_motion", "spatial", "expression", "temporal", "base"} → parameters``.

        Every parameter is in exactly one group (see :func:`flap.models.param_groups.parameter_group`).
        """
        groups: dict[str, list[nn.Parameter]] = {
            g: [] for g in ("head_motion", "spatial", "expression", "temporal", "base")
        }
        for name, param in self.named_parameters():
            groups[parameter_group(name)].append(param)
        return groups

    def set_temporal_enabled(self, enabled: bool) -> None:
        """Switch every temporal layer on/off (off: frames are processed independently)."""
        for module in self.modules():
            if isinstance(module, TemporalLayer):
                module.enabled = bool(enabled)

    @property
    def temporal_enabled(self) -> bool:
        """``True`` when the temporal layers run."""
        return any(m.enabled for m in self.modules() if isinstance(m, TemporalLayer))

    # ------------------------------------------------------------------ forward
    def encode_conditions(
        self,
        c_motion: torch.Tensor | None,
        c_exp: torch.Tensor | None,
        batch: int,
        frames: int,
        head_motion_null_mask: torch.Tensor | None = None,
        expression_null_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Condition tokens ``(B*F, L_m, D)`` and ``(B*F, L_e, D)`` in the model dtype.

        ``c_motion`` ``(B, F, 3)`` and ``c_exp`` ``(B, F, 117)``; ``None`` → null tokens.

        Raises:
            ValueError: a condition does not have ``B`` samples and ``F`` frames.
        """
        for label, cond in (("c_motion", c_motion), ("c_exp", c_exp)):
            if cond is not None and tuple(cond.shape[:2]) != (batch, frames):
                raise ValueError(
                    f"DenoisingNet: {label} must be (B={batch}, F={frames}, ...), found {tuple(cond.shape)}"
                )
        motion = self.head_motion_encoder(c_motion, head_motion_null_mask, batch, frames)
        expression = self.expression_encoder(c_exp, expression_null_mask, batch, frames)
        return (
            motion.reshape(batch * frames, *motion.shape[2:]).to(self.dtype),
            expression.reshape(batch * frames, *expression.shape[2:]).to(self.dtype),
        )

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        reference: ReferenceFeatures | None = None,
        c_motion: torch.Tensor | None = None,
        c_exp: torch.Tensor | None = None,
        head_motion_null_mask: torch.Tensor | None = None,
        expression_null_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNetMotionOutput | tuple[torch.Tensor]:
        """Predict the noise ε for a video latent (paper Eq. 4).

        Args:
            sample: ``(B, C, F, H, W)`` noisy latents.
            timestep: scalar or ``(B,)`` diffusion timesteps.
            reference: output of :meth:`ReferenceNet.forward` (batch ``B`` or 1), computed once per
                video and reused for every step/window; ``None`` disables the reference tokens.
            c_motion: ``(B, F, 3)`` head rotation, axis-angle radians; ``None`` → null tokens.
            c_exp: ``(B, F, 117)`` eyes/jaw/eyelids/expression; ``None`` → null tokens.
            head_motion_null_mask, expression_null_mask: ``(B,)`` or ``(B, F)`` booleans; ``True`` replaces
                that sample's (frame's) tokens by the learned null tokens (classifier-free guidance).
            encoder_hidden_states: ``(B, L, cross_attention_dim)`` context for SD's ``attn2``
                (e.g. an image embedding); ``None`` → one zero token.
            return_dict: return :class:`UNetMotionOutput` (``.sample`` ``(B, C, F, H, W)``) or a tuple.

        Raises:
            ValueError: wrong sample rank, condition shapes, reference batch, or ``F`` above
                ``motion_max_seq_length`` while the temporal layers are on.
        """
        if sample.ndim != 5:
            raise ValueError(f"DenoisingNet: sample must be (B, C, F, H, W), found {tuple(sample.shape)}")
        b, _, f = sample.shape[:3]
        if self.temporal_enabled and f > self.config.motion_max_seq_length:
            raise ValueError(
                f"DenoisingNet: {f} frames exceed motion_max_seq_length={self.config.motion_max_seq_length}; "
                "use shorter windows"
            )
        if reference is not None and reference.batch_size not in (1, b):
            raise ValueError(
                f"DenoisingNet: reference batch must be 1 or B={b}, found {reference.batch_size} "
                "(use ReferenceFeatures.repeat for CFG batches)"
            )
        motion, expression = self.encode_conditions(c_motion, c_exp, b, f, head_motion_null_mask, expression_null_mask)
        if encoder_hidden_states is None:
            encoder_hidden_states = sample.new_zeros(b * f, 1, self.config.cross_attention_dim, dtype=self.dtype)
        elif encoder_hidden_states.shape[0] == b:
            encoder_hidden_states = encoder_hidden_states.repeat_interleave(f, dim=0)
        flap = FLAPBlockInputs(motion, expression, reference, f)
        return super().forward(
            sample,
            timestep,
            encoder_hidden_states=encoder_hidden_states,
            cross_attention_kwargs={"flap": flap},
            return_dict=return_dict,
        )
