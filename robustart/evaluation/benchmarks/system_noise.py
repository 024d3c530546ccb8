"""System noise (RobustART's ImageNet-S and the CIFAR resize variant): top-1 accuracy of the
same images under several decoders × resize interpolations (× JPEG qualities), or, for CIFAR,
resized to 24-48 px and back; reported per variant with the mean and the population standard
deviation over variants.

The variants themselves (decoders, resizers, pipelines) live in :mod:`robustart.system_noise`.

Example:
    >>> result = evaluate_system_noise(model, "imagenet/val_subset")  # doctest: +SKIP
    >>> result.mean, result.std, result.accuracy["opencv-cv2_area"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from robustart.data.cifar import CIFAR10, CIFAR100, CifarSpec, load_cifar_split
from robustart.data.folders import class_folder_names
from robustart.data.imagefolder import IMAGENET_MEAN, IMAGENET_STD
from robustart.errors import ConfigError, EmptyInputError
from robustart.evaluation.benchmarks.base import (
    CIFAR10_MODELS,
    CIFAR100_MODELS,
    CIFAR_SOURCE,
    IMAGENET_MODELS,
    Benchmark,
    Evaluator,
    ModelData,
    Result,
    ShiftSettings,
    Table,
    percent,
    register,
)
from robustart.evaluation.loop import OutputTransform, evenly_spaced_indices, iterate_logits
from robustart.system_noise.cifar import CifarResizeVariant, cifar_variants
from robustart.system_noise.dataset import ImageSample, SystemNoiseDataset, folder_samples
from robustart.system_noise.pipeline import (
    SystemNoiseVariant,
    imagenet_s_variants,
    jpeg_quality_variants,
)
from robustart.utils import Progress, check_images, check_labels

__all__ = [
    "CifarSystemNoiseBenchmark",
    "FolderSystemNoiseBenchmark",
    "SystemNoiseResult",
    "aggregate_accuracies",
    "evaluate_cifar_system_noise",
    "evaluate_system_noise",
]


# ----------------------------------------------------------------------------- results
def aggregate_accuracies(accuracy: Mapping[str, float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof 0) of the per-variant accuracies.

    Example:
        >>> aggregate_accuracies({"a": 1.0, "b": 0.5, "c": 0.75})
        (0.75, 0.2041241452319315)
    """
    if not accuracy:
        raise ConfigError("no system-noise variants were evaluated")
    values = list(accuracy.values())
    average = sum(values) / len(values)
    return average, math.sqrt(sum((v - average) ** 2 for v in values) / len(values))


@dataclass
class SystemNoiseResult:
    """Accuracies of one model under system noise.

    Attributes:
        accuracy: ``{variant name: top-1 accuracy in [0, 1]}``.
        num_images: Images evaluated per variant.
        clean: Accuracy on the untouched images (CIFAR variant), else ``None``.
    """

    accuracy: dict[str, float]
    num_images: int
    clean: float | None = None

    @property
    def mean(self) -> float:
        """Mean accuracy over the variants."""
        return aggregate_accuracies(self.accuracy)[0]

    @property
    def std(self) -> float:
        """Population standard deviation of the accuracy over the variants."""
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


def _unique_names(variants: Sequence[Any]) -> list[str]:
    names = [v.name for v in variants]
    if not names:
        raise ConfigError("no system-noise variants given")
    if len(set(names)) != len(names):
        raise ConfigError(f"system-noise variants repeat a name: {names}")
    return names


