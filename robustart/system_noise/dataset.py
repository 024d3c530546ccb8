"""The images of the system-noise evaluation: ``(file, label)`` samples of class folders, and
the dataset that serves each file through every variant (decoder × resizer × JPEG quality).

The evaluation itself (accuracy per variant, mean and spread) is
:func:`robustart.evaluation.benchmarks.evaluate_system_noise`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from robustart.data.folders import WnidFolderDataset, class_folder_names, scan_class_folders
from robustart.errors import ConfigError, CorruptImageError, DatasetNotFoundError, InputRangeError
from robustart.system_noise.pipeline import SystemNoiseVariant, validation_transform
from robustart.system_noise.resizers import RESIZERS

#: One image file and its class label.
ImageSample = tuple[str | os.PathLike, int]


def folder_samples(
    root: str | os.PathLike, labels: Literal["sorted", "imagenet"] = "sorted"
) -> list[tuple[Path, int]]:
    """``(file, label)`` of the images in the class folders of ``root``.

    Args:
        root: Folder of class folders.
        labels: ``"sorted"``: position of the folder in the sorted list (as ImageFolder);
            ``"imagenet"``: folders are wnids, labelled with their ImageNet-1k index.
    """
    root = Path(root)
    layout = f"{root}/<class>/<images>"
    if labels == "imagenet":
        return WnidFolderDataset(root, transform=lambda x: x, dataset="system noise").samples
    if labels != "sorted":
        raise ConfigError(f"labels must be 'sorted' or 'imagenet', got {labels!r}")
    names = class_folder_names(root, "system-noise images", layout)
    return scan_class_folders(root, {n: i for i, n in enumerate(names)}, "system noise", layout)


class SystemNoiseDataset(Dataset):
    """Items ``(inputs (V, 3, crop, crop) in [0, 1], label)``: one image through all V
    variants.

    Each file is read once and decoded once per (decoder, JPEG quality) of the variants.
    """

    def __init__(
        self,
        samples: Sequence[ImageSample],
        variants: Sequence[SystemNoiseVariant],
        crop_size: int = 224,
    ) -> None:
        if not samples:
            raise DatasetNotFoundError("no image files given for the system-noise evaluation")
        self.samples = [(Path(p), int(label)) for p, label in samples]
        missing = [str(p) for p, _ in self.samples if not p.is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"{len(missing)} image files not found, e.g. {', '.join(missing[:3])}"
            )
        self.variants = list(variants)
        self.crop_size = crop_size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, label = self.samples[index]
        data = path.read_bytes()
        decoded: dict[tuple[str, int | None], Any] = {}
        inputs = []
        for variant in self.variants:
            key = (variant.decoder, variant.jpeg_quality)
            if key not in decoded:
                try:
                    decoded[key] = variant.decode(data)
                except (InputRangeError, OSError, ValueError, RuntimeError) as err:
                    reason = " ".join(str(err).split())  # one line, also from a worker
                    raise CorruptImageError(
                        f"cannot read image {path}: the {variant.decoder} decoder failed "
                        f"({reason}); the file is truncated, corrupt or not an image. Replace "
                        "it with a good copy or remove it from the folder."
                    ) from None
            resizer = RESIZERS.get(variant.resizer)
            inputs.append(validation_transform(decoded[key], resizer, self.crop_size))
        return torch.stack(inputs), label
