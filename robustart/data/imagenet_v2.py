"""ImageNetV2: ``<root>/<class index>/*.jpeg`` with folders named ``0`` .. ``999``.

The folder name *is* the ImageNet-1k class index. Reading the folders in lexical order (as
``torchvision.datasets.ImageFolder`` does: 0, 1, 10, 100, ...) would scramble the labels; here
each folder is labelled with its number and folders are listed in numeric order.
"""

from __future__ import annotations

from pathlib import Path

from robustart.data.folders import (
    ImageFileDataset,
    ImageTransform,
    check_all_classes_present,
    class_folder_names,
    evaluation_transform,
    scan_class_folders,
)
from robustart.data.shift import SHIFT_DATASETS
from robustart.errors import DatasetNotFoundError

NUM_CLASSES = 1000


def numeric_folder_labels(names: list[str], root: Path) -> dict[str, int]:
    """``{folder: int(folder)}`` in numeric order; every name must be an integer in 0..999,
    written without leading zeros (``007`` beside ``7`` would be two folders of one class).

    Example:
        >>> list(numeric_folder_labels(["10", "2", "0"], Path(".")))
        ['0', '2', '10']
    """
    bad = [n for n in names if not n.isdigit() or int(n) >= NUM_CLASSES or n != str(int(n))]
    if bad:
        raise DatasetNotFoundError(
            f"ImageNetV2: class folders of {root} must be named 0..999 (the ImageNet class "
            f"index, no leading zeros); not recognised: {', '.join(bad[:5])}"
        )
    return {n: int(n) for n in sorted(names, key=int)}


@SHIFT_DATASETS.register("imagenet-v2")
class ImageNetV2(ImageFileDataset):
    """ImageNetV2 (any of its three variants); labels are ImageNet-1k class indices.

    Args:
        root: Folder holding ``0/`` .. ``999/`` (e.g. ``imagenetv2-matched-frequency-format-val``).
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
        self.root = Path(root)
        layout = f"{self.root}/<0..999>/*.jpeg"
        names = class_folder_names(self.root, "ImageNetV2", layout)
        labels = numeric_folder_labels(names, self.root)
        self.classes = list(labels)
        super().__init__(
            scan_class_folders(self.root, labels, "ImageNetV2", layout),
            transform or evaluation_transform(),
        )
        if not allow_missing_classes:
            check_all_classes_present(
                labels, [str(i) for i in range(NUM_CLASSES)], "ImageNetV2", self.root
            )
