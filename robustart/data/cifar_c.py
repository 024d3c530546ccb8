"""CIFAR-10-C and CIFAR-100-C as distributed: one ``.npy`` array per corruption.

Layout: ``<root>/<corruption>.npy``, uint8 of shape (5·N, 32, 32, 3) holding the N = 10,000 test
images at severity 1, then all at severity 2, ... (severity-major), and ``<root>/labels.npy``
with the 5·N labels (the test labels repeated; N labels are accepted too). Arrays are memory
mapped, so a dataset costs no memory until images are read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from robustart.corruptions.base import SEVERITIES, check_severity
from robustart.data.shift import SHIFT_DATASETS
from robustart.errors import DatasetNotFoundError


def load_npy(path: Path, dataset: str, expected: str, mmap: bool = True) -> np.ndarray:
    """``np.load`` (memory mapped, no pickles) with a clear error when the file is missing."""
    if not path.is_file():
        raise DatasetNotFoundError(f"{dataset}: {path} not found. Expected {expected}.")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:  # EOFError: an empty (0-byte) file
        detail = "an empty file" if isinstance(err, EOFError) else str(err)
        raise DatasetNotFoundError(
            f"{dataset}: {path} is not a valid .npy array ({detail})"
        ) from None


def check_uint8_images(
    array: np.ndarray,
    path: Path,
    dataset: str,
    leading: int = 1,
    size: tuple[int, int] | None = (32, 32),
) -> None:
    """Check ``array`` is uint8 (..., H, W, 3) with ``leading`` dimensions before H, and
    (H, W) equal to ``size`` unless it is ``None`` (CIFAR variants are 32 × 32)."""
    hw = "H, W" if size is None else f"{size[0]}, {size[1]}"
    if (
        array.dtype != np.uint8
        or array.ndim != leading + 3
        or array.shape[-1] != 3
        or (size is not None and tuple(array.shape[-3:-1]) != tuple(size))
    ):
        raise DatasetNotFoundError(
            f"{dataset}: {path} must hold uint8 images of shape "
            f"({'N, ' * leading}{hw}, 3), got {array.dtype} {array.shape}"
        )
    # Images in [0, 1] cast to uint8 (values 0 and 1 only), or an array of zeros, have the
    # right type and shape but score like noise. The first images tell (memory-mapped files
    # are not read in full).
    if array.size and int(array[: SAMPLED_IMAGES // 16 ** (leading - 1) or 1].max()) <= 1:
        raise DatasetNotFoundError(
            f"{dataset}: {path} holds only the values 0 and 1 in its first images: images in "
            "[0, 1] cast to uint8, or an empty array of zeros, not 8-bit pixels (0-255). "
            "Write the array as uint8 pixels (e.g. (images * 255).round().astype(np.uint8))"
        )


#: Images of an array :func:`check_uint8_images` reads to check its values (the first ones).
SAMPLED_IMAGES = 256


def check_label_array(labels: np.ndarray, path: Path, dataset: str, num_classes: int) -> None:
    """Check that ``labels`` holds integer class indices in [0, ``num_classes``).

    Raises:
        DatasetNotFoundError: float (e.g. 3.9, which would be cut to 3), boolean or
            out-of-range labels, naming the file.
    """
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetNotFoundError(
            f"{dataset}: {path} must hold integer class labels, got dtype {labels.dtype}"
        )
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DatasetNotFoundError(
            f"{dataset}: {path} holds labels in [{int(labels.min())}, {int(labels.max())}], "
            f"outside the {num_classes} classes [0, {num_classes - 1}]"
        )


def hwc_uint8_to_float(image: np.ndarray) -> Tensor:
    """(..., H, W, 3) uint8 → float tensor (..., 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(image)).movedim(-1, -3).float().div_(255)


@SHIFT_DATASETS.register("cifar10-c")
class CIFAR10C(Dataset):
    """One corruption at one severity of CIFAR-10-C; items ``(image (3, 32, 32), label)``.

    Args:
        root: Folder with ``<corruption>.npy`` and ``labels.npy``.
        corruption: Corruption name, e.g. ``"gaussian_noise"``.
        severity: 1..5.
    """

    title = "CIFAR-10-C"
    num_classes = 10

    def __init__(self, root: str | Path, corruption: str, severity: int) -> None:
        check_severity(severity)
        self.root = Path(root)
        self.corruption, self.severity = corruption, severity
        path = self.root / f"{corruption}.npy"
        if not path.is_file():
            found = sorted(p.stem for p in self.root.glob("*.npy") if p.stem != "labels")
            hint = f" Found: {', '.join(found)}." if found else ""
            raise DatasetNotFoundError(
                f"{self.title}: {path} not found. Expected {self.root}/<corruption>.npy and "
                f"{self.root}/labels.npy (the extracted {self.title} archive).{hint}"
            )
        images = load_npy(path, self.title, "")
        check_uint8_images(images, path, self.title)
        labels_path = self.root / "labels.npy"
        labels = load_npy(labels_path, self.title, f"{labels_path} next to {path.name}", mmap=False)
        total = len(images)
        if total % len(SEVERITIES):
            raise DatasetNotFoundError(
                f"{self.title}: {path} has {total} images, not a multiple of the 5 severities"
            )
        n = total // len(SEVERITIES)
        if labels.ndim != 1 or len(labels) not in (n, total):
            raise DatasetNotFoundError(
                f"{self.title}: {labels_path} must hold {total} (or {n}) labels, got shape "
                f"{labels.shape}"
            )
        check_label_array(labels, labels_path, self.title, self.num_classes)
        start = (severity - 1) * n
        self.images = images[start : start + n]
        labels = labels[start : start + n] if len(labels) == total else labels
        self.labels = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return hwc_uint8_to_float(self.images[index]), self.labels[index]


@SHIFT_DATASETS.register("cifar100-c")
class CIFAR100C(CIFAR10C):
    """CIFAR-100-C (same layout as CIFAR-10-C, fine labels)."""

    title = "CIFAR-100-C"
    num_classes = 100
