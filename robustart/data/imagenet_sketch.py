"""ImageNet-Sketch: ``<root>/<wnid>/*.JPEG`` with the 1000 ImageNet classes (50 sketches each)."""

from __future__ import annotations

from pathlib import Path

from robustart.data.folders import ImageTransform, WnidFolderDataset, evaluation_transform
from robustart.data.imagenet_classes import imagenet_wnid_to_index
from robustart.data.shift import SHIFT_DATASETS


@SHIFT_DATASETS.register("imagenet-sketch")
class ImageNetSketch(WnidFolderDataset):
    """ImageNet-Sketch; labels are ImageNet-1k class indices of the wnid folders.

    Args:
        root: Folder holding the wnid folders (``sketch/`` of the official archive).
        transform: PIL image → float tensor (default: resize 256, centre crop 224).
        allow_missing_classes: Score a copy that lacks some of the 1000 class folders
            (refused by default: it would be scored on other classes than published).
    """

    def __init__(
        self,
        root: str | Path,
        transform: ImageTransform | None = None,
        allow_missing_classes: bool = False,
    ) -> None:
        super().__init__(
            root,
            transform or evaluation_transform(),
            dataset="ImageNet-Sketch",
            required_classes=list(imagenet_wnid_to_index()),
            allow_missing_classes=allow_missing_classes,
        )
