"""Progressively Focused Training of FLAP's dual UNet as a LightningModule (paper Sec. 4.3, 5.1, A.4).

One module, three stages (docs/DESIGN.md stage table):

| stage | batch                         | conditions fed                  | trainable groups                   |
|-------|-------------------------------|---------------------------------|------------------------------------|
| 1     | image pairs, top-motion clips | ``c_motion`` + reference        | base, spatial, head_motion         |
| 2     | image pairs, all clips        | ``c_motion``, ``c_exp`` + ref.  | base, spatial, expression          |
| 3     | windows of F frames           | all                             | temporal                           |

The groups come from :data:`flap.models.STAGE_TRAINABLE_GROUPS`. The objective is ε-prediction
MSE (Eq. 4) on latents of a frozen VAE: ``L = E ||ε − ε_θ(z_t, t, c_motion, c_exp, ref)||²`` with
``z_t`` from :class:`diffusers.DDPMScheduler`. Conditions are replaced by the learned null tokens
with probability ``head_motion_dropout`` / ``expression_dropout`` per sample (classifier-free guidance).
All step randomness (timesteps, noise, dropout, VAE sampling) comes from a generator seeded by
``(seed, global_step, rank)``, so a resumed run continues exactly like an uninterrupted one.
After ``fit``, ``flap.train``'s export hook calls :meth:`FLAPLitModule.export_pretrained`, which
writes the networks with ``save_pretrained`` (``reference_net/``, ``denoising_net/``,
``training_stage.json``) to the run's ``export_dir``; the next stage loads that folder (``init_from``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from flap.flame.coeffs import C_EXP_SLICE, C_MOTION_SLICE
from flap.io.atomic import atomic_folder
from flap.models import STAGE_TRAINABLE_GROUPS, DenoisingNet, FLAPUNets, ReferenceNet, set_trainable_groups
from flap.models.scheduling import ddpm_scheduler
from flap.training.loss_weights import mouth_weight_map

__all__ = ["FLAPLitModule", "load_stage_output", "unreachable_reference_parameters", "FIXED_CONDITION_SCALE",
           "fixed_condition_normalization"]

#: Fixed normalisation of the 120 condition numbers (``(c - mean) / scale``), per
#: :data:`flap.flame.coeffs.SLICES` part: independent of the training data, so a request outside the
#: data's range (e.g. +30° yaw from clips that move ±5°) stays a moderate input (issue 13).
#: global_rot and jaw: axis-angle radians around 0 (0.5 rad = 28.6°, 0.2 rad = 11.5°); eyes: 6D
#: entries around the identity ``[1, 0, 0, 0, 1, 0]`` (0.25 ≈ sin 14.5°); eyelids: weights in [0, 1]
#: around 0; expression: FLAME ψ, in units of the basis' standard deviation, around 0.
FIXED_CONDITION_SCALE: dict[str, float] = {"global_rot": 0.5, "eyes": 0.25, "jaw": 0.2, "eyelids": 0.5,
                                           "expression": 1.0}


def fixed_condition_normalization(overrides: dict[str, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, scale)``, each float32 ``(120,)``, of :data:`FIXED_CONDITION_SCALE` (HeadCoeffs layout).

    Args:
        overrides: per-part scales replacing the defaults, e.g. ``{"jaw": 0.04}`` (same units).

    Raises:
        ValueError: an unknown part or a scale that is not a positive number (names the key).
    """
    from flap.flame.coeffs import SLICES
    from flap.flame.rotations import identity_rotation_6d

    scales = dict(FIXED_CONDITION_SCALE)
    for name, value in (overrides or {}).items():
        if name not in scales:
            raise ValueError(f"condition_scale.{name}: expected one of {sorted(scales)}, found {name!r}")
        if not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"condition_scale.{name}: expected a positive number, found {value!r}")
        scales[name] = float(value)
    mean, scale = torch.zeros(120), torch.ones(120)
    for name, value in scales.items():
        scale[SLICES[name]] = value
    mean[SLICES["eyes"]] = identity_rotation_6d(2).flatten()
    return mean, scale


