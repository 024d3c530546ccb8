"""Geometric sequences: translate, rotate, tilt, scale and shear, one small step per frame.

Warps are bilinear with black outside the image (PIL / OpenCV defaults in the reference),
except translate, which moves by whole pixels (PIL's default NEAREST resampling).
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.corruptions.geometry import (
    shift_image,
    tilt_homography,
    torchvision_affine,
    warp_perspective,
)
from robustart.perturbations.base import PERTURBATIONS, Perturbation, as_video, repeat_frames


def warp_frames(images: Tensor, matrices: Tensor, inverse: bool = True) -> Tensor:
    """Warp every image by every matrix: (N, C, H, W) and (T, 3, 3) → (N, T, C, H, W).

    ``matrices`` map output to input positions (``inverse=True``) or input to output.
    """
    count = len(matrices)
    stacked = matrices.to(images.device).repeat(len(images), 1, 1)
    warped = warp_perspective(repeat_frames(images, count), stacked, "constant", inverse)
    return as_video(warped, count)


@PERTURBATIONS.register("translate")
class TranslateSequence(Perturbation):
    """Horizontal shift by ``i + first`` pixels (spatial). ImageNet-P: −20..20 (41 frames);
    CIFAR-10-P: −7..8 (16 frames)."""

    name = "translate"
    crop_after = True
    imagenet = ((41, -20),)
    cifar = ((16, -7),)

    def frame_count(self, param: tuple) -> int:
        return param[0]

    def frames(
        self, images: Tensor, param: tuple, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        count, first = param
        shifts = [round((first + i) * scale) for i in range(count)]
        return torch.stack([shift_image(images, dx, 0) for dx in shifts], dim=1)


@PERTURBATIONS.register("rotate")
class RotateSequence(Perturbation):
    """Rotation by ``i − 15`` degrees (clockwise) about the centre, 31 frames."""

    name = "rotate"
    crop_after = True
    imagenet = (1.0,)
    cifar = (1.0,)

    def frames(
        self, images: Tensor, param: float, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        h, w = images.shape[-2:]
        maps = [torchvision_affine(h, w, angle=param * (i - 15)) for i in range(31)]
        return warp_frames(images, torch.stack(maps))


@PERTURBATIONS.register("tilt")
class TiltSequence(Perturbation):
    """Perspective tilt by ``factor · (i − 15)`` degrees about both image axes (the reference's
    φ = θ), 31 frames. ImageNet-P factor 1, CIFAR-10-P 0.75."""

    name = "tilt"
    crop_after = True
    imagenet = (1.0,)
    cifar = (0.75,)

    def frames(
        self, images: Tensor, param: float, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        h, w = images.shape[-2:]
        maps = [tilt_homography(h, w, param * (i - 15)) for i in range(31)]
        return warp_frames(images, torch.stack(maps), inverse=False)


@PERTURBATIONS.register("scale")
class ScaleSequence(Perturbation):
    """Scaling about the centre by ``(start + step · i) %``: ImageNet-P 40 %..115 % (2.5 % per
    frame), CIFAR-10-P 70 %..130 % (2 %), 31 frames."""

    name = "scale"
    crop_after = True
    imagenet = ((40.0, 2.5),)
    cifar = ((70.0, 2.0),)

    def frames(
        self, images: Tensor, param: tuple, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        start, step = param
        h, w = images.shape[-2:]
        maps = [torchvision_affine(h, w, scale=(start + step * i) / 100) for i in range(31)]
        return warp_frames(images, torch.stack(maps))


@PERTURBATIONS.register("shear")
class ShearSequence(Perturbation):
    """Shear by ``i − 15`` degrees (torchvision 0.2's convention: the y axis tilts), 31 frames."""

    name = "shear"
    crop_after = True
    imagenet = (1.0,)
    cifar = (1.0,)

    def frames(
        self, images: Tensor, param: float, scale: float, generator: torch.Generator | None
    ) -> Tensor:
        h, w = images.shape[-2:]
        maps = [torchvision_affine(h, w, shear=param * (i - 15)) for i in range(31)]
        return warp_frames(images, torch.stack(maps))
