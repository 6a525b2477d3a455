"""HyperIQA no-reference image quality (Su et al., CVPR 2020), used in the paper's Table 1.

A ResNet-50 backbone (written here in plain torch with torchvision's parameter names, since
torchvision is not a dependency) with four local-distortion-aware (LDA) heads feeds a hyper
network that predicts the weights of a small target network scoring quality. Parameter names
follow the public HyperIQA ``HyperNet`` (``res.*``, ``conv1.*``, ``fc1w_conv`` ... ``fc5b_fc``), so
its ``koniq_pretrained.pkl`` state dict loads unchanged. Scores are roughly 0-100 (higher = better).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Bottleneck", "HyperIQABackbone", "HyperNet", "hyperiqa_score"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class Bottleneck(nn.Module):
    """ResNet-50 bottleneck block (torchvision layout: ``conv1/bn1/conv2/bn2/conv3/bn3/downsample``)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class HyperIQABackbone(nn.Module):
    """ResNet-50 (layers 3-4-6-3) with HyperIQA's LDA heads; input ``(B, 3, 224, 224)`` ImageNet-normalised.

    ``forward`` returns ``{"hyper_in_feat": (B, 2048, 7, 7), "target_in_vec": (B, target_in_size)}``.
    """

    def __init__(self, lda_out_channels: int = 16, target_in_size: int = 224, layers=(3, 4, 6, 3)):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.lda1_pool = nn.Sequential(nn.Conv2d(256, 16, 1, bias=False), nn.AvgPool2d(7, stride=7))
        self.lda1_fc = nn.Linear(16 * 64, lda_out_channels)
        self.lda2_pool = nn.Sequential(nn.Conv2d(512, 32, 1, bias=False), nn.AvgPool2d(7, stride=7))
        self.lda2_fc = nn.Linear(32 * 16, lda_out_channels)
        self.lda3_pool = nn.Sequential(nn.Conv2d(1024, 64, 1, bias=False), nn.AvgPool2d(7, stride=7))
        self.lda3_fc = nn.Linear(64 * 4, lda_out_channels)
        self.lda4_pool = nn.AvgPool2d(7, stride=7)
        self.lda4_fc = nn.Linear(2048, target_in_size - lda_out_channels * 3)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )
        mods = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        mods += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        lda1 = self.lda1_fc(self.lda1_pool(x).flatten(1))
        x = self.layer2(x)
        lda2 = self.lda2_fc(self.lda2_pool(x).flatten(1))
        x = self.layer3(x)
        lda3 = self.lda3_fc(self.lda3_pool(x).flatten(1))
        x = self.layer4(x)
        lda4 = self.lda4_fc(self.lda4_pool(x).flatten(1))
        return {"hyper_in_feat": x, "target_in_vec": torch.cat((lda1, lda2, lda3, lda4), 1)}


def _target_fc(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-sample 1x1 conv: ``x (B, Cin, 1, 1)``, ``weight (B, Cout, Cin, 1, 1)``, ``bias (B, Cout)``."""
    b, cout = weight.shape[:2]
    out = F.conv2d(
        x.reshape(1, -1, *x.shape[2:]),
        weight.reshape(b * cout, *weight.shape[2:]),
        bias.reshape(-1),
        groups=b,
    )
    return out.reshape(b, cout, *x.shape[2:])


class HyperNet(nn.Module):
    """HyperIQA: content-understanding hyper network + generated target network (paper Sec. 3).

    Defaults are the published configuration ``HyperNet(16, 112, 224, 112, 56, 28, 14, 7)``.
    ``forward(img (B, 3, 224, 224))`` → quality ``(B,)``.
    """

    def __init__(
        self,
        lda_out_channels=16,
        hyper_in_channels=112,
        target_in_size=224,
        f1=112,
        f2=56,
        f3=28,
        f4=14,
        feature_size=7,
    ):
        super().__init__()
        self.hyper_in, self.target_in_size, self.feature_size = (
            hyper_in_channels,
            target_in_size,
            feature_size,
        )
        self.f = (f1, f2, f3, f4)
        self.res = HyperIQABackbone(lda_out_channels, target_in_size)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        c = hyper_in_channels
        self.conv1 = nn.Sequential(
            nn.Conv2d(2048, 1024, 1), nn.ReLU(inplace=True), nn.Conv2d(1024, 512, 1), nn.ReLU(inplace=True),
            nn.Conv2d(512, c, 1), nn.ReLU(inplace=True),
        )  # fmt: skip
        sizes = (target_in_size, f1, f2, f3, f4)
        for i in range(4):
            setattr(
                self,
                f"fc{i + 1}w_conv",
                nn.Conv2d(c, int(sizes[i] * sizes[i + 1] / feature_size**2), 3, padding=1),
            )
            setattr(self, f"fc{i + 1}b_fc", nn.Linear(c, sizes[i + 1]))
        self.fc5w_fc = nn.Linear(c, f4)
        self.fc5b_fc = nn.Linear(c, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        res = self.res(img)
        b = img.shape[0]
        x = res["target_in_vec"].reshape(b, self.target_in_size, 1, 1)
        feat = self.conv1(res["hyper_in_feat"]).reshape(
            b, self.hyper_in, self.feature_size, self.feature_size
        )
        pooled = self.pool(feat).flatten(1)
        sizes = (self.target_in_size, *self.f)
        for i in range(4):
            w = getattr(self, f"fc{i + 1}w_conv")(feat).reshape(b, sizes[i + 1], sizes[i], 1, 1)
            x = torch.sigmoid(_target_fc(x, w, getattr(self, f"fc{i + 1}b_fc")(pooled)))
        w5 = self.fc5w_fc(pooled).reshape(b, 1, self.f[3], 1, 1)
        return _target_fc(x, w5, self.fc5b_fc(pooled)).reshape(b)


@torch.no_grad()
def hyperiqa_score(model: HyperNet, images: np.ndarray, num_crops: int = 10, seed: int = 0) -> np.ndarray:
    """HyperIQA quality of each image, as the public demo: resize to 512×384 (H×W), average random 224² crops.

    Args:
        images: ``(N, H, W, 3)`` uint8 RGB.
        num_crops: crops averaged per image (crop positions from ``seed``, so results repeat).

    Returns:
        ``(N,)`` float64 scores (higher = better quality).
    """
    param = next(model.parameters())
    x = (
        torch.from_numpy(np.ascontiguousarray(images)).to(param.device, param.dtype).permute(0, 3, 1, 2)
        / 255.0
    )
    x = F.interpolate(x, size=(512, 384), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(_IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    x = (x - mean) / std
    rng = np.random.default_rng(seed)
    ys, xs = rng.integers(0, 512 - 224 + 1, num_crops), rng.integers(0, 384 - 224 + 1, num_crops)
    scores = torch.stack([model(x[:, :, y : y + 224, c : c + 224]) for y, c in zip(ys, xs)]).mean(0)
    return scores.double().cpu().numpy()
