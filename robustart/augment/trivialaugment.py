"""TrivialAugment (Müller & Hutter, 2021): one operation at a random magnitude per image."""

from __future__ import annotations

from torchvision.transforms import v2

from robustart.augment.policy import AUGMENT_POLICIES, AugmentPolicy


@AUGMENT_POLICIES.register("trivialaugment")
class TrivialAugment(AugmentPolicy):
    """TrivialAugment Wide: each image gets one operation with a uniformly drawn magnitude.

    YAML: ``augment_policy: {name: trivialaugment}``.
    """

    name = "trivialaugment"

    def __init__(self) -> None:
        self.transform = v2.TrivialAugmentWide()
