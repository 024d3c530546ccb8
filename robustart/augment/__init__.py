"""Training-time augmentations: batch-level components applied on the device."""

from robustart.augment.base import (
    BATCH_AUGMENTATIONS,
    BatchAugmentation,
    build_batch_augmentations,
    hard_labels,
    soft_targets,
)

__all__ = [
    "BATCH_AUGMENTATIONS",
    "BatchAugmentation",
    "build_batch_augmentations",
    "hard_labels",
    "soft_targets",
]
