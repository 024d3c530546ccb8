"""RandAugment (Cubuk et al., 2020): ``n`` uniformly chosen operations at magnitude ``m``."""

from __future__ import annotations

from torchvision.transforms import v2

from robustart.augment.checks import check_int_range
from robustart.augment.policy import AUGMENT_POLICIES, AugmentPolicy

#: Magnitudes run from 0 to ``MAX_MAGNITUDE`` (the paper's scale of 0–30).
MAX_MAGNITUDE = 30


@AUGMENT_POLICIES.register("randaugment")
class RandAugment(AugmentPolicy):
    """Each image gets its own ``n`` operations (drawn with replacement), all at magnitude ``m``.

    YAML: ``augment_policy: {name: randaugment, n: 2, m: 9}``.

    Args:
        n: Operations per image (≥ 1).
        m: Magnitude on the 0–30 scale.
    """

    name = "randaugment"

    def __init__(self, n: int = 2, m: int = 9) -> None:
        self.n = check_int_range(self.name, "n", n, 1)
        self.m = check_int_range(self.name, "m", m, 0, MAX_MAGNITUDE)
        self.transform = v2.RandAugment(
            num_ops=self.n, magnitude=self.m, num_magnitude_bins=MAX_MAGNITUDE + 1
        )
