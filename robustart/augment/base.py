"""Batch-level training augmentations (on the device), keyed by name in YAML.

A :class:`BatchAugmentation` transforms a training batch after it reaches the model's device:
``(images (N, C, H, W) in [0, 1], targets) -> (images, targets)``. Targets are either hard
labels (N,) int64 or soft label distributions (N, K) float whose rows sum to 1 (after Mixup or
CutMix). Tasks list them as plain dictionaries (``batch_augment: [{name: mixup, alpha: 0.2}]``)
so that hyperparameters, and therefore checkpoints, hold only plain data.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from robustart.errors import ConfigError
from robustart.registry import Registry

#: Registry of batch augmentation classes.
BATCH_AUGMENTATIONS: Registry[type[BatchAugmentation]] = Registry("batch augmentation")


class BatchAugmentation(nn.Module):
    """Base class: a training-time transformation of a whole batch on the device.

    Subclasses are ``nn.Module`` so that any weights they hold move with the task; weights
    that must not be saved in checkpoints should be registered as non-persistent buffers.
    """

    name: ClassVar[str] = ""
    #: Whether the augmentation mixes different images of the batch (Mixup, CutMix): such
    #: augmentations cannot run on multi-view batches whose views must stay of one image.
    mixes_images: ClassVar[bool] = False
    #: Label smoothing folded into the targets this augmentation returns (0 = none).
    label_smoothing: float = 0.0

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Return the augmented ``(images, targets)``; see the module docstring for shapes."""
        raise NotImplementedError


def soft_targets(targets: Tensor, num_classes: int) -> Tensor:
    """Targets as (N, K) float distributions (one-hot for hard labels)."""
    if targets.ndim == 2:
        return targets.float()
    return F.one_hot(targets, num_classes).float()


def smooth_targets(targets: Tensor, smoothing: float) -> Tensor:
    """Label smoothing of (N, K) distributions: ``(1 − ε) · targets + ε / K``; rows still
    sum to 1."""
    if smoothing == 0:
        return targets
    return targets * (1 - smoothing) + smoothing / targets.shape[1]


def hard_labels(targets: Tensor) -> Tensor:
    """Targets as (N,) class indices (the most probable class of soft targets)."""
    return targets.argmax(dim=1) if targets.ndim == 2 else targets


def build_batch_augmentations(
    specs: Sequence[dict[str, Any]] | None, num_classes: int
) -> nn.ModuleList:
    """Instantiate batch augmentations from ``[{name: ..., <settings>}, ...]``.

    Each class receives ``num_classes`` if its constructor accepts it.
    """
    import inspect

    modules = nn.ModuleList()
    for i, spec in enumerate(specs or []):
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"batch_augment #{i + 1} must be a mapping with a 'name': {spec!r}")
        settings = copy.deepcopy(dict(spec))
        cls = BATCH_AUGMENTATIONS.get(settings.pop("name"))
        if "num_classes" in inspect.signature(cls.__init__).parameters:
            settings.setdefault("num_classes", num_classes)
        try:
            modules.append(cls(**settings))
        except TypeError as err:
            raise ConfigError(f"bad settings for batch augmentation {cls.name!r}: {err}") from None
    return modules