def load_stage_output(folder: str | os.PathLike) -> FLAPUNets:
    """Load the networks a stage wrote (``folder/reference_net``, ``folder/denoising_net``).

    Raises:
        FileNotFoundError: ``folder`` is not a stage output (names the missing sub-folder).
    """
    folder = Path(folder)
    for sub in ("reference_net", "denoising_net"):
        if not (folder / sub / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder}: expected a training-stage output with {sub}/config.json (save_pretrained), not found"
            )
    return FLAPUNets(ReferenceNet.from_pretrained(folder / "reference_net", low_cpu_mem_usage=False),
                     DenoisingNet.from_pretrained(folder / "denoising_net", low_cpu_mem_usage=False))


def unreachable_reference_parameters(reference_net: ReferenceNet) -> list[str]:
    """Names of ReferenceNet parameters that cannot affect any recorded self-attention input.

    The ReferenceNet only provides the hidden states entering its self-attention layers (Sec. 4.1),
    so the layers after the last one (its final transformer block, ``conv_norm_out``, ``conv_out``)
    never influence the DenoisingNet. Found with one tiny autograd pass (``allow_unused``).
    """
    cfg = reference_net.config
    side = 2 ** (len(cfg.block_out_channels) - 1)
    param = next(reference_net.parameters())
    z = torch.randn(1, cfg.in_channels, side, side, device=param.device, dtype=param.dtype)
    named = list(reference_net.named_parameters())
    flags = [p.requires_grad for _, p in named]
    try:
        for _, p in named:
            p.requires_grad_(True)
        with torch.enable_grad():
            feats = reference_net(z)
            total = sum(t.float().sum() for t in feats.tensors.values())
            grads = torch.autograd.grad(total, [p for _, p in named], allow_unused=True)
    finally:
        for (_, p), flag in zip(named, flags):
            p.requires_grad_(flag)
    return [n for (n, _), g in zip(named, grads) if g is None]


def _load_vae(vae: AutoencoderKL | str | os.PathLike) -> AutoencoderKL:
    if isinstance(vae, AutoencoderKL):
        return vae
    path = Path(vae)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"FLAPLitModule: vae={path} must be a local diffusers AutoencoderKL folder")
    return AutoencoderKL.from_pretrained(path, low_cpu_mem_usage=False)


