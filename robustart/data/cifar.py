"""CIFAR-10 and CIFAR-100 from a local folder in the official python-pickle layout.

``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` and
``root/cifar-100-python/{train, test, meta}``. The pickles are read with a restricted
unpickler that only rebuilds NumPy arrays and plain containers, so a tampered file cannot run
code. With ``download=True`` (off by default) torchvision fetches and checks the archive.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from robustart.data.base import RobustartDataModule, Split, TransformedDataset
from robustart.data.cifar_c import check_label_array
from robustart.errors import DatasetNotFoundError

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"disallowed object {module}.{name} in a CIFAR batch file")


def read_cifar_batch(path: Path) -> dict[str, Any]:
    """Read one CIFAR pickle safely; keys are returned as ``str``."""
    with open(path, "rb") as f:
        data = _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


class CifarSpec:
    """Layout facts of one CIFAR variant."""

    def __init__(
        self,
        name: str,
        folder: str,
        train: list[str],
        test: list[str],
        label_key: str,
        num_classes: int,
        url: str,
        md5: str,
    ) -> None:
        self.name, self.folder, self.train, self.test = name, folder, train, test
        self.label_key, self.num_classes, self.url, self.md5 = label_key, num_classes, url, md5


CIFAR10 = CifarSpec(
    "CIFAR-10",
    "cifar-10-batches-py",
    [f"data_batch_{i}" for i in range(1, 6)],
    ["test_batch"],
    "labels",
    10,
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "c58f30108f718f92721af3b95e74349a",
)
CIFAR100 = CifarSpec(
    "CIFAR-100",
    "cifar-100-python",
    ["train"],
    ["test"],
    "fine_labels",
    100,
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "eb9058c3a382ffc7106ca9c9d6c3b2b2",
)


def load_cifar_split(root: str | Path, spec: CifarSpec, train: bool) -> tuple[Tensor, Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one split.

    Raises:
        DatasetNotFoundError: naming the missing files and how to get them.
    """
    folder = Path(root) / spec.folder
    files = spec.train if train else spec.test
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{spec.name} not found: expected {', '.join(str(folder / f) for f in missing)}. "
            f"Download {spec.url} and extract it into {Path(root).resolve()} (it creates "
            f"{spec.folder}/), or set `download: true` on a machine with internet access."
        )
    images, labels = [], []
    for f in files:
        try:
            batch = read_cifar_batch(folder / f)
            data, target = np.asarray(batch["data"]), np.asarray(batch[spec.label_key])
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as err:
            raise DatasetNotFoundError(
                f"{folder / f} is not a valid {spec.name} batch file ({err}); "
                "re-extract the official archive."
            ) from None
        # the official rows: 3072 uint8 values, the red plane, then green, then blue
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DatasetNotFoundError(
                f"{folder / f}: 'data' must be uint8 rows of 3072 values (N, 3072), the official "
                f"layout, got {data.dtype} {data.shape}; re-extract the official archive"
            )
        check_label_array(target, folder / f, spec.name, spec.num_classes)
        data, target = data.reshape(-1, 3, 32, 32), target.astype(np.int64)
        if len(data) != len(target):
            raise DatasetNotFoundError(f"{folder / f}: {len(data)} images but {len(target)} labels")
        images.append(data)
        labels.append(target)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


class UInt8ImageDataset(Dataset):
    """Items ``(float image (C, H, W) in [0, 1], label)`` from uint8 tensors (N, C, H, W)."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index].float().div_(255), self.labels[index]


class CIFAR10DataModule(RobustartDataModule):
    """CIFAR-10 from ``root`` (50,000 train / 10,000 test images, 32×32).

    The validation split is the official test set (as in the adversarial-training literature);
    training augmentation is a random 32-px crop of the 4-px zero-padded image and a horizontal
    flip.

    Args:
        root: Folder containing ``cifar-10-batches-py/``.
        download: Download the official archive into ``root`` if missing (needs internet).
        augment: Random crop and flip for training.
        **kwargs: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``pin_memory``,
            ``augment_policy``, ``stylized_root``, ``persistent_workers`` (see
            :class:`RobustartDataModule`).
    """

    spec = CIFAR10
    num_classes = 10
    image_size = 32
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)

    def __init__(
        self, root: str = "data", download: bool = False, augment: bool = True, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.download = download
        self.augment = augment

    def prepare_data(self) -> None:
        folder = Path(self.root) / self.spec.folder
        if self.download and not folder.is_dir():
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(self.spec.url, self.root, md5=self.spec.md5)

    def train_augmentation(self) -> v2.Compose | None:
        if not self.augment:
            return None
        return v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])

    def build_dataset(self, split: Split, train_transform: bool) -> Dataset:
        images, labels = load_cifar_split(self.root, self.spec, train=split == "train")
        dataset = UInt8ImageDataset(images, labels)
        if train_transform and self.augment:
            return TransformedDataset(dataset, self.train_augmentation())
        return dataset


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100 from ``root`` (folder containing ``cifar-100-python/``); see CIFAR-10."""

    spec = CIFAR100
    num_classes = 100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
