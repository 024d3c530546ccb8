"""Natural distribution shift: labelled test sets drawn from another distribution (CIFAR-10.1,
ImageNet-A, -R, -Sketch, V2), scored by top-1 accuracy and expected calibration error.

Example:
    >>> from robustart.data import ImageNetA
    >>> data = ImageNetA("data/imagenet-a")  # doctest: +SKIP
    >>> scores = evaluate_classification(
    ...     model, data, output_transform=data.subset.restrict)  # doctest: +SKIP
    >>> scores["accuracy"], scores["ece"], scores["num_images"]  # doctest: +SKIP
    (0.031, 0.52, 7500)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from robustart.data.shift import SHIFT_DATASETS
from robustart.errors import EmptyInputError
from robustart.evaluation.benchmarks.base import (
    CIFAR10_MODELS,
    IMAGENET_MODELS,
    Benchmark,
    Evaluator,
    Result,
    ShiftSettings,
    Table,
    percent,
    register,
)
from robustart.evaluation.loop import OutputTransform, iterate_logits, limit_dataset
from robustart.metrics.calibration import CalibrationError
from robustart.utils import Progress, check_labels

__all__ = ["ClassificationBenchmark", "evaluate_classification"]


def missing_classes_option(settings: ShiftSettings) -> dict[str, bool]:
    """The dataset keyword of ``--allow-missing-classes`` (none when it is not given)."""
    return {"allow_missing_classes": True} if settings.allow_missing_classes else {}


def partial_copy_classes(data: Any, settings: ShiftSettings) -> dict[str, int]:
    """``{"classes_present": n, "classes": N}`` for a partial copy scored on purpose (with
    ``--allow-missing-classes``); empty for a complete one."""
    if not settings.allow_missing_classes:
        return {}
    subset = getattr(data, "subset", None)
    total = len(subset) if subset is not None else 1000
    present = len(data.classes)
    return {"classes_present": present, "classes": total} if present < total else {}


def partial_copy_caption(results: Mapping[str, Result]) -> str:
    """The caption's warning for results of a partial copy (empty for a complete one)."""
    for result in results.values():
        if "classes_present" in result:
            return (
                f" Partial copy (--allow-missing-classes): {result['classes_present']} of its "
                f"{result['classes']} classes, not comparable with published numbers."
            )
    return ""


