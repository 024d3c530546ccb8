"""Training-time augmentations.

Two kinds, both configured in YAML as plain mappings ``{name: ..., <settings>}``:

* batch augmentations (task option ``batch_augment``), applied on the device to whole batches:
  ``mixup``, ``cutmix``, ``mixup_cutmix``, ``random_erasing``, ``stylize``,
  ``gaussian_noise``;
* per-image policies (datamodule option ``augment_policy``), applied in the data loader:
  ``autoaugment``, ``randaugment``, ``trivialaugment``, ``augmix``.
"""

from robustart.augment import (  # noqa: F401  (imported to register the components)
    augmix,
    autoaugment,
    cutmix,
    gaussian_noise,
    mixup,
    mixup_cutmix,
    randaugment,
    random_erasing,
    stylize,
    trivialaugment,
)
from robustart.augment.augmix import jensen_shannon
from robustart.augment.base import (
    BATCH_AUGMENTATIONS,
    BatchAugmentation,
    build_batch_augmentations,
    hard_labels,
    smooth_targets,
    soft_targets,
)
from robustart.augment.policy import AUGMENT_POLICIES, AugmentPolicy, build_augment_policy

__all__ = [
    "AUGMENT_POLICIES",
    "BATCH_AUGMENTATIONS",
    "AugmentPolicy",
    "BatchAugmentation",
    "build_augment_policy",
    "build_batch_augmentations",
    "hard_labels",
    "jensen_shannon",
    "smooth_targets",
    "soft_targets",
]
