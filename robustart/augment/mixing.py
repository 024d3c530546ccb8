"""Shared machinery of the image-mixing augmentations (Mixup, CutMix and their switch).

Each mixes every image with a partner drawn by a random permutation of the batch
(``torch.randperm``; Zhang et al. and Yun et al. pair images the same way). A permutation works
for every batch size, odd ones included (the last batch of an epoch often is), so no batch size
is refused; an image that happens to be its own partner is left unchanged with its own label.
The targets become ``λ · t_i + (1 − λ) · t_partner`` with ``λ`` the fraction of the image that
comes from image ``i``, after optional label smoothing, so rows always sum to 1.

All random numbers come from torch's global generators (``seed_everything`` seeds them): the
mixing coefficient on the CPU, the permutation on the images' device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.augment.base import BatchAugmentation, smooth_targets, soft_targets
from robustart.augment.checks import (
    check_concentration,
    check_label_smoothing,
    check_positive,
    check_probability,
)


def sample_beta(alpha: float) -> float:
    """One draw of λ ~ Beta(α, α) from torch's global CPU generator."""
    concentration = torch.tensor(float(alpha))
    return float(torch.distributions.Beta(concentration, concentration).sample())


class PairMixing(BatchAugmentation):
    """Base class: mix each image with a random partner and mix the targets alike.

    Subclasses implement :meth:`mix`.

    Args:
        num_classes: Number of classes K of the (N, K) soft targets returned.
        prob: Probability of mixing a batch; unmixed batches still get (smoothed) soft targets.
        label_smoothing: Label smoothing ε folded into the targets (timm's convention); leave
            the task's ``label_smoothing`` at 0 when using it.
    """

    mixes_images = True

    def __init__(self, num_classes: int, prob: float = 1.0, label_smoothing: float = 0.0) -> None:
        super().__init__()
        check_positive(self.name, "num_classes", num_classes)
        self.num_classes = int(num_classes)
        self.prob = check_probability(self.name, "prob", prob)
        self.label_smoothing = check_label_smoothing(self.name, label_smoothing)

    @staticmethod
    def check_alpha(owner: str, name: str, alpha: float) -> float:
        """α of Beta(α, α): see :func:`~robustart.augment.checks.check_concentration` (α → 0
        means no mixing: set ``prob: 0`` instead)."""
        return check_concentration(owner, name, alpha, "for no mixing set prob: 0")

    def mix(self, images: Tensor, partner: Tensor) -> tuple[Tensor, float]:
        """Mix ``images`` (N, C, H, W) with ``images[partner]``.

        Returns:
            The mixed images (N, C, H, W) and λ, the fraction of each image that is its own.
        """
        raise NotImplementedError

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Mix a batch.

        Args:
            images: (N, C, H, W) in [0, 1].
            targets: Labels (N,) int64 or distributions (N, K).

        Returns:
            Images (N, C, H, W) in [0, 1] and soft targets (N, K) whose rows sum to 1.
        """
        soft = smooth_targets(soft_targets(targets, self.num_classes), self.label_smoothing)
        if self.prob < 1 and float(torch.rand(())) >= self.prob:
            return images, soft
        partner = torch.randperm(images.shape[0], device=images.device)
        mixed, lam = self.mix(images, partner)
        return mixed, lam * soft + (1 - lam) * soft[partner]
