"""The benchmarks of ``robustart shift``: datasets kept on disk, how each model is evaluated on
them, and how the results become tables and plots.

Every benchmark is registered in :data:`BENCHMARKS` under the name given to ``--benchmark``.
A benchmark

* checks its data before any model is loaded (:meth:`Benchmark.prepare`, which returns the
  function that evaluates one model),
* says which models it takes (:meth:`Benchmark.model_data`: classes, channels, the
  normalisation of zoo models),
* evaluates with the functions of :mod:`robustart.shift_evaluation` and
  :mod:`robustart.system_noise`, so the command prints exactly what they return,
* normalises by a baseline where its metric needs one (:meth:`Benchmark.summarize`),
* and turns the per-model results into a headline table, a detail table and a plot.

Families: common corruptions (``cifar10-c``, ``cifar100-c``, ``imagenet-c``), natural shift
(``cifar10.1``, ``imagenet-a``, ``imagenet-r``, ``imagenet-sketch``, ``imagenet-v2``),
out-of-distribution detection (``imagenet-o``), perturbation stability (``cifar10-p``,
``imagenet-p``) and system noise (``imagenet-s``, ``imagenet-s-jpeg``, ``cifar10-s``,
``cifar100-s``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from robustart.corruptions.base import BENCHMARK_CORRUPTIONS, SEVERITIES
from robustart.data.cifar import CIFAR10, CIFAR100, CifarSpec, UInt8ImageDataset, load_cifar_split
from robustart.data.cifar101 import CIFAR101
from robustart.data.cifar_p import CIFAR10P
from robustart.data.folders import WnidFolderDataset, class_folder_names, evaluation_transform
from robustart.data.imagefolder import IMAGENET_MEAN, IMAGENET_STD
from robustart.data.imagenet_p import ImageNetP
from robustart.data.imagenet_sketch import ImageNetSketch
from robustart.data.imagenet_subsets import ImageNetA, ImageNetO, ImageNetOInDistribution, ImageNetR
from robustart.data.imagenet_v2 import ImageNetV2
from robustart.data.shift import create_shift_dataset
from robustart.errors import ConfigError, DatasetNotFoundError, UnknownNameError
from robustart.evaluation.report import RobustnessReport
from robustart.metrics.corruption import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    accuracies_to_errors,
    summarize_report,
)
from robustart.metrics.perturbation import (
    mean_flip_rate,
    mean_top5_distance_rate,
    normalize_by_baseline,
)
from robustart.registry import Registry
from robustart.reporting import csv_table, format_table, markdown_table
from robustart.shift_evaluation import (
    evaluate_classification,
    evaluate_corruption_files,
    evaluate_ood,
    evaluate_perturbation_sequences,
    evenly_spaced_indices,
    limit_dataset,
)
from robustart.system_noise import (
    JPEG_QUALITIES,
    evaluate_cifar_system_noise,
    evaluate_system_noise,
    folder_samples,
    imagenet_s_variants,
    jpeg_quality_variants,
)
from robustart.system_noise.cifar import cifar_variants
from robustart.utils import Progress, fixed_total

__all__ = [
    "ALEXNET",
    "BENCHMARKS",
    "Benchmark",
    "ModelData",
    "ShiftSettings",
    "Table",
    "get_benchmark",
]

#: ``--baseline`` value naming AlexNet's published ImageNet-C errors.
ALEXNET = "alexnet"

#: One model's results, JSON-ready.
Result = dict[str, Any]
#: Evaluates one model on the prepared data (``progress``: a bar advanced per batch).
Evaluator = Callable[[nn.Module, "Progress | None"], Result]


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class ModelData:
    """What the models of a benchmark must be.

    Attributes:
        num_classes: Classes the model predicts.
        in_channels: Image channels.
        mean: Normalisation mean applied to zoo models (checkpoints carry their own).
        std: Normalisation std applied to zoo models.
        dataset: Training data a zoo entry must name (``None``: not checked).
    """

    num_classes: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dataset: str | None


CIFAR10_MODELS = ModelData(10, 3, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "cifar10")
CIFAR100_MODELS = ModelData(100, 3, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), "cifar100")
IMAGENET_MODELS = ModelData(1000, 3, IMAGENET_MEAN, IMAGENET_STD, "imagenet")


@dataclass
class ShiftSettings:
    """The command-line settings a benchmark reads.

    Attributes:
        root: Folder of the benchmark's data.
        clean_root: Clean / in-distribution counterpart (CIFAR folder or ImageNet val folder).
        subsets: Corruptions or perturbations to evaluate (``None``: the benchmark's default;
            ``["all"]``: every one found under ``root``).
        severities: Corruption severities.
        jpeg_qualities: Qualities of the JPEG sweep.
        crop_size: Model input side of the system-noise pipelines.
        folder_labels: ``"imagenet"`` (wnid folders) or ``"sorted"`` (folder position).
        batch_size: Images per forward pass.
        limit: Images (sequences for -P) per subset, evenly spaced; ``None``: all.
        device: Where the models run.
        num_workers: DataLoader workers.
    """

    root: Path
    clean_root: Path | None = None
    subsets: list[str] | None = None
    severities: tuple[int, ...] = SEVERITIES
    jpeg_qualities: tuple[int, ...] = JPEG_QUALITIES
    crop_size: int = 224
    folder_labels: str = "imagenet"
    batch_size: int = 128
    limit: int | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    num_workers: int = 0


# ----------------------------------------------------------------------------- tables
@dataclass
class Table:
    """A table of results: raw values for CSV/JSON, rounded text for the terminal and Markdown.

    Attributes:
        headers: Column names.
        rows: Values: ``str``, ``int``, ``float`` or ``None`` (shown as ``-``).
        decimals: Decimals of float columns when shown (default 1 everywhere).
    """

    headers: list[str]
    rows: list[list[Any]]
    decimals: list[int] | None = None

    def formatted(self) -> list[list[Any]]:
        """Rows with floats rounded to their column's decimals."""
        decimals = self.decimals or [1] * len(self.headers)
        return [
            [f"{v:.{d}f}" if isinstance(v, float) else v for v, d in zip(row, decimals)]
            for row in self.rows
        ]

    def text(self) -> str:
        """Fixed-width text for the terminal."""
        return format_table(self.headers, self.formatted())

    def markdown(self) -> str:
        """A Markdown table."""
        return markdown_table(self.headers, self.formatted())

    def csv(self) -> str:
        """CSV with full-precision values."""
        return csv_table(self.headers, [["" if v is None else v for v in r] for r in self.rows])

    def to_dict(self) -> dict[str, Any]:
        """``{"headers": ..., "rows": ...}`` with raw values."""
        return {"headers": list(self.headers), "rows": [list(r) for r in self.rows]}


