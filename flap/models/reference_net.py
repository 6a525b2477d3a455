"""ReferenceNet: encodes the portrait latent once per video (paper Sec. 4.1, Fig. 2).

A :class:`diffusers.UNet2DConditionModel` (SD 1.5 layout, same parameter names, so SD 1.5 weights
load unchanged) whose self-attention layers (``attn1`` of every ``BasicTransformerBlock``) run
:class:`ReferenceRecordAttnProcessor`: it stores the hidden states *entering* self-attention into the
bank passed with the call, then attends normally. :meth:`ReferenceNet.forward` returns these
tensors as a :class:`ReferenceFeatures` object, which the caller passes to every DenoisingNet call
(every denoising step, every window): the reference pass runs once per video, no hidden state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

__all__ = ["ReferenceNet", "ReferenceFeatures", "ReferenceRecordAttnProcessor", "self_attention_names"]


def self_attention_names(model: torch.nn.Module) -> list[str]:
    """Names (``"down_blocks.0.attentions.0.transformer_blocks.0.attn1"``…) of the spatial
    self-attention layers of a UNet, in module order; AnimateDiff ``motion_modules`` are excluded."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, Attention) and name.endswith(".attn1") and ".transformer_blocks." in name
        and "motion_modules" not in name
    ]


@dataclass
class ReferenceFeatures:
    """Hidden states entering each self-attention layer of the ReferenceNet.

    Attributes:
        tensors: ``{attn1 layer name: (B, H_l*W_l, C_l)}`` (names as in :func:`self_attention_names`).
        batch_size: ``B`` (the number of reference images).
    """

    tensors: dict[str, torch.Tensor]
    batch_size: int

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(
                f"ReferenceFeatures: no features for layer {name!r}; ReferenceNet and DenoisingNet "
                f"layouts differ (have {len(self.tensors)} layers, e.g. {next(iter(self.tensors), None)!r})"
            ) from None

    def to(self, *args, **kwargs) -> ReferenceFeatures:
        """Return a copy with every tensor moved/cast (``torch.Tensor.to`` arguments)."""
        return ReferenceFeatures({k: v.to(*args, **kwargs) for k, v in self.tensors.items()}, self.batch_size)

    def repeat(self, times: int) -> ReferenceFeatures:
        """Concatenate ``times`` copies along the batch (e.g. ``2`` for [uncond; cond] CFG batches)."""
        return ReferenceFeatures({k: v.repeat(times, 1, 1) for k, v in self.tensors.items()}, self.batch_size * times)

    def select(self, index) -> ReferenceFeatures:
        """Keep the batch entries ``index`` (int, slice, list or bool/long tensor)."""
        if isinstance(index, int):
            index = [index]
        tensors = {k: v[index] for k, v in self.tensors.items()}
        return ReferenceFeatures(tensors, next(iter(tensors.values())).shape[0] if tensors else 0)

    def detach(self) -> ReferenceFeatures:
        """Return a copy cut from the autograd graph."""
        return ReferenceFeatures({k: v.detach() for k, v in self.tensors.items()}, self.batch_size)


class ReferenceRecordAttnProcessor:
    """SDPA attention processor that, if ``name`` is set, writes its input into ``reference_bank``.

    Args:
        name: key under which the input ``(B, N, C)`` is stored (the attention layer's name), or
            ``None`` for layers that must not record (e.g. ``attn2``); they still accept the bank.
    """

    def __init__(self, name: str | None = None):
        self.name = name

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        reference_bank: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if self.name is not None and reference_bank is not None:
            reference_bank[self.name] = hidden_states
        return sdpa_attention(attn, hidden_states, encoder_hidden_states, attention_mask)


#: diffusers' SDPA attention processor (stateless; shared by FLAP's attention processors)
_SDPA_PROCESSOR = AttnProcessor2_0()


def sdpa_attention(attn: Attention, hidden_states: torch.Tensor, context: torch.Tensor | None = None,
                   attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-head attention of ``attn`` on ``(B, N, C)`` tokens with diffusers' ``AttnProcessor2_0``
    (PyTorch SDPA). ``context`` ``(B, M, C_ctx)`` defaults to ``hidden_states`` (self-attention)."""
    return _SDPA_PROCESSOR(attn, hidden_states, encoder_hidden_states=context, attention_mask=attention_mask)


class ReferenceNet(UNet2DConditionModel):
    """SD 1.5-layout UNet run once on the reference latent; records self-attention inputs.

    Constructor arguments are those of :class:`diffusers.UNet2DConditionModel` (``flap/conf/model/*.yaml``
    give SD 1.5 and tiny sizes). Parameter names equal SD 1.5's, so ``load_state_dict`` of an SD 1.5
    UNet is exact. All its parameters belong to the ``spatial`` (reference) training group.
    """

    def set_reference_processors(self) -> None:
        """(Re)install :class:`ReferenceRecordAttnProcessor` on every attention layer (attn1 records).

        Called by :meth:`forward` when another processor was installed (e.g. by
        ``set_default_attn_processor``); the constructor is diffusers' own, so configs round-trip.
        """
        recorded = set(self_attention_names(self))
        procs = {}
        for name in self.attn_processors:
            layer = name[: -len(".processor")]
            procs[name] = ReferenceRecordAttnProcessor(layer if layer in recorded else None)
        self.set_attn_processor(procs)

    def _has_reference_processors(self) -> bool:
        return all(isinstance(p, ReferenceRecordAttnProcessor) for p in self.attn_processors.values())

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        """``{"spatial": all parameters}`` (the reference path; see docs/DESIGN.md training stages)."""
        return {"spatial": list(self.parameters())}

    def forward(
        self,
        reference_latent: torch.Tensor,
        timestep: torch.Tensor | float | int = 0,
        encoder_hidden_states: torch.Tensor | None = None,
    ) -> ReferenceFeatures:
        """Run the reference pass.

        Args:
            reference_latent: ``(B, C, H, W)`` VAE latent of the portrait (scaled like the
                denoising latents), or ``(B, C, 1, H, W)``.
            timestep: diffusion timestep of the reference (0: clean image).
            encoder_hidden_states: ``(B, L, cross_attention_dim)`` context for ``attn2``; ``None``
                → one zero token (FLAP uses no text prompt).

        Returns:
            :class:`ReferenceFeatures` with one ``(B, H_l*W_l, C_l)`` tensor per self-attention layer.

        Raises:
            ValueError: wrong latent shape.
        """
        if reference_latent.ndim == 5 and reference_latent.shape[2] == 1:
            reference_latent = reference_latent[:, :, 0]
        if reference_latent.ndim != 4 or reference_latent.shape[1] != self.config.in_channels:
            raise ValueError(
                f"ReferenceNet: expected reference_latent (B, {self.config.in_channels}, H, W), "
                f"found {tuple(reference_latent.shape)}"
            )
        b = reference_latent.shape[0]
        if encoder_hidden_states is None:
            encoder_hidden_states = reference_latent.new_zeros(b, 1, self.config.cross_attention_dim)
        if not self._has_reference_processors():
            self.set_reference_processors()
        bank: dict[str, torch.Tensor] = {}
        super().forward(
            reference_latent,
            timestep,
            encoder_hidden_states=encoder_hidden_states,
            cross_attention_kwargs={"reference_bank": bank},
            return_dict=False,
        )
        expected = self_attention_names(self)
        return ReferenceFeatures({n: bank[n] for n in expected}, b)
