"""ImageNet-C as distributed: ``<root>/<corruption>/<severity>/<wnid>/*.JPEG`` (224×224).

Images were made by Resize(256) → CenterCrop(224) → corrupt → JPEG quality 85, so the default
transform only converts them to float; accuracies from these files differ slightly from
on-the-fly corruptions (which skip the JPEG round trip).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from robustart.corruptions.base import check_severity
from robustart.data.folders import ImageTransform, WnidFolderDataset, to_float_transform
from robustart.data.shift import SHIFT_DATASETS
from robustart.errors import DatasetNotFoundError, InputRangeError

#: (height, width) of every ImageNet-C image.
RELEASE_SIZE = (224, 224)


@SHIFT_DATASETS.register("imagenet-c")
class ImageNetC(WnidFolderDataset):
    """One corruption at one severity of ImageNet-C; labels are ImageNet-1k indices.

    Args:
        root: Folder holding the corruption folders (``gaussian_noise/``, ``fog/``, ...).
        corruption: Corruption name, e.g. ``"gaussian_noise"``.
        severity: 1..5.
        transform: PIL image → float tensor (default: to float, no resizing).
    """

    def __init__(
        self,
        root: str | Path,
        corruption: str,
        severity: int,
        transform: ImageTransform | None = None,
    ) -> None:
        check_severity(severity)
        base = Path(root)
        folder = base / corruption
        if not folder.is_dir():
            found = sorted(d.name for d in base.iterdir() if d.is_dir()) if base.is_dir() else []
            hint = f" Found: {', '.join(found)}." if found else ""
            raise DatasetNotFoundError(
                f"ImageNet-C corruption {corruption!r} not found: expected {folder}/<severity>/"
                f"<wnid>/*.JPEG (the extracted ImageNet-C archives under {base}).{hint}"
            )
        self.corruption, self.severity = corruption, severity
        #: With the default transform, images must be the release's size (checked per image).
        self.image_size = RELEASE_SIZE if transform is None else None
        super().__init__(
            folder / str(severity),
            transform or to_float_transform(),
            dataset=f"ImageNet-C {corruption} severity {severity}",
        )

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = super().__getitem__(index)
        if self.image_size is not None and tuple(image.shape[-2:]) != self.image_size:
            height, width = image.shape[-2:]
            raise InputRangeError(
                f"ImageNet-C image {self.samples[index][0]} is {width} x {height} px; the "
                f"release's images are all {RELEASE_SIZE[1]} x {RELEASE_SIZE[0]} (they are "
                "scored as given, not resized): point --data-root at the extracted ImageNet-C "
                "archives, or pass a transform that resizes"
            )
        return image, label