def _pct(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def _batches(data: Dataset, batch_size: int) -> int:
    """Batches of ``batch_size`` items that ``data`` makes."""
    return -(-len(data) // batch_size)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- base class
class Benchmark(ABC):
    """A dataset kept on disk and how ``robustart shift`` evaluates models on it.

    Args:
        name: Name given to ``--benchmark``.
        title: Display name (``"CIFAR-10-C"``).
        summary: One line for ``--help``: what it measures and the headline metrics.
        layout: The files expected under ``--root``.
        source: Where to get the data.
        models: The models it takes.
    """

    #: Optional settings (``ShiftSettings`` fields, plus ``baseline``) this benchmark reads;
    #: the command line refuses the others rather than ignoring them.
    options: frozenset[str] = frozenset()
    #: File name of the plot in ``--output`` (``None``: no plot).
    plot_file: str | None = None
    #: ``--baseline`` when none is given.
    default_baseline: str | None = None

    def __init__(
        self, name: str, title: str, summary: str, layout: str, source: str, models: ModelData
    ) -> None:
        self.name, self.title, self.summary = name, title, summary
        self.layout, self.source, self.models = layout, source, models

    def check_root(self, settings: ShiftSettings) -> None:
        """Raise a :class:`DatasetNotFoundError` naming the layout and the source when
        ``--root`` does not exist."""
        if not settings.root.exists():
            raise DatasetNotFoundError(
                f"{self.title} not found: {settings.root} does not exist. --root must be the "
                f"folder holding {self.layout}. Get the data from {self.source}."
            )

    def model_data(self, settings: ShiftSettings) -> ModelData:
        """The models this benchmark takes with these settings."""
        return self.models

    def check_baseline(self, baseline: str | None) -> None:
        """Refuse ``--baseline alexnet`` where no reference table exists."""
        if baseline == ALEXNET:
            raise ConfigError(
                f"AlexNet's reference errors exist only for ImageNet-C, not {self.title}; name "
                "one of the evaluated models as --baseline instead"
            )

    @abstractmethod
    def prepare(self, settings: ShiftSettings) -> Evaluator:
        """Open and check the data; return the function evaluating one model on it.

        Raises:
            DatasetNotFoundError: missing or malformed files (before any model is loaded).
        """

    def summarize(self, results: dict[str, Result], baseline: str | None) -> list[str]:
        """Add the baseline-normalised metrics to ``results`` in place; returns warnings."""
        return []

    @abstractmethod
    def table(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        """The headline table: one row per model."""

    def details(self, results: Mapping[str, Result], baseline: str | None) -> Table | None:
        """Per-subset numbers (per corruption, variant, perturbation), if any."""
        return None

    def caption(self, results: Mapping[str, Result], baseline: str | None) -> str:
        """One sentence saying what the table shows."""
        return f"{self.title}: {self.summary}"

    def plot(self, results: Mapping[str, Result], path: Path) -> Path | None:
        """Write the benchmark's picture to ``path`` (``None``: it has none)."""
        return None


# ----------------------------------------------------------------------------- corruptions
class CorruptionBenchmark(Benchmark):
    """Pre-generated corruption sets (-C): accuracy per corruption × severity, mCE.

    Args:
        dataset: Key of :data:`robustart.data.SHIFT_DATASETS` (``"cifar10_c"``).
        found: Lists the corruption names present under a root.
        clean: Loads the clean test set from ``--clean-root``.
        clean_layout: What ``--clean-root`` must hold (for ``--help`` and errors).
        reference: Whether AlexNet's published errors apply (ImageNet-C).
        **kwargs: See :class:`Benchmark`.
    """

    options = frozenset({"clean_root", "subsets", "severities", "baseline"})
    plot_file = "corruption_heatmap.png"

    def __init__(
        self,
        *,
        dataset: str,
        found: Callable[[Path], list[str]],
        clean: Callable[[Path], Dataset],
        clean_layout: str,
        reference: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset, self.found, self.reference = dataset, found, reference
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
        first = create_shift_dataset(
            self.dataset, str(settings.root), corruption=subsets[0], severity=settings.severities[0]
        )
        batches = _batches(limit_dataset(first, settings.limit), settings.batch_size)
        total = len(subsets) * len(settings.severities) * batches
        if clean is not None:
            total += _batches(limit_dataset(clean, settings.limit), settings.batch_size)

        def evaluate(model: nn.Module, progress: Progress | None) -> Result:
            progress = fixed_total(progress, total)
            accuracy = None
            if clean is not None:
                accuracy = evaluate_classification(
                    model,
                    limit_dataset(clean, settings.limit),
                    settings.batch_size,
                    settings.device,
                    settings.num_workers,
                    progress=progress,
                )["accuracy"]
            report, ece = evaluate_corruption_files(
                model,
                self.dataset,
                str(settings.root),
                clean_accuracy=math.nan if accuracy is None else accuracy,
                corruptions=subsets,
                severities=settings.severities,
                batch_size=settings.batch_size,
                device=settings.device,
                num_workers=settings.num_workers,
                limit=settings.limit,
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
                _pct(result["clean"]),
                _pct(summary["mean_corruption_accuracy"]),
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
                row = [name, corruption, *(_pct(curve.get(s)) for s in severities)]
                row.append(_pct(sum(curve.values()) / len(curve)))
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
    return sorted(p.stem for p in root.glob("*.npy") if p.stem != "labels")


def _folder_corruptions(root: Path) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir()) if root.is_dir() else []


def _cifar_test_set(spec: CifarSpec) -> Callable[[Path], Dataset]:
    def load(root: Path) -> Dataset:
        return UInt8ImageDataset(*load_cifar_split(root, spec, train=False))

    return load


def _imagenet_val(root: Path) -> Dataset:
    return WnidFolderDataset(root, evaluation_transform(), dataset="ImageNet val (--clean-root)")


# ----------------------------------------------------------------------------- natural shift
class ClassificationBenchmark(Benchmark):
    """A labelled test set from another distribution: top-1 accuracy and calibration error.

    Args:
        dataset: Builds the dataset from ``--root``.
        restrict: Score 1000-class models on the dataset's 200-class subset
            (``dataset.subset.restrict``), as for ImageNet-A and -R.
        **kwargs: See :class:`Benchmark`.
    """

    def __init__(
        self, *, dataset: Callable[[Path], Dataset], restrict: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.dataset, self.restrict = dataset, restrict

    def prepare(self, settings: ShiftSettings) -> Evaluator:
        data = self.dataset(settings.root)
        transform = data.subset.restrict if self.restrict else None  # type: ignore[attr-defined]
        subset = limit_dataset(data, settings.limit)

        def evaluate(model: nn.Module, progress: Progress | None) -> Result:
            return evaluate_classification(
                model,
                subset,
                settings.batch_size,
                settings.device,
                settings.num_workers,
                output_transform=transform,
                progress=progress,
            )

        return evaluate

    def table(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        rows = [
            [name, r["num_images"], _pct(r["accuracy"]), _pct(r["ece"])]
            for name, r in results.items()
        ]
        return Table(["model", "images", "accuracy", "ECE"], rows)

    def caption(self, results: Mapping[str, Result], baseline: str | None) -> str:
        classes = " (logits restricted to its 200 classes)" if self.restrict else ""
        return f"{self.title}{classes}: top-1 accuracy and expected calibration error (%)."


class OODBenchmark(Benchmark):
    """ImageNet-O: detecting its images among ImageNet validation images of the same 200
    classes by the anomaly score −max softmax (AUROC, AUPR)."""

    options = frozenset({"clean_root"})

    def prepare(self, settings: ShiftSettings) -> Evaluator:
        if settings.clean_root is None:
            raise ConfigError(
                f"{self.name} needs --clean-root: the ImageNet validation folder "
                "(<wnid>/*.JPEG); its images of ImageNet-O's 200 classes are the "
                "in-distribution data"
            )
        out_data = ImageNetO(settings.root)
        in_data = ImageNetOInDistribution(settings.clean_root)
        in_subset = limit_dataset(in_data, settings.limit)
        out_subset = limit_dataset(out_data, settings.limit)
        total = _batches(in_subset, settings.batch_size) + _batches(out_subset, settings.batch_size)

        def evaluate(model: nn.Module, progress: Progress | None) -> Result:
            progress = fixed_total(progress, total)
            scores = evaluate_ood(
                model,
                in_subset,
                out_subset,
                settings.batch_size,
                settings.device,
                settings.num_workers,
                output_transform=out_data.subset.restrict,
                progress=progress,
            )
            return {**scores, "num_in": len(in_subset), "num_out": len(out_subset)}

        return evaluate

    def table(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        rows = [
            [name, r["num_in"], r["num_out"], _pct(r["auroc"]), _pct(r["aupr"])]
            for name, r in results.items()
        ]
        return Table(["model", "in-dist. images", "OOD images", "AUROC", "AUPR"], rows)

    def caption(self, results: Mapping[str, Result], baseline: str | None) -> str:
        return (
            f"{self.title}: AUROC and AUPR (%) of detecting its images among ImageNet val "
            "images of the same 200 classes by −max softmax over those classes (higher is "
            "better; chance AUROC 50)."
        )


# ----------------------------------------------------------------------------- perturbations
class PerturbationBenchmark(Benchmark):
    """Perturbation sequences (-P): flip probability and top-5 distance; mFR and mT5D
    relative to a baseline model.

    Args:
        dataset: The sequence dataset class: ``dataset(root, perturbation)`` has ``frames``
            and ``noise``; ``dataset.perturbations(root)`` lists what ``root`` holds.
        **kwargs: See :class:`Benchmark`.
    """

    options = frozenset({"subsets", "baseline"})
    plot_file = "flip_probability.png"

    def __init__(self, *, dataset: type[CIFAR10P] | type[ImageNetP], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset

    def prepare(self, settings: ShiftSettings) -> Evaluator:
        found = self.dataset.perturbations(settings.root)
        names = found if settings.subsets in (None, ["all"]) else list(settings.subsets)
        if not names:
            raise DatasetNotFoundError(
                f"{self.title}: no perturbation files under {settings.root}; expected "
                f"{self.layout}. Get the data from {self.source}."
            )
        runs = []  # (name, sequences, noise pairing, sequences per batch)
        for name in names:
            data = self.dataset(settings.root, name)
            sequences = limit_dataset(data, settings.limit)
            runs.append((name, sequences, data.noise, max(1, settings.batch_size // data.frames)))
        total = sum(_batches(sequences, size) for _, sequences, _, size in runs)
        count = max(len(sequences) for _, sequences, _, _ in runs)  # type: ignore[arg-type]

        def evaluate(model: nn.Module, progress: Progress | None) -> Result:
            progress = fixed_total(progress, total)
            per = {
                name: evaluate_perturbation_sequences(
                    model,
                    sequences,
                    noise,
                    batch_size=size,
                    device=settings.device,
                    num_workers=settings.num_workers,
                    progress=progress,
                )
                for name, sequences, noise, size in runs
            }
            return {
                "num_sequences": count,
                "perturbations": per,
                "mean_flip_probability": _mean(v["flip_probability"] for v in per.values()),
                "mean_top5_distance": _mean(v["top5_distance"] for v in per.values()),
            }

        return evaluate

    def summarize(self, results: dict[str, Result], baseline: str | None) -> list[str]:
        if baseline is None:
            return []
        warnings = []
        base = results[baseline]["perturbations"]
        base_fp = {p: v["flip_probability"] for p, v in base.items()}
        base_t5 = {p: v["top5_distance"] for p, v in base.items()}
        for name, result in results.items():
            fp = {p: v["flip_probability"] for p, v in result["perturbations"].items()}
            t5 = {p: v["top5_distance"] for p, v in result["perturbations"].items()}
            for key, values, reference, mean in (
                ("flip_rate", fp, base_fp, mean_flip_rate),
                ("top5_distance_rate", t5, base_t5, mean_top5_distance_rate),
            ):
                try:
                    result[f"mean_{key}"] = mean(values, reference)
                    result[key] = {
                        p: 100 * v for p, v in normalize_by_baseline(values, reference).items()
                    }
                except ConfigError as err:
                    warnings.append(f"{name}: no {key.replace('_', ' ')}: {err}")
                    result[f"mean_{key}"], result[key] = None, {}
        return warnings

    def table(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        headers = ["model", "sequences", "mean FP", "mean T5D"]
        decimals = [0, 0, 2, 3]
        if baseline is not None:
            headers += ["mFR", "mT5D"]
            decimals += [1, 1]
        rows = []
        for name, r in results.items():
            row = [
                name,
                r["num_sequences"],
                _pct(r["mean_flip_probability"]),
                r["mean_top5_distance"],
            ]
            if baseline is not None:
                row += [r["mean_flip_rate"], r["mean_top5_distance_rate"]]
            rows.append(row)
        return Table(headers, rows, decimals)

    def details(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        headers = ["model", "perturbation", "FP", "T5D"]
        decimals = [0, 0, 2, 3]
        if baseline is not None:
            headers += ["FR", "T5D rate"]
            decimals += [1, 1]
        rows = []
        for name, r in results.items():
            for p, v in r["perturbations"].items():
                row = [name, p, _pct(v["flip_probability"]), v["top5_distance"]]
                if baseline is not None:
                    row += [r["flip_rate"].get(p), r["top5_distance_rate"].get(p)]
                rows.append(row)
        return Table(headers, rows, decimals)

    def caption(self, results: Mapping[str, Result], baseline: str | None) -> str:
        first = next(iter(results.values()))
        text = (
            f"{self.title}: flip probability FP (%) and top-5 distance T5D over "
            f"{first['num_sequences']} sequences of each of {len(first['perturbations'])} "
            "perturbations (lower is more stable)"
        )
        if baseline is not None:
            text += f"; mFR and mT5D (%) relative to {baseline} (100 = as stable as {baseline})"
        return text + "."

    def plot(self, results: Mapping[str, Result], path: Path) -> Path:
        from robustart.plots import save_grouped_bars

        values = {
            name: {p: 100 * v["flip_probability"] for p, v in r["perturbations"].items()}
            for name, r in results.items()
        }
        return save_grouped_bars(
            values, path, "flip probability (%)", title=f"{self.title}: flip probability"
        )


def _mean(values: Any) -> float:
    values = list(values)
    return sum(values) / len(values)


# ----------------------------------------------------------------------------- system noise
class SystemNoiseTables:
    """Tables and bar chart shared by the system-noise benchmarks (results are
    :meth:`~robustart.system_noise.SystemNoiseResult.to_dict`)."""

    plot_file = "system_noise.png"
    title: str

    def table(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        with_clean = any(r["clean"] is not None for r in results.values())
        headers = ["model", "images", *(["clean"] if with_clean else [])]
        headers += ["mean", "std", "min", "max", "worst variant"]
        rows = []
        for name, r in results.items():
            worst = min(r["accuracy"], key=r["accuracy"].get)
            row = [name, r["num_images"], *([_pct(r["clean"])] if with_clean else [])]
            row += [_pct(r["mean"]), _pct(r["std"]), _pct(r["min"]), _pct(r["max"]), worst]
            rows.append(row)
        decimals = [0, 0, *([1] if with_clean else []), 1, 2, 1, 1, 0]
        return Table(headers, rows, decimals)

    def details(self, results: Mapping[str, Result], baseline: str | None) -> Table:
        names = list(results)
        variants = list(dict.fromkeys(v for r in results.values() for v in r["accuracy"]))
        rows = [[v, *(_pct(results[n]["accuracy"].get(v)) for n in names)] for v in variants]
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
            values, path, "accuracy (%)", title=f"{self.title}: accuracy per variant", zoom=True
        )


class FolderSystemNoiseBenchmark(SystemNoiseTables, Benchmark):
    """Image files in class folders through several decoders × resizers (× JPEG qualities).

    Args:
        variants: Builds the variants from the settings.
        **kwargs: See :class:`Benchmark`.
    """

    def __init__(
        self, *, variants: Callable[[ShiftSettings], list], extra: frozenset[str], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.variants = variants
        self.options = frozenset({"crop_size", "folder_labels"}) | extra

    def model_data(self, settings: ShiftSettings) -> ModelData:
        if settings.folder_labels == "imagenet":
            return IMAGENET_MODELS
        classes = class_folder_names(settings.root, self.title, f"{settings.root}/<class>/<images>")
        return ModelData(len(classes), 3, IMAGENET_MEAN, IMAGENET_STD, None)

    def prepare(self, settings: ShiftSettings) -> Evaluator:
        samples = folder_samples(settings.root, settings.folder_labels)  # type: ignore[arg-type]
        samples = [samples[i] for i in evenly_spaced_indices(len(samples), settings.limit)]
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
        **kwargs: See :class:`Benchmark`.
    """

    def __init__(self, *, spec: CifarSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def prepare(self, settings: ShiftSettings) -> Evaluator:
        images, labels = load_cifar_split(settings.root, self.spec, train=False)
        keep = torch.tensor(evenly_spaced_indices(len(labels), settings.limit))
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


# ----------------------------------------------------------------------------- registry
#: Benchmark name → :class:`Benchmark` (the values of ``robustart shift --benchmark``).
BENCHMARKS: Registry[Benchmark] = Registry("benchmark")

_HENDRYCKS = "https://github.com/hendrycks/robustness (links to the Zenodo archives)"
_CIFAR = "https://www.cs.toronto.edu/~kriz/cifar.html (the python version)"


def _register(benchmark: Benchmark) -> None:
    BENCHMARKS.register(benchmark.name)(benchmark)


for _name, _title, _key, _models, _clean, _source in (
    ("cifar10-c", "CIFAR-10-C", "cifar10_c", CIFAR10_MODELS, CIFAR10, _HENDRYCKS),
    ("cifar100-c", "CIFAR-100-C", "cifar100_c", CIFAR100_MODELS, CIFAR100, _HENDRYCKS),
):
    _register(
        CorruptionBenchmark(
            name=_name,
            title=_title,
            summary="accuracy per corruption × severity, mean accuracy, unnormalised mCE "
            "(mCE with --baseline MODEL)",
            layout="<corruption>.npy (uint8 (5·10000, 32, 32, 3), severity-major) and labels.npy",
            source=_source,
            models=_models,
            dataset=_key,
            found=_npy_corruptions,
            clean=_cifar_test_set(_clean),
            clean_layout=f"{_clean.folder}/{_clean.test[0]} (the clean test set)",
        )
    )
_register(
    CorruptionBenchmark(
        name="imagenet-c",
        title="ImageNet-C",
        summary="accuracy per corruption × severity, mCE and relative mCE (AlexNet-normalised)",
        layout="<corruption>/<severity 1-5>/<wnid>/*.JPEG",
        source=_HENDRYCKS,
        models=IMAGENET_MODELS,
        dataset="imagenet_c",
        found=_folder_corruptions,
        clean=_imagenet_val,
        clean_layout="<wnid>/*.JPEG (ImageNet val)",
        reference=True,
    )
)
for _name, _title, _summary, _layout, _source, _models, _dataset, _restrict in (
    (
        "cifar10.1",
        "CIFAR-10.1",
        "top-1 accuracy on a new CIFAR-10 test set (v6)",
        "cifar10.1_v6_data.npy and cifar10.1_v6_labels.npy",
        "https://github.com/modestyachts/CIFAR-10.1 (datasets/)",
        CIFAR10_MODELS,
        CIFAR101,
        False,
    ),
    (
        "imagenet-a",
        "ImageNet-A",
        "top-1 accuracy on natural adversarial examples (200 classes)",
        "<wnid>/*.jpg (200 class folders)",
        "https://github.com/hendrycks/natural-adv-examples",
        IMAGENET_MODELS,
        ImageNetA,
        True,
    ),
    (
        "imagenet-r",
        "ImageNet-R",
        "top-1 accuracy on renditions: art, cartoons, sketches, ... (200 classes)",
        "<wnid>/*.jpg (200 class folders)",
        "https://github.com/hendrycks/imagenet-r",
        IMAGENET_MODELS,
        ImageNetR,
        True,
    ),
    (
        "imagenet-sketch",
        "ImageNet-Sketch",
        "top-1 accuracy on sketches of the 1000 classes",
        "<wnid>/*.JPEG (the sketch/ folder of the archive)",
        "https://github.com/HaohanWang/ImageNet-Sketch",
        IMAGENET_MODELS,
        ImageNetSketch,
        False,
    ),
    (
        "imagenet-v2",
        "ImageNetV2",
        "top-1 accuracy on a new ImageNet test set",
        "<0..999>/*.jpeg (folders named by class index)",
        "https://github.com/modestyachts/ImageNetV2",
        IMAGENET_MODELS,
        ImageNetV2,
        False,
    ),
):
    _register(
        ClassificationBenchmark(
            name=_name,
            title=_title,
            summary=_summary,
            layout=_layout,
            source=_source,
            models=_models,
            dataset=_dataset,
            restrict=_restrict,
        )
    )
_register(
    OODBenchmark(
        name="imagenet-o",
        title="ImageNet-O",
        summary="AUROC / AUPR of detecting out-of-distribution images (needs --clean-root)",
        layout="<wnid>/*.jpg (200 class folders)",
        source="https://github.com/hendrycks/natural-adv-examples",
        models=IMAGENET_MODELS,
    )
)
_register(
    PerturbationBenchmark(
        name="cifar10-p",
        title="CIFAR-10-P",
        summary="flip probability and top-5 distance per perturbation (mFR, mT5D with "
        "--baseline MODEL)",
        layout="<perturbation>.npy (uint8 (N, frames, 32, 32, 3))",
        source=_HENDRYCKS,
        models=CIFAR10_MODELS,
        dataset=CIFAR10P,
    )
)
_register(
    PerturbationBenchmark(
        name="imagenet-p",
        title="ImageNet-P",
        summary="flip probability and top-5 distance per perturbation (mFR, mT5D with "
        "--baseline MODEL); decodes the videos with PyAV (pip install av)",
        layout="<perturbation>/<wnid>/*.mp4 (frames fed as decoded, 224 px in the release)",
        source=_HENDRYCKS,
        models=IMAGENET_MODELS,
        dataset=ImageNetP,
    )
)
_register(
    FolderSystemNoiseBenchmark(
        name="imagenet-s",
        title="ImageNet-S",
        summary="accuracy under 3 decoders × 11 resize interpolations (mean, std)",
        layout="<class>/<images> (e.g. a subset of ImageNet val)",
        source="your own images, e.g. ImageNet val from https://image-net.org",
        models=IMAGENET_MODELS,
        variants=lambda settings: imagenet_s_variants(),
        extra=frozenset(),
    )
)
_register(
    FolderSystemNoiseBenchmark(
        name="imagenet-s-jpeg",
        title="JPEG sweep",
        summary="accuracy after re-encoding as JPEG at each --jpeg-qualities (mean, std)",
        layout="<class>/<images> (e.g. a subset of ImageNet val)",
        source="your own images, e.g. ImageNet val from https://image-net.org",
        models=IMAGENET_MODELS,
        variants=lambda settings: jpeg_quality_variants(settings.jpeg_qualities),
        extra=frozenset({"jpeg_qualities"}),
    )
)
for _name, _title, _spec, _models in (
    ("cifar10-s", "CIFAR-10-S", CIFAR10, CIFAR10_MODELS),
    ("cifar100-s", "CIFAR-100-S", CIFAR100, CIFAR100_MODELS),
):
    _register(
        CifarSystemNoiseBenchmark(
            name=_name,
            title=_title,
            summary="accuracy after resizing to 24/28/40/48 px and back with 3 interpolations "
            "(mean, std; clean)",
            layout=f"{_spec.folder}/{_spec.test[0]} (the python version of {_title[:-2]})",
            source=_CIFAR,
            models=_models,
            spec=_spec,
        )
    )


def _normalized(name: str) -> str:
    return "".join(c for c in name.lower() if c not in "-_ ")


def get_benchmark(name: str) -> Benchmark:
    """The benchmark registered as ``name``; case, ``-`` and ``_`` are ignored
    (``CIFAR10_C`` finds ``cifar10-c``).

    Raises:
        UnknownNameError: listing close names and every known benchmark.
    """
    if name in BENCHMARKS:
        return BENCHMARKS.get(name)
    for known in BENCHMARKS:
        if _normalized(known) == _normalized(name):
            return BENCHMARKS.get(known)
    raise UnknownNameError(BENCHMARKS.unknown_message(name))
