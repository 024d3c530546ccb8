"""Top-1 accuracy of a model under every system-noise variant, and its spread.

:func:`evaluate_system_noise` reads image files (a list of ``(file, label)`` or a folder of class
folders), builds every variant's input from the same bytes, and reports the top-1 accuracy per
variant with the mean and the population standard deviation over variants;
:func:`evaluate_cifar_system_noise` does the same for CIFAR-style tensors.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from robustart.data.folders import WnidFolderDataset, class_folder_names, scan_class_folders
from robustart.errors import (
    ConfigError,
    CorruptImageError,
    DatasetNotFoundError,
    EmptyInputError,
    InputRangeError,
)
from robustart.system_noise.cifar import CifarResizeVariant, cifar_variants
from robustart.system_noise.pipeline import (
    SystemNoiseVariant,
    imagenet_s_variants,
    validation_transform,
)
from robustart.system_noise.resizers import RESIZERS
from robustart.utils import (
    Progress,
    check_finite_logits,
    check_images,
    check_labels,
    preserve_mode,
    track_progress,
)

ImageSample = tuple[str | os.PathLike, int]
OutputTransform = Callable[[Tensor], Tensor]


def aggregate_accuracies(accuracy: Mapping[str, float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof 0) of the per-variant accuracies.

    Example:
        >>> aggregate_accuracies({"a": 1.0, "b": 0.5, "c": 0.75})
        (0.75, 0.2041241452319315)
    """
    if not accuracy:
        raise ConfigError("no system-noise variants were evaluated")
    values = list(accuracy.values())
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


