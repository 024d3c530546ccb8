"""Datasets of image files in class folders, with explicit labels per folder.

Unlike ``torchvision.datasets.ImageFolder`` (labels = position in the lexically sorted folder
list), the label of each folder is given explicitly, so that a folder tree holding only some
classes, or folders named ``0..999``, still gets the labels a 1000-class model expects.

Items are ``(image, label)`` with the image a float tensor (3, H, W) in [0, 1].
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from robustart.data.imagenet_classes import ClassSubset, imagenet_wnid_to_index
from robustart.errors import (
    CorruptImageError,
    DatasetNotFoundError,
    InputRangeError,
    RobustartError,
    RobustartWarning,
)

#: File name endings read as images (compared case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")

ImageTransform = Callable[[Image.Image], Tensor]


def to_float_transform() -> ImageTransform:
    """PIL image → float tensor (3, H, W) in [0, 1], no resizing."""
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def evaluation_transform(image_size: int = 224, resize_size: int = 256) -> ImageTransform:
    """The ImageNet validation transform: shorter side to ``resize_size``, centre crop
    ``image_size``, float tensor in [0, 1] (no normalisation: the model normalises)."""
    return v2.Compose(
        [
            v2.Resize(resize_size, antialias=True),
            v2.CenterCrop(image_size),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def is_image_file(path: Path) -> bool:
    """A file with an image extension robustart reads, not hidden (macOS's ``._*`` sidecar files
    share the image's extension but hold no image)."""
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not is_hidden(path)


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


#: PIL modes of 16-bit greyscale images (16-bit colour PNGs open as 8-bit "RGB").
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def to_rgb(image: Image.Image, what: str) -> Image.Image:
    """``image`` as 8-bit RGB, with 16-bit greyscale scaled to 8 bits.

    PIL's ``convert("RGB")`` clips 16-bit values at 255, which turns a 16-bit greyscale PNG
    almost white; here its values are divided by 257 and rounded (0 → 0, 65535 → 255).

    Args:
        image: An opened PIL image.
        what: The image, for the error message (its path).

    Raises:
        InputRangeError: a 32-bit integer or float image (mode ``I`` or ``F``), whose value
            range is not known.
    """
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64) / 257.0
        return Image.fromarray(np.rint(values).astype(np.uint8), mode="L").convert("RGB")
    if image.mode in ("I", "F"):
        raise InputRangeError(
            f"{what} is a 32-bit {'float' if image.mode == 'F' else 'integer'} image, whose "
            "value range is unknown; convert it to 8-bit (or 16-bit) PNG or JPEG"
        )
    return image.convert("RGB")


def load_rgb_image(path: str | Path) -> Image.Image:
    """Read an image file completely and convert it to RGB.

    The whole file is decoded here (PIL otherwise decodes lazily), so a broken file fails at
    this point with its name rather than somewhere in a transform.

    Args:
        path: An image file (any format PIL reads).

    Returns:
        An RGB ``PIL.Image`` (H, W, 3 channels, uint8 values 0..255).

    Raises:
        CorruptImageError: the file is truncated, corrupt or not an image (a single-string
            error, so a DataLoader worker can re-raise it).
    """
    try:
        with Image.open(path) as image:
            return to_rgb(image, f"image {path}")
    except FileNotFoundError:
        raise DatasetNotFoundError(
            f"image file {path} disappeared while the dataset was read; check the dataset "
            "folder (was it moved or is the disk unmounted?)"
        ) from None
    except (MemoryError, RobustartError):
        raise
    except Exception as err:  # decoders raise OSError, SyntaxError, struct.error, ...
        raise CorruptImageError(
            f"cannot read image {path}: the file is truncated, corrupt or not an image "
            f"({type(err).__name__}: {' '.join(str(err).split())}). Replace it with a good "
            "copy (re-extract the dataset) or delete it."
        ) from None