def evaluate_classification(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    output_transform: OutputTransform | None = None,
    n_bins: int = 15,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Top-1 accuracy and expected calibration error on ``dataset``.

    Args:
        model: Images (N, 3, H, W) in [0, 1] → logits (N, K).
        dataset: Items ``(image (3, H, W) in [0, 1], label in [0, K))``, e.g.
            :class:`~robustart.data.ImageNetA`.
        batch_size: Images per forward pass.
        device: Where the model runs (default: the device of its parameters).
        num_workers: DataLoader workers.
        output_transform: Applied to the logits first, e.g. ``dataset.subset.restrict`` to score
            a 1000-class model on a 200-class subset.
        n_bins: ECE bins.
        progress: A progress bar advanced once per batch (e.g. ``tqdm``).

    Returns:
        ``{"accuracy": in [0, 1], "ece": in [0, 1], "num_images": N}``.

    Raises:
        EmptyInputError: the dataset has no images.
        NonFiniteError: NaN or infinite logits.
        InputRangeError: labels outside the classes of the (transformed) logits, e.g.
            ImageNet-1k labels scored against a 200-class restriction.
    """
    correct, total = 0, 0
    ece = CalibrationError(n_bins=n_bins)
    for logits, labels in iterate_logits(
        model, dataset, batch_size, device, num_workers, output_transform, progress
    ):
        check_labels(labels, len(logits), logits.shape[-1], "the dataset's labels")
        correct += int((logits.argmax(dim=1) == labels).sum())
        total += len(labels)
        ece.update(logits.cpu(), labels.cpu())
    if total == 0:
        raise EmptyInputError(
            "the dataset to evaluate has no images: there is no accuracy to report"
        )
    return {"accuracy": correct / total, "ece": float(ece.compute()), "num_images": total}


class ClassificationBenchmark(Benchmark):
    """A labelled test set from another distribution: top-1 accuracy and calibration error.
    Its dataset is the one registered under the benchmark's name in
    :data:`robustart.data.SHIFT_DATASETS`.

    Args:
        restrict: Score 1000-class models on the dataset's 200-class subset
            (``dataset.subset.restrict``), as for ImageNet-A and -R.
        class_folders: The dataset is class folders of a known class list (ImageNet-A, -R,
            -Sketch, V2): a copy lacking some is refused unless ``allow_missing_classes``.
        **kwargs: See :class:`~robustart.evaluation.benchmarks.base.Benchmark`.
    """

    def __init__(self, *, restrict: bool = False, class_folders: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.restrict = restrict
        self.options = frozenset({"allow_missing_classes"} if class_folders else ())

    def prepare(self, settings: ShiftSettings) -> Evaluator:
        data = SHIFT_DATASETS.get(self.name)(settings.root, **missing_classes_option(settings))
        classes = partial_copy_classes(data, settings)
        transform = data.subset.restrict if self.restrict else None  # type: ignore[attr-defined]
        subset = limit_dataset(data, settings.num_images)

        def evaluate(model: nn.Module, progress: Progress | None) -> Result:
            return (
                evaluate_classification(
                    model,
                    subset,
                    settings.batch_size,
                    settings.device,
                    settings.num_workers,
                    output_transform=transform,
                    progress=progress,
                )
                | classes
            )

        return evaluate

    def table(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        rows = [
            [name, r["num_images"], percent(r["accuracy"]), percent(r["ece"])]
            for name, r in results.items()
        ]
        return Table(["model", "images", "accuracy", "ECE"], rows)

    def caption(self, results: Mapping[str, Result], baseline: str | None) -> str:
        classes = " (logits restricted to its 200 classes)" if self.restrict else ""
        return (
            f"{self.title}{classes}: top-1 accuracy and expected calibration error (%)."
            + partial_copy_caption(results)
        )


for _name, _title, _summary, _layout, _source, _models, _restrict in (
    (
        "cifar10.1",
        "CIFAR-10.1",
        "top-1 accuracy on a new CIFAR-10 test set (v6)",
        "cifar10.1_v6_data.npy and cifar10.1_v6_labels.npy",
        "https://github.com/modestyachts/CIFAR-10.1 (datasets/)",
        CIFAR10_MODELS,
        False,
    ),
    (
        "imagenet-a",
        "ImageNet-A",
        "top-1 accuracy on natural adversarial examples (200 classes)",
        "<wnid>/*.jpg (200 class folders)",
        "https://github.com/hendrycks/natural-adv-examples",
        IMAGENET_MODELS,
        True,
    ),
    (
        "imagenet-r",
        "ImageNet-R",
        "top-1 accuracy on renditions: art, cartoons, sketches, ... (200 classes)",
        "<wnid>/*.jpg (200 class folders)",
        "https://github.com/hendrycks/imagenet-r",
        IMAGENET_MODELS,
        True,
    ),
    (
        "imagenet-sketch",
        "ImageNet-Sketch",
        "top-1 accuracy on sketches of the 1000 classes",
        "<wnid>/*.JPEG (the sketch/ folder of the archive)",
        "https://github.com/HaohanWang/ImageNet-Sketch",
        IMAGENET_MODELS,
        False,
    ),
    (
        "imagenet-v2",
        "ImageNetV2",
        "top-1 accuracy on a new ImageNet test set",
        "<0..999>/*.jpeg (folders named by class index)",
        "https://github.com/modestyachts/ImageNetV2",
        IMAGENET_MODELS,
        False,
    ),
):
    register(
        ClassificationBenchmark(
            name=_name,
            title=_title,
            summary=_summary,
            layout=_layout,
            source=_source,
            models=_models,
            restrict=_restrict,
            class_folders=_models is IMAGENET_MODELS,
        )
    )