class FLAPLitModule(L.LightningModule):
    """Train ReferenceNet + DenoisingNet for one stage of Progressively Focused Training.

    Args:
        stage: 1 (head motion), 2 (expression) or 3 (video); see the module docstring.
        unets: freshly built networks (``flap.models.build_flap_unets``), used when ``init_from`` is None.
        init_from: folder written by the previous stage (see :func:`load_stage_output`).
        vae: ``AutoencoderKL`` or a local diffusers folder; frozen.
        trainable_groups: override of the stage's trainable parameter groups.
        lr, weight_decay, betas: AdamW settings.
        warmup_steps: linear learning-rate warm-up, in optimizer steps.
        head_motion_dropout, expression_dropout: per-sample probability of the null condition (CFG).
        num_train_timesteps, beta_schedule, beta_start, beta_end: noise schedule; ``None`` = the
            shared :data:`flap.models.scheduling.NOISE_SCHEDULE` (SD 1.5's, also used for sampling).
        ema_decay: keep an exponential moving average of the trained weights (exported instead of
            the raw weights); ``None`` = off.
        gradient_checkpointing: recompute activations in the backward pass (less memory).
        condition_normalization: how the condition encoders normalise their input, set at the start
            of fit for networks not loaded from a previous stage or checkpoint: ``"fixed"``
            (:data:`FIXED_CONDITION_SCALE`, the default), ``"data"`` (mean / std of the training
            clips' coefficients) or ``None`` (keep the networks' buffers).
        spatial_gate_init: set every reference-attention gate (``spatial_gate``, zero when built so
            that SD 1.5 weights stay exact) to this value for networks not loaded from a previous
            stage; ``None`` keeps them. 1.0 = the paper's full reference attention (for a model
            trained from scratch, with no pretrained weights to protect).
        spatial_gate_lr_scale: learning-rate multiplier of the gates (no weight decay on them).
        condition_scale: per-part overrides of :data:`FIXED_CONDITION_SCALE` (e.g. ``{"jaw": 0.04}``).
            New networks are normalised with them (``condition_normalization="fixed"``); networks
            loaded from ``init_from`` are *re-normalised* to them without changing their output
            (:meth:`~flap.models.conditions.ConditionEncoder.renormalize`), which speeds up learning
            along a part that varies little in the data (a person's jaw: std ~0.03 rad vs 0.2).
        mouth_weight: extra weight of the mouth region in the ε-MSE of stages 2 and 3 (the stages
            that feed ``c_exp``), :func:`flap.training.loss_weights.mouth_weight_map`; 0 = plain Eq. 4.
        seed: seed of the per-step random numbers.

    Raises:
        ValueError: unknown stage or ``condition_normalization``, neither ``unets`` nor ``init_from``,
            a bad ``condition_scale`` entry, or (at fit start) a data set that flips frames in a
            stage that feeds ``c_exp``.
    """

    def __init__(self, stage: int, unets: FLAPUNets | None = None, init_from: str | None = None,
                 vae: AutoencoderKL | str | None = None,
                 trainable_groups: list[str] | None = None, lr: float = 1e-4, weight_decay: float = 1e-2,
                 betas: tuple[float, float] = (0.9, 0.999), warmup_steps: int = 0,
                 head_motion_dropout: float = 0.05, expression_dropout: float = 0.05,
                 num_train_timesteps: int | None = None, beta_schedule: str | None = None,
                 beta_start: float | None = None, beta_end: float | None = None, ema_decay: float | None = None,
                 gradient_checkpointing: bool = False, condition_normalization: str | None = "fixed",
                 spatial_gate_init: float | None = None, spatial_gate_lr_scale: float = 1.0,
                 condition_scale: dict[str, float] | None = None, mouth_weight: float = 0.0, seed: int = 0):
        super().__init__()
        if stage not in STAGE_TRAINABLE_GROUPS:
            raise ValueError(f"FLAPLitModule: stage must be one of {sorted(STAGE_TRAINABLE_GROUPS)}, got {stage!r}")
        if mouth_weight < 0:
            raise ValueError(f"FLAPLitModule: mouth_weight must be >= 0, got {mouth_weight}")
        if condition_normalization not in ("fixed", "data", None):
            raise ValueError("FLAPLitModule: condition_normalization must be 'fixed', 'data' or null, "
                             f"got {condition_normalization!r}")
        condition_scale = None if condition_scale is None else {str(k): v for k, v in dict(condition_scale).items()}
        fixed = fixed_condition_normalization(condition_scale)  # a bad key or value fails here, before any loading
        init_from = None if init_from is None else str(init_from)  # plain types in checkpoints
        if init_from is not None:
            unets = load_stage_output(init_from)
        if unets is None:
            raise ValueError("FLAPLitModule: give `unets` (a new model) or `init_from` (a previous stage's output)")
        if vae is None:
            raise ValueError("FLAPLitModule: `vae` (a local AutoencoderKL folder or module) is required")
        self.save_hyperparameters(ignore=["unets", "vae"])
        self.reference_net = unets.reference_net
        self.denoising_net = unets.denoising_net
        self.vae = _load_vae(vae).requires_grad_(False).eval()
        schedule = {"num_train_timesteps": num_train_timesteps, "beta_schedule": beta_schedule,
                    "beta_start": beta_start, "beta_end": beta_end}
        self.scheduler = ddpm_scheduler(**{k: v for k, v in schedule.items() if v is not None})
        self.stage = int(stage)
        self.groups = tuple(trainable_groups or STAGE_TRAINABLE_GROUPS[self.stage])
        set_trainable_groups([self.reference_net, self.denoising_net], self.groups)
        # Layers after the ReferenceNet's last self-attention get no gradient: keep them frozen (this
        # also keeps DDP free of unused parameters, so strategy=ddp needs no find_unused_parameters).
        dead = set(unreachable_reference_parameters(self.reference_net))
        for name, p in self.reference_net.named_parameters():
            if name in dead:
                p.requires_grad_(False)
        self.denoising_net.set_temporal_enabled(self.stage == 3)
        if gradient_checkpointing:
            self.denoising_net.enable_gradient_checkpointing()
            self.reference_net.enable_gradient_checkpointing()
        if spatial_gate_init is not None and init_from is None:
            with torch.no_grad():
                for name, p in self.denoising_net.named_parameters():
                    if name.endswith("spatial_gate"):
                        p.fill_(float(spatial_gate_init))
        self.ema = None
        self._need_stats = condition_normalization is not None and init_from is None
        if condition_scale and init_from is not None:
            self._normalize_conditions(*fixed, keep_output=True)

    # ------------------------------------------------------------------ setup
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters this stage trains (``requires_grad``), ReferenceNet then DenoisingNet."""
        return [p for m in (self.reference_net, self.denoising_net) for p in m.parameters() if p.requires_grad]

    def setup(self, stage: str) -> None:
        """Check the augmentation against the stage; set the condition normalisation (new networks only)."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and self.stage >= 2:
            flip = float((getattr(dm, "hparams", {}).get("augment") or {}).get("flip", 0.0))
            if flip > 0:
                raise ValueError(f"FLAPLitModule: stage {self.stage} feeds c_exp, but data.augment.flip={flip}: "
                                 "the expression cannot be mirrored exactly (flap.data.augment); set it to 0")
        if not self._need_stats:
            return
        mean = None
        if self.hparams.condition_normalization == "fixed":
            mean, std = fixed_condition_normalization(self.hparams.condition_scale)
        elif dm is not None:
            dm.setup("fit")
            clips = getattr(dm.train_set, "clips", None)
            if clips:
                allc = torch.cat([torch.from_numpy(c.coeffs[c.frames]) for c in clips]).double()
                mean, std = allc.mean(0), allc.std(0) if len(allc) > 1 else torch.ones(allc.shape[1])
        if mean is not None:
            self._normalize_conditions(mean, std)
        self._need_stats = False

    def _normalize_conditions(self, mean: torch.Tensor, std: torch.Tensor, keep_output: bool = False) -> None:
        """Give both condition encoders their slices of ``(120,)`` statistics; ``keep_output`` re-normalises
        (:meth:`~flap.models.conditions.ConditionEncoder.renormalize`) instead of overwriting."""
        for encoder, part in ((self.denoising_net.head_motion_encoder, C_MOTION_SLICE),
                              (self.denoising_net.expression_encoder, C_EXP_SLICE)):
            (encoder.renormalize if keep_output else encoder.set_normalization)(mean[part], std[part])

    def on_fit_start(self) -> None:
        """Trained networks in train mode, the VAE in eval mode; create the EMA on the model's device."""
        self.reference_net.train()
        self.denoising_net.train()
        self.vae.eval()
        if self.hparams.ema_decay is not None and self.ema is None:
            from diffusers.training_utils import EMAModel

            self.ema = EMAModel(self.trainable_parameters(), decay=self.hparams.ema_decay)
            self.ema.to(self.device)
            if getattr(self, "_ema_state", None) is not None:
                self.ema.load_state_dict(self._ema_state)
                self._ema_state = None

    # ------------------------------------------------------------------ step
    def _generator(self) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(int(self.hparams.seed) * 1_000_003 + int(self.global_step) * 1009 + int(self.global_rank))
        return g

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """VAE latents ``(N, C, h, w)`` (sampled, times ``scaling_factor``) of images ``(N, 3, H, W)`` in [-1, 1]."""
        dist = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=generator, device=dist.mean.device,
                                               dtype=dist.mean.dtype)
        return z * self.vae.config.scaling_factor

    def _unpack(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(frames (B, F, 3, H, W), coeffs (B, F, 120), reference (B, 3, H, W))`` for any stage."""
        if "frames" in batch:
            frames, coeffs = batch["frames"], batch["coeffs"]
        else:
            frames, coeffs = batch["target"][:, None], batch["coeffs"][:, None]
        return frames, coeffs.float(), batch["reference"]

    def loss(self, batch: dict) -> torch.Tensor:
        """ε-prediction MSE (Eq. 4) for one batch (see the module docstring for the stage rules)."""
        g = self._generator()
        frames, coeffs, reference = self._unpack(batch)
        b, f = frames.shape[:2]
        latents = self.encode(frames.flatten(0, 1), g)
        latents = latents.unflatten(0, (b, f)).transpose(1, 2)  # (B, C, F, h, w)
        ref_latent = self.encode(reference, g)
        dev = latents.device
        noise = torch.randn(latents.shape, generator=g, device=dev, dtype=latents.dtype)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), generator=g, device=dev)
        noisy = self.scheduler.add_noise(latents, noise, t)
        drop_m = torch.rand(b, generator=g, device=dev) < self.hparams.head_motion_dropout
        drop_e = torch.rand(b, generator=g, device=dev) < self.hparams.expression_dropout
        c_exp = coeffs[..., C_EXP_SLICE] if self.stage >= 2 else None
        with torch.set_grad_enabled(torch.is_grad_enabled() and "spatial" in self.groups):
            ref = self.reference_net(ref_latent.to(self.reference_net.dtype))
        pred = self.denoising_net(noisy.to(self.denoising_net.dtype), t, reference=ref,
                                  c_motion=coeffs[..., C_MOTION_SLICE], c_exp=c_exp,
                                  head_motion_null_mask=drop_m, expression_null_mask=drop_e).sample
        if self.hparams.mouth_weight and self.stage >= 2:
            w = mouth_weight_map(*noise.shape[-2:], float(self.hparams.mouth_weight), device=dev)
            return ((pred.float() - noise.float()) ** 2 * w).mean() / w.mean()
        return F.mse_loss(pred.float(), noise.float())

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """One optimisation step; logs ``train/loss`` and ``train/lr``."""
        loss = self.loss(batch)
        bs = batch["reference"].shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=bs, sync_dist=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, batch_size=bs)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        """Update the EMA after each optimizer step."""
        if self.ema is not None:
            self.ema.step(self.trainable_parameters())

    def configure_optimizers(self):
        """AdamW over this stage's trainable parameters, with linear warm-up."""
        params = self.trainable_parameters()
        if not params:
            raise ValueError(f"FLAPLitModule: stage {self.stage} groups {self.groups} select no parameters")
        gate_ids = {id(p) for n, p in self.denoising_net.named_parameters() if n.endswith("spatial_gate")}
        groups = [{"params": [p for p in params if id(p) not in gate_ids]}]
        gates = [p for p in params if id(p) in gate_ids]
        if gates:
            groups.append({"params": gates, "weight_decay": 0.0,
                           "lr": self.hparams.lr * float(self.hparams.spatial_gate_lr_scale)})
        opt = torch.optim.AdamW(groups, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                                betas=tuple(self.hparams.betas))
        warm = max(0, int(self.hparams.warmup_steps))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ checkpoints and export
    def state_dict(self, *args, **kwargs):
        """Module state without the frozen VAE (it is a constructor input, not trained)."""
        sd = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
        return type(sd)((k, v) for k, v in sd.items() if not k.startswith(prefix + "vae."))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a :meth:`state_dict` (the VAE keys are optional)."""
        missing, unexpected = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in missing if not k.startswith("vae.")]
        if strict and (missing or unexpected):
            raise RuntimeError(f"FLAPLitModule.load_state_dict: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return missing, unexpected

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store the EMA weights in Lightning checkpoints."""
        if self.ema is not None:
            checkpoint["ema"] = self.ema.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Restore the EMA weights (applied when fit starts)."""
        self._ema_state = checkpoint.get("ema")
        self._need_stats = False

    def export_pretrained(self, folder: str | os.PathLike) -> Path | None:
        """Write ``reference_net/`` and ``denoising_net/`` (``save_pretrained``, EMA weights if on).

        The folder is written under a temporary name and renamed, so it is complete or absent.
        Under DDP only global rank 0 writes (other ranks return ``None``).
        """
        if self._trainer is not None and not self.trainer.is_global_zero:
            return None
        folder = Path(folder)
        params = self.trainable_parameters()
        if self.ema is not None:
            self.ema.store(params)
            self.ema.copy_to(params)
        try:
            with atomic_folder(folder) as tmp:
                self.reference_net.save_pretrained(tmp / "reference_net")
                self.denoising_net.save_pretrained(tmp / "denoising_net")
                info = {"stage": self.stage, "trainable_groups": list(self.groups),
                        "global_step": int(self.global_step), "ema": self.ema is not None,
                        "init_from": self.hparams.init_from}
                (tmp / "training_stage.json").write_text(json.dumps(info, indent=1))
        finally:
            if self.ema is not None:
                self.ema.restore(params)
        return folder