def _correct_per_variant(
    model: nn.Module,
    dataset: Any,
    num_variants: int,
    batch_size: int,
    device: torch.device | str | None,
    num_workers: int = 0,
    output_transform: OutputTransform | None = None,
    progress: Progress | None = None,
    input_transform: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Correct predictions per variant, (V,) int64, over items whose logits come back as
    (B, V, K) from :func:`~robustart.evaluation.loop.iterate_logits`.

    Raises:
        NonFiniteError: NaN or infinite logits (no accuracy for a broken model).
        InputRangeError: labels outside the classes of the (transformed) logits.
    """
    correct = torch.zeros(num_variants, dtype=torch.long)
    for logits, labels in iterate_logits(
        model,
        dataset,
        batch_size,
        device,
        num_workers,
        output_transform,
        progress,
        input_transform,
    ):
        check_labels(labels, len(logits), logits.shape[-1])
        correct += (logits.argmax(dim=-1) == labels.view(-1, 1)).sum(dim=0).cpu()
    return correct


# ----------------------------------------------------------------------------- evaluation
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
    correct = _correct_per_variant(
        model, dataset, len(variants), batch_size, device, num_workers, output_transform, progress
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
        batch_size: Images per batch (each gives ``1 + len(variants)`` model inputs).
        device: Where the model runs (default: the device of its parameters).
        progress: A progress bar advanced once per batch (e.g. ``tqdm``).
    """
    check_images(images)
    if labels.shape != images.shape[:1]:
        raise ConfigError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    if len(images) == 0:
        raise EmptyInputError("no images given to the CIFAR system-noise evaluation")
    variants = list(variants) if variants is not None else cifar_variants()
    names = _unique_names(variants)

    def with_variants(batch: Tensor) -> Tensor:
        """(B, C, H, W) → (B, 1 + V, C, H, W): the untouched images, then every variant."""
        return torch.stack([batch, *(variant(batch) for variant in variants)], dim=1)

    correct = _correct_per_variant(
        model,
        TensorDataset(images, labels),
        len(variants) + 1,
        batch_size,
        device,
        progress=progress,
        input_transform=with_variants,
    )
    n = len(images)
    accuracy = {name: c / n for name, c in zip(names, correct[1:].tolist())}
    return SystemNoiseResult(accuracy=accuracy, num_images=n, clean=correct[0].item() / n)


# ----------------------------------------------------------------------------- benchmarks
class SystemNoiseTables:
    """Tables and bar chart shared by the system-noise benchmarks (results are
    :meth:`SystemNoiseResult.to_dict`)."""

    plot_file = "system_noise.png"
    title: str

    def table(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        with_clean = any(r["clean"] is not None for r in results.values())
        headers = ["model", "images", *(["clean"] if with_clean else [])]
        headers += ["mean", "std", "min", "max", "worst variant"]
        rows = []
        for name, r in results.items():
            worst = min(r["accuracy"], key=r["accuracy"].get)
            row = [name, r["num_images"], *([percent(r["clean"])] if with_clean else [])]
            row += [percent(r["mean"]), percent(r["std"]), percent(r["min"]), percent(r["max"])]
            rows.append([*row, worst])
        decimals = [0, 0, *([1] if with_clean else []), 1, 2, 1, 1, 0]
        return Table(headers, rows, decimals)

    def details(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        names = list(results)
        variants = list(dict.fromkeys(v for r in results.values() for v in r["accuracy"]))
        rows = [[v, *(percent(results[n]["accuracy"].get(v)) for n in names)] for v in variants]
        return Table(["variant", *names], rows)

    def caption(self, results: Mapping[str, Result], baseline: str | None) -> str:
        first = next(iter(results.values()))
        return (
            f"{self.title}: top-1 accuracy (%) of the same {first['num_images']} images under "
            f"{len(first['accuracy'])} variants; mean and standard deviation over variants (a "
            "large std means the model depends on how images are decoded and resized)."
        )

    def plot(self, results: Mapping[str, Result], path: Path) -> Path:
        from robustart.plots import save_grouped_bars

        values = {
            name: {v: 100 * a for v, a in r["accuracy"].items()} for name, r in results.items()
        }
        return save_grouped_bars(
            values,
            path,
            "accuracy (%)",
            title=f"{self.title}: accuracy per variant",
            zoom=True,
            ceiling=100.0,
        )


class FolderSystemNoiseBenchmark(SystemNoiseTables, Benchmark):
    """Image files in class folders through several decoders × resizers (× JPEG qualities).

    Args:
        variants: Builds the variants from the settings.
        extra: Settings read besides ``crop_size`` and ``folder_labels``.
        **kwargs: See :class:`~robustart.evaluation.benchmarks.base.Benchmark`.
    """

    def __init__(
        self,
        *,
        variants: Callable[[ShiftSettings], list[SystemNoiseVariant]],
        extra: frozenset[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.variants = variants
        self.options = frozenset({"crop_size", "folder_labels"}) | extra

    def model_data(self, settings: ShiftSettings) -> ModelData:
        if settings.folder_labels == "imagenet":
            return dataclasses.replace(IMAGENET_MODELS, image_size=settings.crop_size)
        classes = class_folder_names(settings.root, self.title, f"{settings.root}/<class>/<images>")
        return ModelData(len(classes), 3, IMAGENET_MEAN, IMAGENET_STD, None, settings.crop_size)

    def prepare(self, settings: ShiftSettings) -> Evaluator:
        samples = folder_samples(settings.root, settings.folder_labels)  # type: ignore[arg-type]
        samples = [samples[i] for i in evenly_spaced_indices(len(samples), settings.num_images)]
        variants = self.variants(settings)

        def evaluate(model: nn.Module, progress: Progress | None) -> Result:
            return evaluate_system_noise(
                model,
                samples,
                variants,
                crop_size=settings.crop_size,
                batch_size=max(1, settings.batch_size // len(variants)),
                device=settings.device,
                num_workers=settings.num_workers,
                labels=settings.folder_labels,  # type: ignore[arg-type]
                progress=progress,
            ).to_dict()

        return evaluate


class CifarSystemNoiseBenchmark(SystemNoiseTables, Benchmark):
    """The CIFAR test set resized to 24, 28, 40, 48 px and back with three interpolations.

    Args:
        spec: Which CIFAR test set.
        **kwargs: See :class:`~robustart.evaluation.benchmarks.base.Benchmark`.
    """

    def __init__(self, *, spec: CifarSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def prepare(self, settings: ShiftSettings) -> Evaluator:
        images, labels = load_cifar_split(settings.root, self.spec, train=False)
        keep = torch.tensor(evenly_spaced_indices(len(labels), settings.num_images))
        images, labels = images[keep].float().div_(255), labels[keep]

        def evaluate(model: nn.Module, progress: Progress | None) -> Result:
            return evaluate_cifar_system_noise(
                model,
                images,
                labels,
                batch_size=max(1, settings.batch_size // (1 + len(cifar_variants()))),
                device=settings.device,
                progress=progress,
            ).to_dict()

        return evaluate


_FOLDER_LAYOUT = "<class>/<images> (e.g. a subset of ImageNet val)"
_FOLDER_SOURCE = "your own images, e.g. ImageNet val from https://image-net.org"

register(
    FolderSystemNoiseBenchmark(
        name="imagenet-s",
        title="ImageNet-S",
        summary="accuracy under 3 decoders × 11 resize interpolations (mean, std)",
        layout=_FOLDER_LAYOUT,
        source=_FOLDER_SOURCE,
        models=IMAGENET_MODELS,
        variants=lambda settings: imagenet_s_variants(),
        extra=frozenset(),
    )
)
register(
    FolderSystemNoiseBenchmark(
        name="imagenet-s-jpeg",
        title="JPEG sweep",
        summary="accuracy after re-encoding as JPEG at each --jpeg-qualities (mean, std)",
        layout=_FOLDER_LAYOUT,
        source=_FOLDER_SOURCE,
        models=IMAGENET_MODELS,
        variants=lambda settings: jpeg_quality_variants(settings.jpeg_qualities),
        extra=frozenset({"jpeg_qualities"}),
    )
)
for _name, _title, _spec, _models in (
    ("cifar10-s", "CIFAR-10-S", CIFAR10, CIFAR10_MODELS),
    ("cifar100-s", "CIFAR-100-S", CIFAR100, CIFAR100_MODELS),
):
    register(
        CifarSystemNoiseBenchmark(
            name=_name,
            title=_title,
            summary="accuracy after resizing to 24/28/40/48 px and back with 3 interpolations "
            "(mean, std; clean)",
            layout=f"{_spec.folder}/{_spec.test[0]} (the python version of {_title[:-2]})",
            source=CIFAR_SOURCE,
            models=_models,
            spec=_spec,
        )
    )
