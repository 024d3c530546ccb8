"""Pre-activation ResNet-18 for 32-px images (He et al., 2016b).

The architecture of the PGD-AT / fast-AT / robust-overfitting papers on CIFAR-10 (Rice et al.,
Wong et al.): a 3×3 stride-1 stem, four stages of two pre-activation basic blocks with 64, 128,
256 and 512 filters, 1×1 projection shortcuts, BN-ReLU before global pooling (11.2 M
parameters).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from robustart.models.registry import MODELS


class _PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet with basic blocks.

    Args:
        blocks: Blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        num_classes: Number of output logits.
        in_chans: Input channels.
    """

    def __init__(self, blocks: tuple[int, ...], num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
        layers: list[nn.Module] = []
        in_planes = 64
        for stage, n in enumerate(blocks):
            planes = 64 * 2**stage
            for i in range(n):
                layers.append(_PreActBlock(in_planes, planes, 2 if (i == 0 and stage > 0) else 1))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.conv1(x))
        x = F.relu(self.bn(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@MODELS.register("preact_resnet18")
def preact_resnet18(num_classes: int = 10, in_chans: int = 3) -> PreActResNet:
    """PreAct ResNet-18 (11.2 M parameters)."""
    return PreActResNet((2, 2, 2, 2), num_classes, in_chans)
