"""Blur sequences: motion blur turning, zoom blur accumulating, Gaussian blur growing."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.geometry import torchvision_affine
from robustart.corruptions.kernels import gaussian_blur, motion_blur
from robustart.perturbations.base import PERTURBATIONS, Perturbation, as_video, repeat_frames
from robustart.perturbations.geometric import warp_frames


@PERTURBATIONS.register("motion_blur")
class MotionBlurSequence(Perturbation):
    """Reference motion blur (radius, σ) whose angle turns by ``step``° per frame, ending at 0°:
    frame i uses ``(i − (T − 1)) · step``. ImageNet-P: radius 10, σ 3, 4°, 31 frames;
    CIFAR-10-P: radius 6, σ 1.8, 9°, 21 frames. Radius and σ are spatial."""

    name = "motion_blur"
    imagenet = ((10, 3.0, 31, 4.0),)
    cifar = ((6, 1.8, 21, 9.0),)

    def frame_count(self, param: tuple) -> int:
        return param[2]

    def frames(
        self, images: Tensor, param: tuple, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        radius, sigma, count, step = param
        angles = (torch.arange(count, device=images.device) - (count - 1)) * step
        angles = angles.repeat(len(images)).float()
        blurred = motion_blur(
            repeat_frames(images, count), max(round(radius * scale), 1), sigma * scale, angles
        )
        return as_video(blurred, count)


@PERTURBATIONS.register("zoom_blur")
class ZoomBlurSequence(Perturbation):
    """Frame i is the running average of the image and its zooms about the centre by
    ``1 + step · j``, j = 1..i (bilinear, as the reference's ``affine(scale=...)``); step 0.004.
    No spatial parameters."""

    name = "zoom_blur"
    crop_after = True
    imagenet = (0.004,)
    cifar = (0.004,)

    def frames(
        self, images: Tensor, param: float, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        h, w = images.shape[-2:]
        zooms = torch.stack([torchvision_affine(h, w, scale=1 + param * i) for i in range(1, 31)])
        zoomed = warp_frames(images, zooms)  # (N, 30, C, H, W)
        total = torch.cat((images[:, None], zoomed), dim=1).cumsum(dim=1)
        counts = torch.arange(1, 32, device=images.device, dtype=images.dtype)
        return total / counts.view(1, -1, 1, 1, 1)


@PERTURBATIONS.register("gaussian_blur")
class GaussianBlurSequence(Perturbation):
    """Gaussian blur of σ = σ₀ + i · Δσ (truncated at ``truncate``·σ, "nearest" border).
    ImageNet-P: 0.25 + 0.035 i, truncate 6; CIFAR-10-P: 0.3 + 0.015 i, truncate 7. σ is spatial.
    """

    name = "gaussian_blur"
    imagenet = ((0.25, 0.035, 6.0),)
    cifar = ((0.3, 0.015, 7.0),)

    def frames(
        self, images: Tensor, param: tuple, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        first, step, truncate = param
        video = [gaussian_blur(images, (first + step * i) * scale, truncate) for i in range(31)]
        return torch.stack(video, dim=1)
