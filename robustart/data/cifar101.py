"""CIFAR-10.1 (Recht et al., 2018): a new test set for CIFAR-10 models.

Layout: ``<root>/cifar10.1_<version>_data.npy`` uint8 (N, 32, 32, 3) and
``<root>/cifar10.1_<version>_labels.npy`` (N,) with CIFAR-10 labels (v6: N = 2,000).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from robustart.data.cifar_c import check_label_array, check_uint8_images, load_npy
from robustart.data.shift import SHIFT_DATASETS
from robustart.errors import ConfigError, DatasetNotFoundError

VERSIONS = ("v4", "v6")


@SHIFT_DATASETS.register("cifar10.1")
class CIFAR101(Dataset):
    """CIFAR-10.1; items ``(image (3, 32, 32) float in [0, 1], label)``.

    Args:
        root: Folder with the two ``.npy`` files.
        version: ``"v6"`` (default, the recommended one) or ``"v4"``.
    """

    def __init__(self, root: str | Path, version: str = "v6") -> None:
        if version not in VERSIONS:
            raise ConfigError(f"CIFAR-10.1 version must be one of {VERSIONS}, got {version!r}")
        self.root = Path(root)
        data = self.root / f"cifar10.1_{version}_data.npy"
        labels = self.root / f"cifar10.1_{version}_labels.npy"
        expected = f"{data} and {labels} (from the CIFAR-10.1 repository's datasets/ folder)"
        images = load_npy(data, "CIFAR-10.1", expected, mmap=False)
        check_uint8_images(images, data, "CIFAR-10.1")
        targets = load_npy(labels, "CIFAR-10.1", expected, mmap=False)
        if targets.shape != (len(images),):
            raise DatasetNotFoundError(
                f"CIFAR-10.1: {labels} must hold {len(images)} labels, got shape {targets.shape}"
            )
        check_label_array(targets, labels, "CIFAR-10.1", 10)
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(targets.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index].movedim(-1, 0).float().div_(255), self.labels[index]
