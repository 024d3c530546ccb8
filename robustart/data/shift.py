"""Registry of the distribution-shift and pre-generated robustness datasets kept on disk.

Example:
    >>> from robustart.data import create_shift_dataset
    >>> data = create_shift_dataset("cifar10_c", root="data/CIFAR-10-C",
    ...                             corruption="fog", severity=3)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from robustart.registry import Registry

#: Dataset name → class (``cifar10_c``, ``imagenet_a``, ...); each module registers its own.
SHIFT_DATASETS: Registry[type[Dataset]] = Registry("shift dataset")


def create_shift_dataset(name: str, root: str, **kwargs: Any) -> Dataset:
    """Instantiate the dataset registered as ``name`` on the files under ``root``."""
    return SHIFT_DATASETS.get(name)(root=root, **kwargs)
