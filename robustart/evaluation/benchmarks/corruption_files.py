"""Pre-generated common corruptions (-C: CIFAR-10-C, CIFAR-100-C, ImageNet-C): accuracy on
every corruption × severity of files kept on disk, and the mean corruption error.

The numbers land in a :class:`~robustart.evaluation.report.RobustnessReport`, which
:func:`robustart.metrics.summarize_report` turns into mCE & co.

Example:
    >>> report, ece = evaluate_corruption_files(
    ...     model, "cifar10-c", "data/CIFAR-10-C", clean_accuracy=0.95)  # doctest: +SKIP
    >>> summarize_report(report)["mce"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from robustart.corruptions.base import BENCHMARK_CORRUPTIONS, SEVERITIES, check_severity
from robustart.data.cifar import CIFAR10, CIFAR100, CifarSpec, UInt8ImageDataset, load_cifar_split
from robustart.data.folders import WnidFolderDataset, evaluation_transform
from robustart.data.shift import create_shift_dataset
from robustart.errors import ConfigError, DatasetNotFoundError
from robustart.evaluation.benchmarks.base import (
    ALEXNET,
    CIFAR10_MODELS,
    CIFAR100_MODELS,
    HENDRYCKS_SOURCE,
    IMAGENET_MODELS,
    Benchmark,
    Evaluator,
    Result,
    ShiftSettings,
    Table,
    num_batches,
    percent,
    register,
)
from robustart.evaluation.benchmarks.natural_shift import evaluate_classification
from robustart.evaluation.loop import OutputTransform, limit_dataset
from robustart.evaluation.report import RobustnessReport
from robustart.metrics.corruption import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    accuracies_to_errors,
    summarize_report,
)
from robustart.utils import Progress, fixed_total

__all__ = ["CorruptionBenchmark", "evaluate_corruption_files"]


def evaluate_corruption_files(
    model: nn.Module,
    dataset: str,
    root: str,
    clean_accuracy: float,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
    severities: Sequence[int] = SEVERITIES,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    output_transform: OutputTransform | None = None,
    num_images: int | None = None,
    progress: Progress | None = None,
) -> tuple[RobustnessReport, dict[str, dict[int, float]]]:
    """Accuracy (and ECE) on every corruption × severity of a pre-generated corruption set.

    Args:
        model: Images (N, 3, H, W) in [0, 1] → logits (N, K).
        dataset: Name in :data:`robustart.data.SHIFT_DATASETS`: ``"cifar10-c"``,
            ``"cifar100-c"`` or ``"imagenet-c"`` (any spelling).
        root: Folder of the extracted dataset.
        clean_accuracy: Clean accuracy in [0, 1] of the model on the uncorrupted test set
            (stored in the report; relative mCE needs it; NaN when unmeasured).
        corruptions: Names to evaluate (default: the 15 benchmark corruptions).
        severities: Severities (1-5) to evaluate.
        batch_size: Images per forward pass.
        device: Where the model runs (default: the device of its parameters).
        num_workers: DataLoader workers.
        output_transform: Applied to the logits before they are scored.
        num_images: Evaluate only this many images of each corruption × severity, evenly
            spaced (:func:`~robustart.evaluation.loop.limit_dataset`; the same positions in
            every subset), for quick runs.
        progress: A progress bar advanced once per batch (e.g. ``tqdm``).

    Returns:
        ``(report, ece)``: a :class:`RobustnessReport` with ``corruptions[name][severity]``
        accuracies in [0, 1], and ``{name: {severity: ECE in [0, 1]}}``.
    """
    for severity in severities:
        check_severity(severity)
    accuracies: dict[str, dict[int, float]] = {}
    calibration: dict[str, dict[int, float]] = {}
    counted = 0
    for name in corruptions:
        for severity in severities:
            data = create_shift_dataset(dataset, root, corruption=name, severity=severity)
            scores = evaluate_classification(
                model,
                limit_dataset(data, num_images),
                batch_size,
                device,
                num_workers,
                output_transform,
                progress=progress,
            )
            accuracies.setdefault(name, {})[severity] = scores["accuracy"]
            calibration.setdefault(name, {})[severity] = scores["ece"]
            counted = int(scores["num_images"])
    report = RobustnessReport(counted, float(clean_accuracy), corruptions=accuracies)
    return report, calibration


def check_equal_subsets(title: str, sizes: Mapping[tuple[str, int], int]) -> None:
    """Refuse corruption × severity subsets of different sizes (after ``--num-images``).

    The subsets of a -C set are the same test images, corrupted: subsets of different sizes
    (an incomplete copy, a class folder missing in one severity) are different images, and
    their accuracies and mCE would be compared as equals.

    Args:
        title: The set's name for the message.
        sizes: Images evaluated per (corruption, severity).

    Raises:
        DatasetNotFoundError: naming the smallest and the largest subset.
    """
    if len(set(sizes.values())) <= 1:
        return
    (small, n_small), (large, n_large) = (
        min(sizes.items(), key=lambda kv: kv[1]),
        max(sizes.items(), key=lambda kv: kv[1]),
    )
    raise DatasetNotFoundError(
        f"{title}: the corruption subsets hold different numbers of images ({small[0]} "
        f"severity {small[1]}: {n_small}, {large[0]} severity {large[1]}: {n_large}): an "
        "incomplete copy, whose accuracies and mCE would compare different images. Complete "
        "the copy, or evaluate the complete subsets only (--subsets, --severities)"
    )


def _label_counts(dataset: Dataset) -> Tensor | None:
    """Images per class of a dataset that lists its labels (``labels`` or ``targets``)."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = getattr(dataset, "targets", None)
    if labels is None:
        return None
    return torch.bincount(torch.as_tensor(labels, dtype=torch.int64).flatten())