@dataclass
class SystemNoiseResult:
    """Accuracies of one model under system noise.

    Attributes:
        accuracy: ``{variant name: top-1 accuracy}`` (fractions).
        num_images: Images evaluated per variant.
        clean: Accuracy on the untouched images (CIFAR variant), else ``None``.
    """

    accuracy: dict[str, float]
    num_images: int
    clean: float | None = None

    @property
    def mean(self) -> float:
        return aggregate_accuracies(self.accuracy)[0]

    @property
    def std(self) -> float:
        return aggregate_accuracies(self.accuracy)[1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (write it with :func:`robustart.utils.atomic_write_json`)."""
        return {
            "num_images": self.num_images,
            "clean": self.clean,
            "accuracy": dict(self.accuracy),
            "mean": self.mean,
            "std": self.std,
            "min": min(self.accuracy.values()),
            "max": max(self.accuracy.values()),
        }

    def metrics(self, prefix: str = "system_noise/") -> dict[str, float]:
        """Flat ``{name: value}`` for loggers: per variant, ``mean``, ``std`` (and ``clean``)."""
        out = {f"{prefix}{name}": acc for name, acc in self.accuracy.items()}
        out[f"{prefix}mean"], out[f"{prefix}std"] = aggregate_accuracies(self.accuracy)
        if self.clean is not None:
            out[f"{prefix}clean"] = self.clean
        return out


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
    """Items ``(inputs (V, 3, crop, crop), label)``: one image through all V variants.

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


def _model_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    parameter = next(iter(model.parameters()), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _count_correct(
    model: nn.Module, images: Tensor, labels: Tensor, output_transform: OutputTransform | None
) -> Tensor:
    """Per-variant correct counts for images (B, V, C, H, W) → (V,).

    Raises:
        NonFiniteError: NaN or infinite logits (no accuracy for a broken model).
        InputRangeError: labels outside the classes of the (transformed) logits.
    """
    b, v = images.shape[:2]
    logits = model(images.flatten(0, 1))
    if output_transform is not None:
        logits = output_transform(logits)
    check_finite_logits(logits)
    check_labels(labels, b, logits.shape[-1])
    predictions = logits.argmax(dim=1).view(b, v)
    return (predictions == labels.view(b, 1)).sum(dim=0)


def _unique_names(variants: Sequence[Any]) -> list[str]:
    names = [v.name for v in variants]
    if not names:
        raise ConfigError("no system-noise variants given")
    if len(set(names)) != len(names):
        raise ConfigError(f"system-noise variants repeat a name: {names}")
    return names


def evaluate_system_noise(
    model: nn.Module,
    images: Sequence[ImageSample] | str | os.PathLike,
    variants: Sequence[SystemNoiseVariant] | None = None,
    crop_size: int = 224,
    batch_size: int = 16,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    labels: Literal["sorted", "imagenet"] = "sorted",
    output_transform: OutputTransform | None = None,
    progress: Progress | None = None,
) -> SystemNoiseResult:
    """Top-1 accuracy of ``model`` on the same image files under each variant.

    Args:
        model: Maps float images (N, 3, crop, crop) in [0, 1] to logits (N, K).
        images: ``[(file, label), ...]`` or a folder of class folders (see ``labels``).
        variants: Pipelines to compare (default: :func:`imagenet_s_variants`, 33 of them).
        crop_size: Model input side (the resize is ``round(crop · 8/7)``).
        batch_size: Images per batch (each gives ``len(variants)`` model inputs).
        device: Where the model runs (default: the device of its parameters).
        num_workers: DataLoader workers decoding the files.
        labels: How a folder's class folders are labelled: ``"sorted"`` or ``"imagenet"``.
        output_transform: Applied to the logits before the argmax, e.g.
            ``ClassSubset.restrict`` for a 200-class subset.
        progress: A progress bar advanced once per batch (e.g. ``tqdm``).
    """
    variants = list(variants) if variants is not None else imagenet_s_variants()
    names = _unique_names(variants)
    samples = images if isinstance(images, Sequence) and not isinstance(images, str) else None
    if samples is None:
        samples = folder_samples(images, labels)  # type: ignore[arg-type]
    dataset = SystemNoiseDataset(samples, variants, crop_size)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    device = _model_device(model, device)
    correct = torch.zeros(len(variants), dtype=torch.long, device=device)
    with preserve_mode(model, train=False), torch.inference_mode():
        for inputs, targets in track_progress(loader, progress):
            correct += _count_correct(
                model, inputs.to(device), targets.to(device), output_transform
            )
    accuracy = {n: c / len(dataset) for n, c in zip(names, correct.tolist())}
    return SystemNoiseResult(accuracy=accuracy, num_images=len(dataset))


def evaluate_cifar_system_noise(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    variants: Sequence[CifarResizeVariant] | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
) -> SystemNoiseResult:
    """Top-1 accuracy on CIFAR-style images under each resize variant (and untouched).

    Args:
        model: Maps float images (N, C, H, W) in [0, 1] to logits.
        images: (N, C, H, W) float in [0, 1], e.g. the CIFAR-10 test set.
        labels: (N,) integer labels.
        variants: Default :func:`cifar_variants` (3 interpolations × 4 sizes).
        progress: A progress bar advanced once per batch (e.g. ``tqdm``).
    """
    check_images(images)
    if labels.shape != images.shape[:1]:
        raise ConfigError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    if len(images) == 0:
        raise EmptyInputError("no images given to the CIFAR system-noise evaluation")
    variants = list(variants) if variants is not None else cifar_variants()
    names = _unique_names(variants)
    device = _model_device(model, device)
    correct = torch.zeros(len(variants) + 1, dtype=torch.long, device=device)
    with preserve_mode(model, train=False), torch.inference_mode():
        for start in track_progress(range(0, len(images), batch_size), progress):
            x = images[start : start + batch_size].to(device)
            y = labels[start : start + batch_size].to(device)
            batch = torch.stack([x, *(variant(x) for variant in variants)], dim=1)
            correct += _count_correct(model, batch, y, None)
    n = len(images)
    accuracy = {name: c / n for name, c in zip(names, correct[1:].tolist())}
    return SystemNoiseResult(accuracy=accuracy, num_images=n, clean=correct[0].item() / n)
