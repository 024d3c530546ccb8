"""Noise sequences: frame 0 is the clean image, frames 1..30 independent noisy copies."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from robustart.corruptions.base import Corruption
from robustart.corruptions.gaussian_noise import GaussianNoise
from robustart.corruptions.shot_noise import ShotNoise
from robustart.corruptions.speckle_noise import SpeckleNoise
from robustart.perturbations.base import PERTURBATIONS, Perturbation, as_video, repeat_frames


class NoiseSequence(Perturbation):
    """The clean image followed by 30 independent draws of a noise corruption at a fixed level.

    Flip probabilities compare every frame with frame 0 (:attr:`noise` is True).
    """

    noise = True
    #: The corruption whose formula draws each noisy frame.
    corruption: ClassVar[type[Corruption]]

    def frames(
        self, images: Tensor, param: float, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        noisy = self.corruption().apply(repeat_frames(images, 30), param, scale, generator)
        return torch.cat((images[:, None], as_video(noisy, 30)), dim=1)


@PERTURBATIONS.register("gaussian_noise")
class GaussianNoiseSequence(NoiseSequence):
    """``x + N(0, σ²)`` per frame; σ per difficulty."""

    name = "gaussian_noise"
    corruption = GaussianNoise
    imagenet = (0.03, 0.05, 0.08)
    cifar = (0.02, 0.04, 0.06)


@PERTURBATIONS.register("shot_noise")
class ShotNoiseSequence(NoiseSequence):
    """``Poisson(x · λ) / λ`` per frame; λ per difficulty."""

    name = "shot_noise"
    corruption = ShotNoise
    imagenet = (300, 120, 60)
    cifar = (700, 400, 200)


@PERTURBATIONS.register("speckle_noise")
class SpeckleNoiseSequence(NoiseSequence):
    """``x + x · N(0, σ²)`` per frame; σ per difficulty."""

    name = "speckle_noise"
    corruption = SpeckleNoise
    imagenet = (0.05, 0.10, 0.15)
    cifar = (0.05, 0.07, 0.10)
