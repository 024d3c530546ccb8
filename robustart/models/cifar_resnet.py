"""ResNet-20/32/56 for 32-px images (He et al., 2016, section 4.2).

Three stages of ``n`` basic blocks with 16, 32 and 64 filters (depth 6n + 2), a 3×3 stem and
global average pooling. Shortcuts that change shape use the paper's option A: parameter-free
subsampling plus zero-padded channels, giving the published sizes (ResNet-20: 0.27 M
parameters, ResNet-56: 0.85 M).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from robustart.models.registry import MODELS


class _PadShortcut(nn.Module):
    """Option-A shortcut: stride-2 subsampling and zero channels on both sides."""

    def __init__(self, extra_channels: int) -> None:
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: Tensor) -> Tensor:
        half = self.extra // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.extra - half))


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = _PadShortcut(planes - in_planes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet with ``blocks`` basic blocks per stage.

    Args:
        blocks: Blocks per stage ``n`` (depth 6n + 2).
        num_classes: Number of output logits.
        in_chans: Input channels.

    Shapes:
        input (N, in_chans, H, W) normalised images → logits (N, num_classes).
    """

    def __init__(self, blocks: int, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers: list[nn.Module] = []
        in_planes = 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(blocks):
                layers.append(_BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@MODELS.register("resnet20")
def resnet20(num_classes: int = 10, in_chans: int = 3) -> CifarResNet:
    """ResNet-20 (0.27 M parameters)."""
    return CifarResNet(3, num_classes, in_chans)


@MODELS.register("resnet32")
def resnet32(num_classes: int = 10, in_chans: int = 3) -> CifarResNet:
    """ResNet-32 (0.46 M parameters)."""
    return CifarResNet(5, num_classes, in_chans)


@MODELS.register("resnet56")
def resnet56(num_classes: int = 10, in_chans: int = 3) -> CifarResNet:
    """ResNet-56 (0.85 M parameters)."""
    return CifarResNet(9, num_classes, in_chans)
