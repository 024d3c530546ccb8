"""ImageNet-style folder trees: ``root/train/<class>/*.JPEG`` and ``root/val/<class>/*``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import v2

from robustart.data.base import RobustartDataModule, Split
from robustart.data.folders import (
    check_image_headers,
    empty_class_folders_message,
    load_rgb_image,
)
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

    Labels are positions in the sorted list of class folders, so every split must have the
    same class folders (else a label would mean another class in each split) and every class
    folder must hold images; both are checked when a split is opened. An image file that
    cannot be decoded raises :class:`~robustart.errors.CorruptImageError` naming the file
    when it is read; the validation and test images' headers are all checked when their split
    is opened (:func:`~robustart.data.folders.check_image_headers`), so that an unreadable
    file there is found before training, not after the first epoch.

    Args:
        root: Folder with ``train/`` and ``val/`` subfolders of class folders.
        image_size: Crop size in pixels.
        resize_size: Shorter side before the evaluation centre crop.
        num_classes: Number of classes; default: the number of class folders in ``train/``
            (or ``val/``).
        mean: Normalisation mean linked into the model (default: ImageNet's).
        std: Normalisation std linked into the model (default: ImageNet's).
        **kwargs: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``pin_memory``,
            ``augment_policy``, ``stylized_root``, ``persistent_workers`` (see
            :class:`RobustartDataModule`).
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
        if num_classes is None:
            reference, classes = self._reference_classes()
            if len(classes) < 2:
                raise DatasetNotFoundError(
                    f"{reference} has {len(classes)} class folder ({classes[0]}): a classifier "
                    "needs at least 2 classes. Add a folder of images for every class, in "
                    "every split."
                )
            num_classes = len(classes)
        self.num_classes = num_classes

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
        return self._reference_classes()[1]

    def _reference_classes(self) -> tuple[Path, list[str]]:
        """The split whose class folders define the labels (``train/``, else ``val/``) and its
        sorted class-folder names."""
        for split in ("train", "val"):
            path = self.root / split
            if path.is_dir():
                classes = _class_folders(path)
                if classes:
                    return path, classes
        raise DatasetNotFoundError(
            f"no class folders under {self.root}/train or {self.root}/val. Expected "
            f"{self.root}/train/<class>/<images> and {self.root}/val/<class>/<images>."
        )

    def _check_classes(self, path: Path) -> None:
        """Refuse a split whose class folders differ from the reference split's: labels are
        positions in the sorted folder list, so they would silently mean other classes."""
        classes = _class_folders(path)
        if not classes:
            raise DatasetNotFoundError(
                f"no class folders in {path}. Expected {path}/<class>/<images>, with the same "
                "class folders as the other splits."
            )
        reference, expected = self._reference_classes()
        if classes == expected:
            return
        only_here = sorted(set(classes) - set(expected))
        only_there = sorted(set(expected) - set(classes))
        parts = [
            f"only in {where}: {_shortlist(names)}"
            for where, names in ((path, only_here), (reference, only_there))
            if names
        ]
        raise DatasetNotFoundError(
            f"the class folders of {path} differ from those of {reference} "
            f"({'; '.join(parts)}). Labels are positions in the sorted list of class folders, "
            "so every split must have the same class folders: add the missing ones (empty "
            "folders are not allowed either) or rename the differing ones."
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
        return _image_folder(root, self._train_transform())

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
        path = self._split_dir(split)
        self._check_classes(path)
        dataset = _image_folder(path, transform)
        if not train_transform:  # read every epoch, first after a whole training epoch
            files = [file for file, _ in dataset.samples]
            check_image_headers(files, f"the {len(files)} {split} images of {path}")
        if len(dataset.classes) != self.num_classes:
            raise DatasetNotFoundError(
                f"{path} has {len(dataset.classes)} class folders but the datamodule expects "
                f"{self.num_classes} (num_classes)"
            )
        return dataset


def _class_folders(path: Path) -> list[str]:
    """Sorted names of the sub-folders of ``path`` (what ImageFolder takes as classes)."""
    return sorted(d.name for d in path.iterdir() if d.is_dir())


def _shortlist(names: list[str], count: int = 5) -> str:
    return ", ".join(names[:count]) + (f", ... ({len(names)} in all)" if len(names) > count else "")


def _image_folder(root: Path, transform: v2.Compose) -> datasets.ImageFolder:
    """``ImageFolder`` that names empty class folders and unreadable image files in its errors.

    Raises:
        DatasetNotFoundError: no class folders, or class folders without image files.
    """
    classes = _class_folders(root) if root.is_dir() else []
    if not classes:
        raise DatasetNotFoundError(f"no class folders in {root}. Expected {root}/<class>/<images>.")
    dataset = datasets.ImageFolder(
        str(root), transform=transform, loader=load_rgb_image, allow_empty=True
    )
    counts = torch.bincount(torch.tensor(dataset.targets, dtype=torch.long), minlength=len(classes))
    empty = [name for name, count in zip(dataset.classes, counts.tolist()) if count == 0]
    if empty:
        raise DatasetNotFoundError(
            empty_class_folders_message(
                "image folder",
                root,
                empty,
                extensions=IMG_EXTENSIONS,
                remedy="or delete those classes in every split (labels follow the folder list)",
            )
        )
    return dataset
