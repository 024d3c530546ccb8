"""Wide ResNets for 32-px images (Zagoruyko & Komodakis, 2016).

WRN-d-k: three stages of (d − 4)/6 pre-activation blocks with 16k, 32k and 64k filters. The
adversarial-training literature uses WRN-28-10 (36.5 M parameters) and WRN-34-10 (46.2 M).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from robustart.errors import ConfigError
from robustart.models.registry import MODELS


class _WideBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.drop_rate = drop_rate
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = F.relu(self.bn2(self.conv1(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return self.conv2(out) + shortcut


class WideResNet(nn.Module):
    """WRN-``depth``-``width``.

    Args:
        depth: Total depth, ``6n + 4``.
        width: Widening factor k.
        num_classes: Number of output logits.
        in_chans: Input channels.
        drop_rate: Dropout between the convolutions of each block.
    """

    def __init__(
        self,
        depth: int = 28,
        width: int = 10,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ConfigError(f"WideResNet depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        layers: list[nn.Module] = []
        in_planes = 16
        for stage in range(3):
            planes = 16 * width * 2**stage
            for i in range(n):
                stride = 2 if (i == 0 and stage > 0) else 1
                layers.append(_WideBlock(in_planes, planes, stride, drop_rate))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.conv1(x))
        x = F.relu(self.bn(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@MODELS.register("wrn16_2")
def wrn16_2(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> WideResNet:
    """WideResNet-16-2 (0.69 M parameters), small enough to train on a CPU."""
    return WideResNet(16, 2, num_classes, in_chans, drop_rate)


@MODELS.register("wrn28_10")
def wrn28_10(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> WideResNet:
    """WideResNet-28-10 (36.5 M parameters)."""
    return WideResNet(28, 10, num_classes, in_chans, drop_rate)


@MODELS.register("wrn34_10")
def wrn34_10(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> WideResNet:
    """WideResNet-34-10 (46.2 M parameters)."""
    return WideResNet(34, 10, num_classes, in_chans, drop_rate)
