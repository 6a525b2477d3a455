"""Feature extractors loaded from local TorchScript files (Inception for FID, I3D for FVD, a face
recognition network for identity), with the input preprocessing each expects set in the config.

Typical files: the ``pt_inception-2015-12-05`` / ``inception-2015-12-05.pt`` TorchScript used by
clean-fid and StyleGAN2-ADA (``call_kwargs: {return_features: true}``, values 0-255, 299 px), the
StyleGAN-V ``i3d_torchscript.pt`` (``call_kwargs: {rescale: false, resize: false,
return_features: true}``, values -1..1, 224 px, clips ``(B, 3, T, H, W)``), or any face-recognition
TorchScript (ArcFace-style: 112 px, values -1..1). Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from flap.eval.weights import load_torchscript

__all__ = ["FeatureExtractor", "load_extractor"]


class FeatureExtractor:
    """Wrap a feature network: resize, rescale, call, flatten.

    Args:
        module: a callable ``torch.nn.Module`` / ScriptModule.
        size: input side in pixels (square resize, bilinear, antialiased).
        value_range: ``(lo, hi)`` the uint8 range 0..255 is mapped to.
        video: ``True`` for clip models taking ``(B, 3, T, H, W)``; else images ``(B, 3, H, W)``.
        call_kwargs: keyword arguments of every call (e.g. ``return_features=True``).
        batch_size: images (or clips) per forward pass.
    """

    def __init__(
        self,
        module,
        size: int,
        value_range: Sequence[float] = (0.0, 255.0),
        video: bool = False,
        call_kwargs: Mapping | None = None,
        batch_size: int = 16,
    ):
        self.module, self.size, self.video = module, int(size), bool(video)
        self.lo, self.hi = float(value_range[0]), float(value_range[1])
        self.call_kwargs = dict(call_kwargs or {})
        self.batch_size = int(batch_size)
        params = list(module.parameters()) if hasattr(module, "parameters") else []
        # inputs follow the network's weights (a weightless network takes CPU float32 tensors)
        self.device = params[0].device if params else torch.empty(0).device
        self.dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32

    def _prepare(self, frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, self.dtype)  # (..., H, W, 3)
        lead = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True
            )
        x = self.lo + x.clamp(0, 255) * ((self.hi - self.lo) / 255.0)
        x = x.reshape(*lead, *x.shape[1:])
        return x.permute(0, 2, 1, 3, 4) if self.video else x  # clips: (B, 3, T, H, W)

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Features ``(N, D)`` float64 of uint8 RGB images ``(N, H, W, 3)`` or clips ``(N, T, H, W, 3)``."""
        frames = np.asarray(frames)
        want = 5 if self.video else 4
        if frames.ndim != want or frames.shape[-1] != 3:
            shape = "(N, T, H, W, 3)" if self.video else "(N, H, W, 3)"
            raise ValueError(f"FeatureExtractor: expected uint8 RGB {shape}, got {frames.shape}")
        out = []
        for i in range(0, len(frames), self.batch_size):
            feats = self.module(self._prepare(frames[i : i + self.batch_size]), **self.call_kwargs)
            if isinstance(feats, (tuple, list)):
                feats = feats[0]
            out.append(feats.reshape(feats.shape[0], -1).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0))


def load_extractor(cfg: Mapping, metric: str, key: str, map_location=None) -> FeatureExtractor:
    """Build a :class:`FeatureExtractor` from a config block ``{weights, size, value_range, video, call_kwargs, batch_size}``.

    Raises:
        MetricSkipped: ``cfg["weights"]`` empty or missing on disk (names ``key``).
        ValueError: the file is not TorchScript.
    """
    module = load_torchscript(cfg.get("weights"), metric, key, map_location=map_location)
    return FeatureExtractor(
        module,
        size=cfg.get("size", 299),
        value_range=tuple(cfg.get("value_range", (0.0, 255.0))),
        video=cfg.get("video", False),
        call_kwargs=dict(cfg.get("call_kwargs") or {}),
        batch_size=cfg.get("batch_size", 16),
    )