def check_image_headers(paths: Sequence[str | Path], what: str) -> None:
    """Refuse image files whose header PIL cannot read (not an image, empty, garbage), before
    the work that would read them.

    Opening an image reads only its header (tens of microseconds a file), so a whole
    evaluation split is checked in seconds; a file that is cut short or damaged further in is
    still found when it is decoded (:func:`load_rgb_image`).

    Args:
        paths: Image files.
        what: Names the files in the message (``"the validation images of <root>"``).

    Raises:
        CorruptImageError: naming the first unreadable files and their number.
    """
    bad: list[str] = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.size  # noqa: B018  (the header is parsed on open)
        except FileNotFoundError:
            raise DatasetNotFoundError(
                f"image file {path} disappeared while {what} were checked; check the dataset "
                "folder (was it moved or is the disk unmounted?)"
            ) from None
        except Exception as err:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
            bad.append(f"{path} ({type(err).__name__})")
    if bad:
        shown = "; ".join(bad[:5]) + (f"; ... ({len(bad)} in all)" if len(bad) > 5 else "")
        raise CorruptImageError(
            f"{len(bad)} of {what} cannot be read as images: {shown}. Replace them with good "
            "copies (re-extract the dataset) or delete them, before training or evaluating on "
            "them."
        )


def class_folder_names(root: Path, dataset: str, layout: str) -> list[str]:
    """Sorted names of the sub-folders of ``root``.

    Args:
        root: The folder holding the class folders.
        dataset: Dataset name for messages (``"ImageNet-A"``).
        layout: Expected layout for messages (``"<root>/<wnid>/*.JPEG"``).

    Raises:
        DatasetNotFoundError: if ``root`` is missing or has no sub-folders.
    """
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"{dataset} not found: {root} is not a folder. Expected the layout {layout}."
        )
    names = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not names:
        raise DatasetNotFoundError(
            f"{dataset}: no class folders in {root}. Expected the layout {layout}; point the "
            "root at the folder that directly contains the class folders."
        )
    return names


def scan_class_folders(
    root: Path, labels: Mapping[str, int], dataset: str, layout: str
) -> list[tuple[Path, int]]:
    """``(file, label)`` for every image in the folders named in ``labels`` (in the mapping's
    order), files sorted by name.

    Raises:
        DatasetNotFoundError: if a folder is missing or no image is found.
    """
    samples: list[tuple[Path, int]] = []
    empty: list[str] = []
    skipped: list[Path] = []  # visible files of other types: said, not silently dropped
    for name in labels:
        folder = root / name
        if not folder.is_dir():
            raise DatasetNotFoundError(f"{dataset}: class folder {folder} is missing ({layout})")
        found = []
        for f in sorted(folder.iterdir()):
            if is_image_file(f):
                found.append((f, labels[name]))
            elif f.is_file() and not is_hidden(f):
                skipped.append(f)
        if not found:
            empty.append(name)
        samples.extend(found)
    if skipped:
        examples = ", ".join(str(f.relative_to(root)) for f in skipped[:3])
        warnings.warn(
            f"{dataset}: {len(skipped)} file(s) in the class folders of {root} are not of an "
            f"image type robustart reads ({', '.join(IMAGE_EXTENSIONS)}) and are left out, e.g. "
            f"{examples}; convert them to count them",
            RobustartWarning,
            stacklevel=2,
        )
    if not samples:
        raise DatasetNotFoundError(
            f"{dataset}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in the class folders of "
            f"{root}. Expected the layout {layout}."
        )
    if empty:
        raise DatasetNotFoundError(empty_class_folders_message(dataset, root, empty))
    return samples


def empty_class_folders_message(
    dataset: str,
    root: Path,
    empty: list[str],
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    remedy: str = "or delete the empty folders if those classes are meant to be absent",
) -> str:
    """The error text for class folders that hold no image file (an incomplete copy).

    Args:
        dataset: Dataset name for the message.
        root: Folder holding the class folders.
        empty: Names of the class folders without images.
        extensions: File endings read as images.
        remedy: What else to do besides extracting the missing images.
    """
    shown = ", ".join(empty[:5]) + (f", ... ({len(empty)} in all)" if len(empty) > 5 else "")
    return (
        f"{dataset}: {len(empty)} class folders of {root} hold no image files "
        f"({', '.join(extensions)}): {shown}. The copy is incomplete: extract the missing "
        f"images, {remedy}."
    )


