"""ResNet18 and WideResNet50 for 32x32 inputs, exposing penultimate features and (W, b).

* ``resnet18``: BasicBlock [2, 2, 2, 2] with the CIFAR stem (3x3 stride-1 conv, no max-pool);
  ``width`` multiplies every channel count, so the feature dimension is ``512 * width``.
* ``wrn50``: the official code's WideResNet50 (Bottleneck [3, 4, 6, 3], same stem, average pool
  4, fc 2048 -> K with bias). ``width`` multiplies only the bottleneck's inner planes, so the
  feature dimension stays 2048; width 1 is ResNet50 and width 2 is torchvision's
  wide_resnet50_2 with the CIFAR stem (about 23.5 M and 66.9 M parameters for K = 10).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResNet", "build_model", "count_parameters", "feature_dimension", "ARCHITECTURES"]


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int, width: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int, width: float) -> None:
        super().__init__()
        inner = _scaled(planes, width)
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, inner, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, inner, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv3 = nn.Conv2d(inner, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_planes))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A CIFAR ResNet. ``forward`` gives logits; ``features`` the penultimate features;
    ``classifier`` is the final ``nn.Linear`` (``W = classifier.weight``, ``b = classifier.bias``)."""

    def __init__(self, block, layers, num_classes: int, width: float, scale_all: bool) -> None:
        super().__init__()
        channel = (lambda c: _scaled(c, width)) if scale_all else (lambda c: c)
        self.in_planes = channel(64)
        self.conv1 = nn.Conv2d(3, self.in_planes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.in_planes)
        stages = []
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            stage = []
            for j in range(blocks):
                blk = block(self.in_planes, channel(planes), stride if j == 0 else 1, width)
                stage.append(blk)
                self.in_planes = channel(planes) * block.expansion
            stages.append(nn.Sequential(*stage))
        self.layers = nn.Sequential(*stages)
        self.feature_dim = self.in_planes
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = nn.functional.adaptive_avg_pool2d(out, 1)  # = avg-pool 4 on 32x32 inputs
        return out.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return h, self.classifier(h)


ARCHITECTURE_NAMES = {"resnet18": "ResNet18", "wrn50": "WideResNet50"}
"""Each architecture :func:`build_model` builds, and how the book names it."""
ARCHITECTURES = tuple(ARCHITECTURE_NAMES)


def build_model(arch: str, *, num_classes: int = 10, width: float = 1.0) -> ResNet:
    """``resnet18`` (all channels x width) or ``wrn50`` (inner bottleneck planes x width)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {list(ARCHITECTURES)}")
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if arch == "resnet18":
        return ResNet(_BasicBlock, (2, 2, 2, 2), num_classes, width, scale_all=True)
    return ResNet(_Bottleneck, (3, 4, 6, 3), num_classes, width, scale_all=False)


def feature_dimension(arch: str, width: float) -> int:
    """The penultimate feature dimension d of ``build_model(arch, width=width)``, without building it.

    >>> feature_dimension("resnet18", 0.125), feature_dimension("wrn50", 0.5)
    (64, 2048)
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {list(ARCHITECTURES)}")
    return _scaled(512, width) if arch == "resnet18" else 2048


def count_parameters(arch: str, width: float, num_classes: int = 10) -> int:
    """Trainable parameters of ``build_model(arch, width=width, num_classes=num_classes)``."""
    return sum(p.numel() for p in build_model(arch, num_classes=num_classes, width=width).parameters())
