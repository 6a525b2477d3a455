"""`Audio2FlameModule`: LightningModule training :class:`~flap.audio.model.Audio2Flame` (paper Sec. 4.4).

Losses (masked to valid frames):

- coefficient loss: L1 between predicted and tracked coefficients in normalised units, with
  per-group weights (``group_weights``, e.g. more weight on the jaw);
- velocity loss: L1 between frame-to-frame differences (normalised units), against jitter;
- mouth loss: L1 in millimetres between the 20 mouth landmarks (iBUG 48–67) of FLAME driven by the
  predicted vs. the tracked jaw and expression (neutral identity, no head rotation), through
  :class:`flap.flame.model.FlameModel`; evaluated on ``mouth_frames`` random frames per batch to
  keep it cheap; skipped (with a warning) if ``flap.flame.model`` is unavailable.

Validation logs the same losses and the jaw-opening Pearson r at the best lag within ±2 frames.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch

from flap.audio.model import Audio2Flame
from flap.flame.coeffs import COND_DIM, SLICES
from flap.flame.model import FlameModel
from flap.io.atomic import atomic_folder
from flap.signals import best_lag_correlation

__all__ = ["Audio2FlameModule"]

log = logging.getLogger(__name__)
MOUTH = slice(48, 68)


def _masked_l1(
    a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    err = (a - b).abs()
    if weight is not None:
        err = err * weight
    m = mask.unsqueeze(-1).to(err)
    return (err * m).sum() / (m.sum() * err.shape[-1]).clamp_min(1.0)


def masked_std(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Standard deviation over time of ``x (B, T, D)`` on the frames where ``mask (B, T)`` is true.

    Returns ``(B, D)`` (population std, 0 for a sequence with fewer than 2 valid frames).
    """
    m = mask.unsqueeze(-1).to(x)
    n = m.sum(1).clamp_min(1.0)
    mean = (x * m).sum(1) / n
    var = (((x - mean.unsqueeze(1)) ** 2) * m).sum(1) / n
    return (var + 1e-8).sqrt() * (m.sum(1) > 1).to(x)


