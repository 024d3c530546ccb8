"""CutMix (Yun et al., 2019): paste a box of the partner image; labels mix by box area."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustart.augment.base import BATCH_AUGMENTATIONS
from robustart.augment.mixing import PairMixing, sample_beta


def cutmix_box(height: int, width: int, lam: float) -> tuple[int, int, int, int]:
    """A box covering about ``1 − λ`` of the image, centred uniformly at random.

    The box has sides ``H·√(1 − λ)`` × ``W·√(1 − λ)`` and is clipped at the image border (as in
    the paper), so its area can be smaller; :func:`cutmix_images` returns the λ that matches
    the area actually pasted.

    Returns:
        ``(top, bottom, left, right)`` pixel bounds, bottom/right exclusive.
    """
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return top, bottom, left, right


def cutmix_images(images: Tensor, partner: Tensor, lam: float) -> tuple[Tensor, float]:
    """Paste one box of ``images[partner]`` into each image of (N, C, H, W).

    Returns:
        The mixed images and the adjusted λ = 1 − box area / image area.
    """
    height, width = images.shape[-2:]
    top, bottom, left, right = cutmix_box(height, width, lam)
    mixed = images.clone()
    mixed[..., top:bottom, left:right] = images[partner, :, top:bottom, left:right]
    return mixed, 1.0 - (bottom - top) * (right - left) / (height * width)


@BATCH_AUGMENTATIONS.register("cutmix")
class CutMix(PairMixing):
    """CutMix with one box per batch (λ ~ Beta(α, α)), on the device.

    YAML: ``batch_augment: [{name: cutmix, alpha: 1.0, prob: 0.5}]``.

    Args:
        num_classes: Number of classes (filled in by the task).
        alpha: Beta(α, α) concentration, > 0 (1.0 in the paper).
        prob: Probability of mixing a batch (0.5 for CIFAR in the paper).
        label_smoothing: Label smoothing folded into the mixed targets.
    """

    name = "cutmix"

    def __init__(
        self, num_classes: int, alpha: float = 1.0, prob: float = 1.0, label_smoothing: float = 0.0
    ) -> None:
        super().__init__(num_classes, prob, label_smoothing)
        self.alpha = self.check_alpha(self.name, "alpha", alpha)

    def mix(self, images: Tensor, partner: Tensor) -> tuple[Tensor, float]:
        return cutmix_images(images, partner, sample_beta(self.alpha))
