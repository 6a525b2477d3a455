"""FLAP's dual UNet (paper Sec. 4.1-4.3): ReferenceNet, DenoisingNet, condition encoders, loading.

Typical use::

    from flap.models import build_flap_unets
    nets = build_flap_unets(pretrained_unet="sd15/unet", motion_adapter="animatediff_adapter")
    reference = nets.reference_net(ref_latent)              # once per video
    eps = nets.denoising_net(latents, t, reference=reference, c_motion=cm, c_exp=ce).sample
"""

from flap.models.conditions import ConditionEncoder, ExpressionEncoder, HeadMotionEncoder, expand_null_mask
from flap.models.denoising_net import (
    DenoisingNet,
    FLAPBlockInputs,
    FLAPTransformerBlock,
    ReferenceAttnProcessor,
    TemporalLayer,
)
from flap.models.loading import (
    SD15_UNET_CONFIG,
    FLAPUNets,
    LoadReport,
    build_flap_unets,
    denoising_config_from_unet2d,
    load_weights,
    read_motion_adapter,
    read_unet_checkpoint,
)
from flap.models.param_groups import (
    PARAMETER_GROUPS,
    STAGE_TRAINABLE_GROUPS,
    parameter_group,
    set_trainable_groups,
)
from flap.models.reference_net import ReferenceFeatures, ReferenceNet, ReferenceRecordAttnProcessor

__all__ = [
    "ConditionEncoder",
    "HeadMotionEncoder",
    "ExpressionEncoder",
    "expand_null_mask",
    "DenoisingNet",
    "FLAPBlockInputs",
    "FLAPTransformerBlock",
    "ReferenceAttnProcessor",
    "TemporalLayer",
    "ReferenceNet",
    "ReferenceFeatures",
    "ReferenceRecordAttnProcessor",
    "SD15_UNET_CONFIG",
    "FLAPUNets",
    "LoadReport",
    "build_flap_unets",
    "denoising_config_from_unet2d",
    "load_weights",
    "read_motion_adapter",
    "read_unet_checkpoint",
    "PARAMETER_GROUPS",
    "STAGE_TRAINABLE_GROUPS",
    "parameter_group",
    "set_trainable_groups",
]