class Audio2FlameModule(L.LightningModule):
    """Train an :class:`Audio2Flame` on (features, coefficients) batches.

    Args:
        net: the model to train (Hydra: a nested ``_target_: flap.audio.model.Audio2Flame``).
        lr, weight_decay: AdamW settings; cosine decay to ``lr * 0.05`` over the run.
        coeff_weight, velocity_weight, mouth_weight: loss weights (mouth loss in mm).
        group_weights: extra weights per HeadCoeffs slice name (``{"jaw": 4.0}``); others 1.
        std_weight: weight of the motion-amplitude loss: L1 between the predicted and the tracked
            standard deviation over time of each clip's ``std_groups`` coefficients (normalised
            units). A regressor trained with L1 alone predicts the typical motion for a sound and
            under-moves expressive speakers; this term asks for their amplitude (0 = off).
        std_groups: HeadCoeffs slice names the amplitude loss applies to (default ``["global_rot"]``).
        mouth_frames: frames per batch passed through FLAME for the mouth loss.
        flame_model_path: FLAME file for the mouth loss (None = real FLAME if installed, else proxy).

    Batches: ``{"features": (B, T, D), "coeffs": (B, T, 120), "mask": (B, T) bool}``. Normalisation
    statistics are taken from the datamodule's ``normalization_stats()`` at the start of fit.
    """

    def __init__(
        self,
        net: Audio2Flame,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        coeff_weight: float = 1.0,
        velocity_weight: float = 0.5,
        mouth_weight: float = 0.1,
        group_weights: dict | None = None,
        mouth_frames: int = 32,
        flame_model_path: str | None = None,
        std_weight: float = 0.0,
        std_groups: list | tuple = ("global_rot",),
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        weights = torch.ones(COND_DIM)
        for name, w in (group_weights or {}).items():
            if name not in SLICES:
                raise ValueError(
                    f"Audio2FlameModule: unknown group {name!r} in group_weights, expected one of {list(SLICES)}"
                )
            weights[SLICES[name]] = float(w)
        self.register_buffer("group_weight", weights / weights.mean(), persistent=False)
        bad = [g for g in std_groups if g not in SLICES]
        if bad:
            raise ValueError(f"Audio2FlameModule: unknown group(s) {bad} in std_groups, expected names from {list(SLICES)}")
        self._std_dims = [i for g in std_groups for i in range(COND_DIM)[SLICES[g]]]
        self.__dict__["_flame"] = None  # FlameModel, built on first use (not a submodule)
        self._flame_failed = False

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage != "fit" or dm is None:
            return
        if hasattr(dm, "feature_dim") and dm.feature_dim != self.net.config.feature_dim:
            raise ValueError(
                f"Audio2FlameModule: data features have {dm.feature_dim} dims, net.feature_dim is "
                f"{self.net.config.feature_dim}; set model.net.feature_dim"
            )
        if hasattr(dm, "normalization_stats"):
            self.net.set_normalization(**dm.normalization_stats())
        if hasattr(dm, "feature_config"):
            self.net.register_to_config(features=dict(dm.extractor.to_config()), fps=float(dm.fps))

    def flame(self):
        """The FLAME model for the mouth loss, or None when unavailable (logged once)."""
        if self._flame is None and not self._flame_failed and self.hparams.mouth_weight > 0:
            try:
                flame = FlameModel(self.hparams.flame_model_path).to(self.device).eval().requires_grad_(False)
                # kept out of the module tree: not trained, not saved in checkpoints
                self.__dict__["_flame"] = flame
            except Exception as exc:  # noqa: BLE001 - the mouth loss is optional
                log.warning("Audio2FlameModule: mouth loss disabled, FlameModel unavailable: %s", exc)
                self._flame_failed = True
        return self._flame

    # ------------------------------------------------------------------ losses
    def _mouth_loss(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor | None:
        flame = self.flame()
        if flame is None:
            return None
        idx = mask.reshape(-1).nonzero().squeeze(1)
        if idx.numel() == 0:
            return None
        if idx.numel() > self.hparams.mouth_frames:
            idx = idx[torch.randperm(idx.numel(), device=idx.device)[: self.hparams.mouth_frames]]
        p, t = pred.reshape(-1, COND_DIM)[idx], target.reshape(-1, COND_DIM)[idx]
        both = torch.cat([p, t])
        out = flame(jaw=both[:, SLICES["jaw"]], expression=both[:, SLICES["expression"]])
        lm = out.landmarks[:, MOUTH] * 1000.0  # mm
        return (lm[: len(idx)] - lm[len(idx) :]).abs().mean()

    def _losses(self, batch: dict) -> dict[str, torch.Tensor]:
        feats, coeffs, mask = batch["features"], batch["coeffs"], batch["mask"]
        pred_n = self.net(feats, normalized_output=True)
        target_n = self.net.normalize(coeffs)
        losses = {"coeff": _masked_l1(pred_n, target_n, mask, self.group_weight)}
        vmask = mask[:, 1:] & mask[:, :-1]
        losses["velocity"] = _masked_l1(pred_n.diff(dim=1), target_n.diff(dim=1), vmask, self.group_weight)
        total = (
            self.hparams.coeff_weight * losses["coeff"] + self.hparams.velocity_weight * losses["velocity"]
        )
        if self.hparams.std_weight > 0:
            dims = self._std_dims
            losses["std"] = (masked_std(pred_n[..., dims], mask) - masked_std(target_n[..., dims], mask)).abs().mean()
            total = total + self.hparams.std_weight * losses["std"]
        if self.hparams.mouth_weight > 0:
            mouth = self._mouth_loss(self.net.denormalize(pred_n), coeffs, mask)
            if mouth is not None:
                losses["mouth_mm"] = mouth
                total = total + self.hparams.mouth_weight * mouth
        losses["loss"] = total
        losses["_pred"] = self.net.denormalize(pred_n).detach()
        return losses

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self._losses(batch)
        bs = batch["features"].shape[0]
        self.log_dict(
            {f"train/{k}": v for k, v in losses.items() if not k.startswith("_")},
            prog_bar=False,
            batch_size=bs,
        )
        return losses["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        losses = self._losses(batch)
        pred, target = losses.pop("_pred")[0], batch["coeffs"][0]
        r, _ = best_lag_correlation(pred[:, 15].cpu().numpy(), target[:, 15].cpu().numpy(), max_lag=2)
        losses["jaw_r"] = torch.tensor(0.0 if not np.isfinite(r) else r)
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=1)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.net.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else 1000
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(1, int(total)), eta_min=self.hparams.lr * 0.05
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ export
    def export_pretrained(self, out_dir: str | Path) -> Path:
        """Write the trained :class:`Audio2Flame` (``config.json`` + safetensors with the statistics) into ``out_dir``.

        Files are written to a temporary folder first and moved in one by one (:func:`flap.io.atomic.atomic_folder`), so a
        failure never leaves a half-written file; other files in ``out_dir`` (e.g. a README) are kept.
        """
        out_dir = Path(out_dir)
        with atomic_folder(out_dir, merge=True) as tmp:
            self.net.save_pretrained(tmp)
        return out_dir