def check_clean_matches(title: str, clean: Dataset, corrupted: Dataset, clean_root: Path) -> None:
    """Refuse clean images (``--clean-root``) that are not the images the -C set corrupts.

    The relative mCE and every "clean vs corrupted" drop compare the clean accuracy with the
    corrupted ones: on a clean set of other classes or another size (a partial ImageNet val
    beside a complete ImageNet-C, CIFAR-100's test set beside CIFAR-10-C) they compare
    different images. The images per class must be equal.

    Args:
        title: The set's name for the message.
        clean: The clean test set.
        corrupted: One corruption × severity subset of the set.
        clean_root: The clean set's folder, for the message.

    Raises:
        DatasetNotFoundError: the number of images of some class differs.
    """
    clean_counts, corrupted_counts = _label_counts(clean), _label_counts(corrupted)
    if clean_counts is None or corrupted_counts is None:
        return
    size = max(len(clean_counts), len(corrupted_counts))
    clean_counts = torch.nn.functional.pad(clean_counts, (0, size - len(clean_counts)))
    corrupted_counts = torch.nn.functional.pad(corrupted_counts, (0, size - len(corrupted_counts)))
    differ = (clean_counts != corrupted_counts).nonzero().flatten().tolist()
    if not differ:
        return
    examples = ", ".join(
        f"class {c}: {int(clean_counts[c])} clean vs {int(corrupted_counts[c])}" for c in differ[:3]
    )
    raise DatasetNotFoundError(
        f"{title}: the clean images of --clean-root {clean_root} are not the images the set "
        f"corrupts ({len(clean)} clean vs {len(corrupted)} per subset; {len(differ)} classes "
        f"differ, e.g. {examples}), so clean and corrupted accuracies would compare different "
        "images. Point --clean-root at the matching clean test set (the complete ImageNet val "
        "folder for ImageNet-C, the CIFAR folder of the same CIFAR for CIFAR-C)"
    )


