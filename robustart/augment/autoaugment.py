"""AutoAugment (Cubuk et al., 2019): learned policies of 2-operation sub-policies."""

from __future__ import annotations

from torchvision.transforms import v2

from robustart.augment.policy import AUGMENT_POLICIES, AugmentPolicy
from robustart.registry import Registry

#: The published policies, searched on ImageNet, CIFAR-10 and SVHN.
AUTOAUGMENT_POLICIES: Registry[v2.AutoAugmentPolicy] = Registry("AutoAugment policy")
AUTOAUGMENT_POLICIES.register("imagenet")(v2.AutoAugmentPolicy.IMAGENET)
AUTOAUGMENT_POLICIES.register("cifar10")(v2.AutoAugmentPolicy.CIFAR10)
AUTOAUGMENT_POLICIES.register("svhn")(v2.AutoAugmentPolicy.SVHN)


@AUGMENT_POLICIES.register("autoaugment")
class AutoAugment(AugmentPolicy):
    """Each image gets one sub-policy drawn at random from the chosen published policy.

    YAML: ``augment_policy: {name: autoaugment, policy: cifar10}``.

    Args:
        policy: ``imagenet``, ``cifar10`` or ``svhn``.
    """

    name = "autoaugment"

    def __init__(self, policy: str = "imagenet") -> None:
        self.policy = policy
        self.transform = v2.AutoAugment(AUTOAUGMENT_POLICIES.get(policy))
