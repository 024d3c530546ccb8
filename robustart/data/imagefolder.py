"""ImageNet-style folder trees: ``root/train/<class>/*.JPEG`` and ``root/val/<class>/*``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.transforms import v2

from robustart.data.base import RobustartDataModule, Split
from robustart.errors import DatasetNotFoundError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_float() -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]


class ImageFolderDataModule(RobustartDataModule):
    """Any ``train/`` + ``val/`` class-folder tree (ImageNet layout).

    Training: RandomResizedCrop(``image_size``) and a horizontal flip. Evaluation:
    Resize(``resize_size``) and CenterCrop(``image_size``) (256 → 224 for ImageNet). The test
    split is ``test/`` when present, else ``val/``.

    Args:
        root: Folder with ``train/`` and ``val/`` subfolders of class folders.
        image_size: Crop size in pixels.
        resize_size: Shorter side before the evaluation centre crop.
        num_classes: Number of classes; default: the number of class folders in ``train/``
            (or ``val/``).
        mean: Normalisation mean linked into the model (default: ImageNet's).
        std: Normalisation std linked into the model (default: ImageNet's).
        **kwargs: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``pin_memory``,
            ``augment_policy``, ``stylized_root`` (see :class:`RobustartDataModule`).
    """

    def __init__(
        self,
        root: str,
        image_size: int = 224,
        resize_size: int = 256,
        num_classes: int | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        batch_size: int = 256,
        num_workers: int = 8,
        **kwargs,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, **kwargs)
        self.root = Path(root)
        self.image_size = image_size
        self.resize_size = resize_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.num_classes = num_classes if num_classes is not None else len(self._classes())

    def _split_dir(self, split: Split) -> Path:
        name = {"train": "train", "val": "val", "test": "test"}[split]
        path = self.root / name
        if split == "test" and not path.is_dir():
            path = self.root / "val"
        if not path.is_dir():
            raise DatasetNotFoundError(
                f"image folder not found: {path}. Expected {self.root}/train/<class>/<images> and "
                f"{self.root}/val/<class>/<images> (the ImageNet layout; for ImageNet, arrange "
                "the validation images into class folders first)."
            )
        return path

    def _classes(self) -> list[str]:
        for split in ("train", "val"):
            path = self.root / split
            if path.is_dir():
                classes = sorted(d.name for d in path.iterdir() if d.is_dir())
                if classes:
                    return classes
        raise DatasetNotFoundError(
            f"no class folders under {self.root}/train or {self.root}/val. Expected "
            f"{self.root}/train/<class>/<images>, or pass num_classes explicitly."
        )

    def _train_transform(self) -> v2.Compose:
        return v2.Compose(
            [
                v2.RandomResizedCrop(self.image_size, antialias=True),
                v2.RandomHorizontalFlip(),
                *_to_float(),
            ]
        )

    def folder_dataset(self, root: Path) -> Dataset:
        return datasets.ImageFolder(str(root), transform=self._train_transform())

    def build_dataset(self, split: Split, train_transform: bool) -> Dataset:
        if train_transform:
            transform = self._train_transform()
        else:
            transform = v2.Compose(
                [
                    v2.Resize(self.resize_size, antialias=True),
                    v2.CenterCrop(self.image_size),
                    *_to_float(),
                ]
            )
        dataset = datasets.ImageFolder(str(self._split_dir(split)), transform=transform)
        if len(dataset.classes) != self.num_classes:
            raise DatasetNotFoundError(
                f"{self._split_dir(split)} has {len(dataset.classes)} class folders but the "
                f"datamodule expects {self.num_classes}"
            )
        return dataset
