"""Mixup (Zhang et al., 2018): convex combinations of image pairs and of their labels."""

from __future__ import annotations

from torch import Tensor

from robustart.augment.base import BATCH_AUGMENTATIONS
from robustart.augment.mixing import PairMixing, sample_beta


def mixup_images(images: Tensor, partner: Tensor, lam: float) -> Tensor:
    """``λ · images + (1 − λ) · images[partner]``; (N, C, H, W) in [0, 1] stays in [0, 1]."""
    return images.mul(lam).add_(images[partner], alpha=1 - lam)


@BATCH_AUGMENTATIONS.register("mixup")
class Mixup(PairMixing):
    """Mixup with one λ ~ Beta(α, α) per batch, on the device.

    YAML: ``batch_augment: [{name: mixup, alpha: 0.2, prob: 1.0, label_smoothing: 0.0}]``.

    Args:
        num_classes: Number of classes (filled in by the task).
        alpha: Beta(α, α) concentration, > 0 (0.2 for ImageNet, 1.0 for CIFAR in the paper).
        prob: Probability of mixing a batch.
        label_smoothing: Label smoothing folded into the mixed targets.
    """

    name = "mixup"

    def __init__(
        self, num_classes: int, alpha: float = 1.0, prob: float = 1.0, label_smoothing: float = 0.0
    ) -> None:
        super().__init__(num_classes, prob, label_smoothing)
        self.alpha = self.check_alpha(self.name, "alpha", alpha)

    def mix(self, images: Tensor, partner: Tensor) -> tuple[Tensor, float]:
        lam = sample_beta(self.alpha)
        return mixup_images(images, partner, lam), lam