class CorruptionBenchmark(Benchmark):
    """Pre-generated corruption sets (-C): accuracy per corruption × severity, mCE. Its files
    are read by the dataset registered under the benchmark's name in
    :data:`robustart.data.SHIFT_DATASETS`.

    Args:
        found: Lists the corruption names present under a root.
        clean: Loads the clean test set from ``--clean-root``.
        clean_layout: What ``--clean-root`` must hold (for ``--help`` and errors).
        reference: Whether AlexNet's published errors apply (ImageNet-C).
        **kwargs: See :class:`~robustart.evaluation.benchmarks.base.Benchmark`.
    """

    options = frozenset({"clean_root", "subsets", "severities", "baseline"})
    plot_file = "corruption_heatmap.png"

    def __init__(
        self,
        *,
        found: Callable[[Path], list[str]],
        clean: Callable[[Path], Dataset],
        clean_layout: str,
        reference: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.found, self.reference = found, reference
        self.clean, self.clean_layout = clean, clean_layout
        self.default_baseline = ALEXNET if reference else None

    def check_baseline(self, baseline: str | None) -> None:
        if not self.reference:
            super().check_baseline(baseline)

    def _subsets(self, settings: ShiftSettings) -> list[str]:
        found = self.found(settings.root)
        if settings.subsets == ["all"]:
            if not found:
                raise DatasetNotFoundError(
                    f"{self.title}: no corruptions under {settings.root}; expected {self.layout}"
                )
            return found
        wanted = list(settings.subsets or BENCHMARK_CORRUPTIONS)
        missing = [n for n in wanted if n not in found]
        if missing:
            raise DatasetNotFoundError(
                f"{self.title}: {len(missing)} corruptions missing under {settings.root}: "
                f"{', '.join(missing)}. Expected {self.layout}. Found: "
                f"{', '.join(found) or 'none'}. Pass --subsets with the ones to evaluate, or "
                "--subsets all."
            )
        return wanted

    def prepare(self, settings: ShiftSettings) -> Evaluator:
        subsets = self._subsets(settings)
        clean = self.clean(settings.clean_root) if settings.clean_root else None
        # open every corruption × severity now (each checks its files, shapes and labels), so a
        # broken one fails before any model is evaluated, not after hours on the others
        # (one at a time: the evaluation opens each again when it reaches it, and ImageNet-C's
        # file lists are large)
        first = None
        sizes: dict[tuple[str, int], int] = {}
        for corruption in subsets:
            for severity in settings.severities:
                dataset = create_shift_dataset(
                    self.name, str(settings.root), corruption=corruption, severity=severity
                )
                first = dataset if first is None else first
                sizes[corruption, severity] = len(limit_dataset(dataset, settings.num_images))
        check_equal_subsets(self.title, sizes)
        if clean is not None:
            check_clean_matches(self.title, clean, first, settings.clean_root)
        batches = num_batches(limit_dataset(first, settings.num_images), settings.batch_size)
        total = len(subsets) * len(settings.severities) * batches
        if clean is not None:
            total += num_batches(limit_dataset(clean, settings.num_images), settings.batch_size)

        def evaluate(model: nn.Module, progress: Progress | None) -> Result:
            progress = fixed_total(progress, total)
            accuracy = None
            if clean is not None:
                accuracy = evaluate_classification(
                    model,
                    limit_dataset(clean, settings.num_images),
                    settings.batch_size,
                    settings.device,
                    settings.num_workers,
                    progress=progress,
                )["accuracy"]
            report, ece = evaluate_corruption_files(
                model,
                self.name,
                str(settings.root),
                clean_accuracy=math.nan if accuracy is None else accuracy,
                corruptions=subsets,
                severities=settings.severities,
                batch_size=settings.batch_size,
                device=settings.device,
                num_workers=settings.num_workers,
                num_images=settings.num_images,
                progress=progress,
            )
            return {
                "num_images": report.num_images,
                "clean": accuracy,
                "corruptions": report.corruptions,
                "ece": ece,
            }

        return evaluate

    @staticmethod
    def report(result: Result) -> RobustnessReport:
        """The :class:`RobustnessReport` of one model's result (NaN clean when unmeasured)."""
        clean = math.nan if result["clean"] is None else result["clean"]
        return RobustnessReport(
            num_images=result["num_images"], clean=clean, corruptions=result["corruptions"]
        )

    def summarize(self, results: dict[str, Result], baseline: str | None) -> list[str]:
        warnings: list[str] = []
        table, clean_error = None, None
        if baseline == ALEXNET:
            table, clean_error = ALEXNET_ERRORS, ALEXNET_CLEAN_ERROR
        elif baseline is not None:
            table = accuracies_to_errors(results[baseline]["corruptions"])
        for name, result in results.items():
            report = self.report(result)
            try:
                result["summary"] = summarize_report(report, table, clean_error)
            except (ConfigError, ZeroDivisionError) as err:
                warnings.append(f"{name}: no mCE relative to {baseline}: {err}")
                result["summary"] = summarize_report(report, None, None)
        return warnings

    def table(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        headers = ["model", "images", "clean", "mean acc", "unnorm. mCE"]
        if baseline is not None:
            headers.append("mCE" if baseline == ALEXNET else f"mCE vs {baseline}")
        if baseline == ALEXNET:
            headers.append("rel. mCE")
        rows = []
        for name, result in results.items():
            summary = result["summary"]
            row = [
                name,
                result["num_images"],
                percent(result["clean"]),
                percent(summary["mean_corruption_accuracy"]),
                summary["unnormalized_mce"],
            ]
            if baseline is not None:
                row.append(summary["mce"])
            if baseline == ALEXNET:
                row.append(summary["relative_mce"])
            rows.append(row)
        return Table(headers, rows)

    def details(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        severities = sorted(
            {s for r in results.values() for c in r["corruptions"].values() for s in c}
        )
        headers = ["model", "corruption", *(f"s{s}" for s in severities), "mean"]
        if baseline is not None:
            headers.append("CE")
        rows = []
        for name, result in results.items():
            for corruption, curve in result["corruptions"].items():
                row = [name, corruption, *(percent(curve.get(s)) for s in severities)]
                row.append(percent(sum(curve.values()) / len(curve)))
                if baseline is not None:
                    row.append(result["summary"]["ce"].get(corruption))
                rows.append(row)
        return Table(headers, rows)

    def caption(self, results: Mapping[str, Result], baseline: str | None) -> str:
        first = next(iter(results.values()))
        pairs = first["summary"]["num_pairs"]
        text = (
            f"{self.title}: accuracy (%) over {pairs} corruption × severity pairs, "
            f"{first['num_images']} images each; unnormalised mCE = mean error (%)"
        )
        if baseline == ALEXNET:
            text += "; mCE and relative mCE normalised by AlexNet's ImageNet-C errors"
        elif baseline is not None:
            text += f"; mCE normalised by {baseline}'s errors (100 = as robust as {baseline})"
        if baseline is not None and first["summary"]["mce_missing"]:
            text += " (mCE needs all 15 benchmark corruptions at severities 1-5)"
        if first["clean"] is None:
            text += "; clean accuracy needs --clean-root"
        return text + "."

    def plot(self, results: Mapping[str, Result], path: Path) -> Path:
        from robustart.plots import save_accuracy_heatmap

        reports = {name: self.report(r) for name, r in results.items()}
        return save_accuracy_heatmap(reports, path, title=f"{self.title}: accuracy (%)")


def _npy_corruptions(root: Path) -> list[str]:
    """Corruption names of a CIFAR-C folder: the ``<corruption>.npy`` stems."""
    return sorted(p.stem for p in root.glob("*.npy") if p.stem != "labels")


def _folder_corruptions(root: Path) -> list[str]:
    """Corruption names of an ImageNet-C folder: its sub-folders."""
    return sorted(d.name for d in root.iterdir() if d.is_dir()) if root.is_dir() else []


def _cifar_test_set(spec: CifarSpec) -> Callable[[Path], Dataset]:
    """Loads the clean CIFAR test set (uint8 images served as floats in [0, 1])."""

    def load(root: Path) -> Dataset:
        return UInt8ImageDataset(*load_cifar_split(root, spec, train=False))

    return load


def _imagenet_val(root: Path) -> Dataset:
    """The clean ImageNet validation images of ``--clean-root`` (wnid folders)."""
    return WnidFolderDataset(root, evaluation_transform(), dataset="ImageNet val (--clean-root)")


for _name, _title, _models, _clean in (
    ("cifar10-c", "CIFAR-10-C", CIFAR10_MODELS, CIFAR10),
    ("cifar100-c", "CIFAR-100-C", CIFAR100_MODELS, CIFAR100),
):
    register(
        CorruptionBenchmark(
            name=_name,
            title=_title,
            summary="accuracy per corruption × severity, mean accuracy, unnormalised mCE "
            "(mCE with --baseline MODEL)",
            layout="<corruption>.npy (uint8 (5·10000, 32, 32, 3), severity-major) and labels.npy",
            source=HENDRYCKS_SOURCE,
            models=_models,
            found=_npy_corruptions,
            clean=_cifar_test_set(_clean),
            clean_layout=f"{_clean.folder}/{_clean.test[0]} (the clean test set)",
        )
    )
register(
    CorruptionBenchmark(
        name="imagenet-c",
        title="ImageNet-C",
        summary="accuracy per corruption × severity, mCE and relative mCE (AlexNet-normalised)",
        layout="<corruption>/<severity 1-5>/<wnid>/*.JPEG",
        source=HENDRYCKS_SOURCE,
        models=IMAGENET_MODELS,
        found=_folder_corruptions,
        clean=_imagenet_val,
        clean_layout="<wnid>/*.JPEG (ImageNet val)",
        reference=True,
    )
)
