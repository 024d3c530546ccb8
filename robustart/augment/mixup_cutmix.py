"""Mixup or CutMix per batch, chosen at random (the DeiT / timm recipe)."""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.augment.base import BATCH_AUGMENTATIONS
from robustart.augment.checks import check_probability
from robustart.augment.cutmix import cutmix_images
from robustart.augment.mixing import PairMixing, sample_beta
from robustart.augment.mixup import mixup_images


@BATCH_AUGMENTATIONS.register("mixup_cutmix")
class MixupCutMix(PairMixing):
    """Each mixed batch uses CutMix with probability ``switch_prob``, else Mixup.

    YAML: ``batch_augment: [{name: mixup_cutmix, mixup_alpha: 0.8, cutmix_alpha: 1.0,
    switch_prob: 0.5, label_smoothing: 0.1}]``.

    Args:
        num_classes: Number of classes (filled in by the task).
        mixup_alpha: Beta concentration of Mixup, > 0.
        cutmix_alpha: Beta concentration of CutMix, > 0.
        prob: Probability of mixing a batch at all.
        switch_prob: Probability that a mixed batch uses CutMix rather than Mixup.
        label_smoothing: Label smoothing folded into the mixed targets.
    """

    name = "mixup_cutmix"

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(num_classes, prob, label_smoothing)
        self.mixup_alpha = self.check_alpha(self.name, "mixup_alpha", mixup_alpha)
        self.cutmix_alpha = self.check_alpha(self.name, "cutmix_alpha", cutmix_alpha)
        self.switch_prob = check_probability(self.name, "switch_prob", switch_prob)

    def mix(self, images: Tensor, partner: Tensor) -> tuple[Tensor, float]:
        if float(torch.rand(())) < self.switch_prob:
            return cutmix_images(images, partner, sample_beta(self.cutmix_alpha))
        lam = sample_beta(self.mixup_alpha)
        return mixup_images(images, partner, lam), lam
