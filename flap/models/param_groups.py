"""Parameter groups of the dual UNet for Progressively Focused Training (paper Sec. 4.3, 5.1).

Groups (by parameter name in :class:`~flap.models.DenoisingNet`):

| group        | parameters                                                               |
|--------------|--------------------------------------------------------------------------|
| head_motion  | ``head_motion_encoder.*``, ``*.head_motion_norm.*``, ``*.head_motion_attn.*`` |
| spatial      | ``*.spatial_gate`` (reference attention gate); all of the ReferenceNet     |
| expression   | ``expression_encoder.*``, ``*.expression_norm.*``, ``*.expression_attn.*`` |
| temporal     | ``*.motion_modules.*`` (AnimateDiff layers)                               |
| base         | everything else (the SD 1.5 UNet)                                         |
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

__all__ = ["PARAMETER_GROUPS", "STAGE_TRAINABLE_GROUPS", "parameter_group", "set_trainable_groups"]

PARAMETER_GROUPS = ("head_motion", "spatial", "expression", "temporal", "base")

#: Suggested trainable groups per training stage (docs/DESIGN.md table): stage 1 trains the UNets and the
#: head-motion layers, stage 2 everything but the head-motion layers and the temporal layers
#: (image pairs), stage 3 the temporal layers only.
STAGE_TRAINABLE_GROUPS: dict[int, tuple[str, ...]] = {
    1: ("base", "spatial", "head_motion"),
    2: ("base", "spatial", "expression"),
    3: ("temporal",),
}


def parameter_group(name: str) -> str:
    """Group of a DenoisingNet parameter from its name (one of :data:`PARAMETER_GROUPS`)."""
    parts = name.split(".")
    if "motion_modules" in parts:
        return "temporal"
    if any(p.startswith("head_motion") for p in parts):
        return "head_motion"
    if "spatial_gate" in parts:
        return "spatial"
    if any(p.startswith("expression") for p in parts):
        return "expression"
    return "base"


def set_trainable_groups(models: nn.Module | Iterable[nn.Module], groups: Iterable[str]) -> int:
    """Set ``requires_grad`` so that exactly the parameters of ``groups`` train.

    Args:
        models: modules with a ``parameter_groups() -> {group: [params]}`` method
            (:class:`~flap.models.DenoisingNet`, :class:`~flap.models.ReferenceNet`).
        groups: names from :data:`PARAMETER_GROUPS`.

    Returns:
        The number of trainable parameter elements.

    Raises:
        ValueError: an unknown group name, or a model without ``parameter_groups``.
    """
    groups = set(groups)
    unknown = groups - set(PARAMETER_GROUPS)
    if unknown:
        raise ValueError(f"set_trainable_groups: unknown groups {sorted(unknown)}; expected {PARAMETER_GROUPS}")
    if isinstance(models, nn.Module):
        models = [models]
    count = 0
    for model in models:
        if not hasattr(model, "parameter_groups"):
            raise ValueError(f"set_trainable_groups: {type(model).__name__} has no parameter_groups()")
        for group, params in model.parameter_groups().items():
            for p in params:
                p.requires_grad_(group in groups)
                count += p.numel() if group in groups else 0
    return count
