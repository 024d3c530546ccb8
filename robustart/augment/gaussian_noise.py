"""Gaussian data augmentation (Cohen, Rosenfeld & Kolter, 2019): train the base classifier of
randomized smoothing on noisy images, on the device."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustart.augment.base import BATCH_AUGMENTATIONS, BatchAugmentation
from robustart.augment.checks import check_probability
from robustart.errors import ConfigError


@BATCH_AUGMENTATIONS.register("gaussian_noise")
class GaussianNoise(BatchAugmentation):
    """Add ``N(0, σ² I)`` noise to each selected image, not clamped to [0, 1].

    Cohen et al. train the base classifier of a smoothed classifier with the noise level ``σ``
    it is later certified at, on the [0, 1] images (before normalisation) and without clipping;
    the images this augmentation returns can therefore lie outside [0, 1]. Targets pass through
    unchanged.

    YAML: ``batch_augment: [{name: gaussian_noise, sigma: 0.25}]``.

    Args:
        sigma: Noise standard deviation in units of the [0, 1] pixel scale, ≥ 0 (paper, CIFAR-10:
            0.12, 0.25, 0.5, 1.0).
        prob: Probability of adding noise to each image (1.0 in the paper).
    """

    name = "gaussian_noise"

    def __init__(self, sigma: float = 0.25, prob: float = 1.0) -> None:
        super().__init__()
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
            raise ConfigError(f"{self.name}: sigma must be a number >= 0, got {sigma!r}")
        if not (math.isfinite(sigma) and 0 <= sigma <= 1):
            raise ConfigError(
                f"{self.name}: sigma must be a number in [0, 1] (images are in [0, 1]: write "
                f"e.g. 0.25, not 64), got {sigma!r}"
            )
        self.sigma = float(sigma)
        self.prob = check_probability(self.name, "prob", prob)

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Noisy images (N, C, H, W), unclamped, and the unchanged targets."""
        if self.sigma == 0 or self.prob == 0:
            return images, targets
        noise = torch.randn_like(images) * self.sigma
        if self.prob < 1:
            keep = torch.rand(images.shape[0], device=images.device) < self.prob
            noise = noise * keep.view(-1, *([1] * (images.ndim - 1))).to(noise.dtype)
        return images + noise, targets

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, prob={self.prob}"