def check_all_classes_present(
    present: Collection[str],
    required: Collection[str],
    dataset: str,
    root: Path,
    remedy: str = (
        "score the classes present on purpose (allow_missing_classes=True; "
        "--allow-missing-classes of robustart shift, allow_missing_classes: true in a suite's "
        "shift entry)"
    ),
) -> None:
    """Refuse a copy of a dataset that lacks some of its class folders.

    A partial copy (an interrupted download or extraction, a few classes copied for a quick
    try) would be scored under the benchmark's name, on other classes than the published
    numbers it is compared with.

    Args:
        present: Class folder names found under ``root``.
        required: Class folder names the dataset has.
        dataset: Dataset name for the message.
        root: Folder holding the class folders.
        remedy: How to evaluate the classes present on purpose (Python API).

    Raises:
        DatasetNotFoundError: naming how many folders are missing, and some of them.
    """
    found = set(present)
    missing = [name for name in required if name not in found]
    if not missing:
        return
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    raise DatasetNotFoundError(
        f"{dataset}: {root} holds {len(required) - len(missing)} of the {len(required)} class "
        f"folders of the dataset ({len(missing)} missing: {shown}), so it would be scored on "
        f"other classes than the published numbers. Complete the copy (download and extract "
        f"it again), or {remedy}."
    )


class ImageFileDataset(Dataset):
    """Items ``(transform(image), label)`` from a list of ``(file, label)``.

    Args:
        samples: Image files and their labels.
        transform: PIL image → float tensor (3, H, W) in [0, 1].
    """

    def __init__(self, samples: list[tuple[Path, int]], transform: ImageTransform) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, label = self.samples[index]
        return self.transform(load_rgb_image(path)), label


class WnidFolderDataset(ImageFileDataset):
    """Class folders named by ImageNet-1k wnids (``<root>/<wnid>/*.JPEG``).

    Args:
        root: Folder holding the wnid folders.
        transform: PIL image → float tensor in [0, 1].
        subset: ``None``: every folder, labelled with its ImageNet-1k class index (0..999).
            A :class:`ClassSubset`: only its classes, labelled ``0..len(subset)-1`` (or with
            ImageNet indices if ``imagenet_labels``).
        skip_other_folders: With a subset, ignore folders outside it (e.g. ImageNet val when
            only some classes are wanted) instead of raising.
        imagenet_labels: Label subset images with ImageNet-1k indices instead.
        dataset: Dataset name for messages.
        required_classes: Wnids whose folders must all be present (default: the subset's,
            or none without a subset): a partial copy is refused.
        allow_missing_classes: Score the classes present even if some required ones are
            missing (a partial copy evaluated on purpose).

    Raises:
        DatasetNotFoundError: ``root`` is missing, holds folders that are not wnids (or not in
            the subset), lacks required class folders, or has class folders without images.
    """

    def __init__(
        self,
        root: str | Path,
        transform: ImageTransform,
        subset: ClassSubset | None = None,
        skip_other_folders: bool = False,
        imagenet_labels: bool = False,
        dataset: str = "image folder",
        required_classes: Collection[str] | None = None,
        allow_missing_classes: bool = False,
    ) -> None:
        self.root = Path(root)
        self.subset = subset
        layout = f"{self.root}/<wnid>/<images>"
        names = class_folder_names(self.root, dataset, layout)
        imagenet = imagenet_wnid_to_index()
        unknown = [n for n in names if n not in imagenet]
        if unknown:
            raise DatasetNotFoundError(
                f"{dataset}: folders of {self.root} must be ImageNet-1k wnids such as n01440764; "
                f"not recognised: {', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''}"
            )
        if subset is None:
            labels = {n: imagenet[n] for n in names}
        else:
            outside = [n for n in names if n not in subset.wnids]
            if outside and not skip_other_folders:
                raise DatasetNotFoundError(
                    f"{dataset}: {len(outside)} class folders of {self.root} are not in the "
                    f"{len(subset)}-class subset {subset.name!r} (e.g. {', '.join(outside[:3])}). "
                    "Point the root at the right dataset, or use subset='folders' to take the "
                    "classes from the folders present."
                )
            kept = [n for n in names if n in subset.wnids]
            if not kept:
                raise DatasetNotFoundError(
                    f"{dataset}: none of the class folders of {self.root} is in the subset "
                    f"{subset.name!r}"
                )
            labels = {n: imagenet[n] if imagenet_labels else subset.label_of(n) for n in kept}
        self.classes = sorted(labels)
        self.class_to_idx = labels
        super().__init__(scan_class_folders(self.root, labels, dataset, layout), transform)
        if required_classes is None and subset is not None:
            required_classes = subset.wnids
        if required_classes is not None and not allow_missing_classes:
            check_all_classes_present(names, required_classes, dataset, self.root)
