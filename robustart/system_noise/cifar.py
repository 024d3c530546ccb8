"""The CIFAR system-noise variant: resize 32 → s → 32 with one interpolation.

Each variant resizes a batch of 32-px images to ``s`` px (24, 28: down and up; 40, 48: up and
down) and back with the same interpolation, then quantises to 8 bits as a stored image would be.
Interpolations (registry :data:`CIFAR_INTERPOLATIONS`): ``nearest``, ``bilinear``, ``bicubic``
(torch ``F.interpolate``, antialiased when downscaling). Variant names: ``<interpolation>-<s>``,
e.g. ``bilinear-24``. Runs on the images' device.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from robustart.errors import ConfigError
from robustart.registry import Registry
from robustart.utils import check_images

#: Intermediate sizes of RobustART's CIFAR system noise.
CIFAR_SIZES = (24, 28, 40, 48)


BatchResize = Callable[[Tensor, tuple[int, int]], Tensor]


def _interpolation(mode: str) -> BatchResize:
    def resize(images: Tensor, size: tuple[int, int]) -> Tensor:
        antialias = mode != "nearest" and size[0] * size[1] < images.shape[-2] * images.shape[-1]
        return F.interpolate(images, size=size, mode=mode, antialias=antialias)

    return resize


#: Interpolation name → ``(images (N, C, H, W), (h, w)) → images (N, C, h, w)``.
CIFAR_INTERPOLATIONS: Registry[BatchResize] = Registry("CIFAR interpolation")
for _mode in ("nearest", "bilinear", "bicubic"):
    CIFAR_INTERPOLATIONS.register(_mode)(_interpolation(_mode))


@dataclass(frozen=True)
class CifarResizeVariant:
    """Resize to ``size`` and back with ``interpolation``."""

    interpolation: str
    size: int

    def __post_init__(self) -> None:
        CIFAR_INTERPOLATIONS.get(self.interpolation)
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 2:
            raise ConfigError(f"intermediate size must be an integer >= 2, got {self.size!r}")

    @property
    def name(self) -> str:
        return f"{self.interpolation}-{self.size}"

    def __call__(self, images: Tensor) -> Tensor:
        """Square images (N, C, H, H) in [0, 1] → same shape, resized there and back, with
        8-bit values."""
        check_images(images)
        resize = CIFAR_INTERPOLATIONS.get(self.interpolation)
        out = resize(resize(images, (self.size, self.size)), tuple(images.shape[-2:]))
        return out.clamp(0, 1).mul(255).round().div(255).to(images.dtype)


def cifar_variants(
    sizes: Iterable[int] = CIFAR_SIZES, interpolations: Iterable[str] | None = None
) -> list[CifarResizeVariant]:
    """Every interpolation × size pair (default 3 × 4 = 12 variants)."""
    names = list(interpolations) if interpolations is not None else CIFAR_INTERPOLATIONS.names()
    return [CifarResizeVariant(m, int(s)) for m, s in itertools.product(names, sizes)]
