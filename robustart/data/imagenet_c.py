"""ImageNet-C as distributed: ``<root>/<corruption>/<severity>/<wnid>/*.JPEG`` (224×224).

Images were made by Resize(256) → CenterCrop(224) → corrupt → JPEG quality 85, so the default
transform only converts them to float; accuracies from these files differ slightly from
on-the-fly corruptions (which skip the JPEG round trip).
"""

from __future__ import annotations

from pathlib import Path

from robustart.corruptions.base import check_severity
from robustart.data.folders import ImageTransform, WnidFolderDataset, to_float_transform
from robustart.data.shift import SHIFT_DATASETS
from robustart.errors import DatasetNotFoundError


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
        super().__init__(
            folder / str(severity),
            transform or to_float_transform(),
            dataset=f"ImageNet-C {corruption} severity {severity}",
        )
