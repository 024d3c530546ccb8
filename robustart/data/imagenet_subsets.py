"""200-class ImageNet variants: ImageNet-A, ImageNet-R and ImageNet-O (and its in-distribution
counterpart, ImageNet val restricted to ImageNet-O's classes).

Layouts: ``imagenet-a/<wnid>/*.jpg``, ``imagenet-r/<wnid>/*.jpg``, ``imagenet-o/<wnid>/*.jpg``
(200 wnid folders each). Images are labelled ``0..199`` in sorted-wnid order; score a 1000-class
model with ``dataset.subset.restrict(logits)`` or :class:`~robustart.data.SubsetLogits`.

``subset`` chooses the classes: the dataset's official 200 (default), ``"folders"`` (the wnid
folders present on disk: partial copies, tests), another known name, a :class:`ClassSubset` or
a list of wnids. Every class of the subset must have its folder: a partial copy is refused
unless ``allow_missing_classes=True`` (it keeps the official labels).

ImageNet-O is out-of-distribution data: its folder name is the ImageNet class the image was
adversarially filtered against, not a correct label. Its reference evaluation (AUPR with the
anomaly score ``−max softmax``) keeps the logits of the 200 ImageNet-O classes and uses ImageNet
validation images of those 200 classes as in-distribution data: :class:`ImageNetOInDistribution`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from robustart.data.folders import ImageTransform, WnidFolderDataset, evaluation_transform
from robustart.data.imagenet_classes import ClassSubset, resolve_subset
from robustart.data.shift import SHIFT_DATASETS

SubsetSpec = str | ClassSubset | Iterable[str]


class ImageNetSubsetFolder(WnidFolderDataset):
    """Wnid class folders of a 200-class ImageNet variant (base class).

    Args:
        root: Folder holding the wnid folders.
        subset: See the module docstring (default: the dataset's own 200 classes).
        transform: PIL image → float tensor (default: resize 256, centre crop 224).
        imagenet_labels: Label images with ImageNet-1k indices instead of ``0..199``.
        allow_missing_classes: Score a copy that lacks some of the subset's class folders
            (refused by default: it would be scored on other classes than published).
    """

    #: Name of the default class subset and of the dataset (set by subclasses).
    default_subset = ""
    title = ""
    skip_other_folders = False

    def __init__(
        self,
        root: str | Path,
        subset: SubsetSpec | None = None,
        transform: ImageTransform | None = None,
        imagenet_labels: bool = False,
        allow_missing_classes: bool = False,
    ) -> None:
        super().__init__(
            root,
            transform or evaluation_transform(),
            subset=resolve_subset(subset or self.default_subset, root),
            skip_other_folders=self.skip_other_folders,
            imagenet_labels=imagenet_labels,
            dataset=self.title,
            allow_missing_classes=allow_missing_classes,
        )


@SHIFT_DATASETS.register("imagenet-a")
class ImageNetA(ImageNetSubsetFolder):
    """ImageNet-A: natural adversarial examples of 200 ImageNet classes."""

    default_subset = "imagenet_a"
    title = "ImageNet-A"


@SHIFT_DATASETS.register("imagenet-r")
class ImageNetR(ImageNetSubsetFolder):
    """ImageNet-R: renditions (art, cartoons, sketches, ...) of 200 ImageNet classes."""

    default_subset = "imagenet_r"
    title = "ImageNet-R"


@SHIFT_DATASETS.register("imagenet-o")
class ImageNetO(ImageNetSubsetFolder):
    """ImageNet-O: out-of-distribution images that models confuse with 200 ImageNet classes."""

    default_subset = "imagenet_o"
    title = "ImageNet-O"


@SHIFT_DATASETS.register("imagenet-o-in-distribution")
class ImageNetOInDistribution(ImageNetSubsetFolder):
    """ImageNet validation images of ImageNet-O's 200 classes (``root``: the val folder with
    its 1000 wnid folders; the other 800 are skipped)."""

    default_subset = "imagenet_o"
    title = "ImageNet val (ImageNet-O classes)"
    skip_other_folders = True
