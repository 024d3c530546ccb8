"""What every on-disk benchmark family shares: the :class:`Benchmark` base class, the models it
takes (:class:`ModelData`), the settings it reads (:class:`ShiftSettings`), its result
:class:`Table` and the registry :data:`BENCHMARKS`.

A benchmark

* checks its data before any model is loaded (:meth:`Benchmark.prepare`, which returns the
  function that evaluates one model),
* says which models it takes (:meth:`Benchmark.model_data`: classes, channels, the
  normalisation of zoo models),
* normalises by a baseline where its metric needs one (:meth:`Benchmark.summarize`),
* and turns the per-model results into a headline table, a detail table and a plot.

Each family module (``corruption_files``, ``natural_shift``, ``ood``, ``perturbation``,
``system_noise``) holds its evaluation functions, its :class:`Benchmark` subclass and its
registrations. A benchmark's name is also the name of its dataset in
:data:`robustart.data.SHIFT_DATASETS`; lookups of either accept any spelling
(``CIFAR10_C`` finds ``cifar10-c``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from robustart.corruptions.base import SEVERITIES
from robustart.data.base import RobustartDataModule
from robustart.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from robustart.data.imagefolder import IMAGENET_MEAN, IMAGENET_STD
from robustart.data.shift import SpellingTolerantRegistry
from robustart.errors import ConfigError, DatasetNotFoundError
from robustart.reporting import csv_table, format_table, markdown_table
from robustart.system_noise.pipeline import JPEG_QUALITIES
from robustart.utils import Progress

__all__ = [
    "ALEXNET",
    "BENCHMARKS",
    "CIFAR10_MODELS",
    "CIFAR100_MODELS",
    "IMAGENET_MODELS",
    "Benchmark",
    "Evaluator",
    "ModelData",
    "Result",
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
        mean: Per-channel normalisation mean applied to zoo models (checkpoints carry their
            own), for images in [0, 1].
        std: Per-channel normalisation std applied to zoo models.
        dataset: Training data a zoo entry must name (``None``: not checked).
        image_size: Side of the images the benchmark feeds the models; a factory's model
            (``package.module:factory``) is run once on two images of this size when loaded
            (``None``: not run).
    """

    num_classes: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dataset: str | None
    image_size: int | None = None

    @classmethod
    def of(cls, datamodule: type[RobustartDataModule], dataset: str) -> ModelData:
        """The facts a datamodule class links into its models (classes, channels, mean, std,
        image size)."""
        return cls(
            datamodule.num_classes,
            datamodule.in_channels,
            tuple(datamodule.mean),
            tuple(datamodule.std),
            dataset,
            datamodule.image_size,
        )


CIFAR10_MODELS = ModelData.of(CIFAR10DataModule, "cifar10")
CIFAR100_MODELS = ModelData.of(CIFAR100DataModule, "cifar100")
#: ImageNet models see 224-px crops in every ImageNet benchmark (system noise: ``crop_size``).
IMAGENET_MODELS = ModelData(1000, 3, IMAGENET_MEAN, IMAGENET_STD, "imagenet", 224)


@dataclass
class ShiftSettings:
    """The command-line settings a benchmark reads.

    Attributes:
        root: Folder of the benchmark's data (``--data-root``).
        clean_root: Clean / in-distribution counterpart (CIFAR folder or ImageNet val folder).
        subsets: Corruptions or perturbations to evaluate (``None``: the benchmark's default;
            ``["all"]``: every one found under ``root``).
        severities: Corruption severities.
        jpeg_qualities: Qualities of the JPEG sweep.
        crop_size: Model input side of the system-noise pipelines.
        folder_labels: ``"imagenet"`` (wnid folders) or ``"sorted"`` (folder position).
        allow_missing_classes: Score a copy of a class-folder set (ImageNet-A/-R/-O/-Sketch/
            V2) that lacks some of its classes; refused by default, and said in the caption.
        batch_size: Images per forward pass.
        num_images: Images (sequences for -P) per subset, evenly spaced; ``None``: all.
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
    allow_missing_classes: bool = False
    batch_size: int = 128
    num_images: int | None = None
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


def percent(value: float | None) -> float | None:
    """A fraction in [0, 1] as a percentage (``None`` stays ``None``)."""
    return None if value is None else 100.0 * value


def num_batches(data: Dataset, batch_size: int) -> int:
    """Batches of ``batch_size`` items that ``data`` makes."""
    return -(-len(data) // batch_size)  # type: ignore[arg-type]


def mean(values: Any) -> float:
    """Arithmetic mean of an iterable of numbers."""
    values = list(values)
    return sum(values) / len(values)


# ----------------------------------------------------------------------------- base class
class Benchmark(ABC):
    """A dataset kept on disk and how ``robustart shift`` evaluates models on it.

    Args:
        name: Name given to ``--benchmark``, and of its dataset in
            :data:`robustart.data.SHIFT_DATASETS` where it has one.
        title: Display name (``"CIFAR-10-C"``).
        summary: One line for ``--help``: what it measures and the headline metrics.
        layout: The files expected under ``--data-root``.
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
    #: What ``--clean-root`` must hold (``None``: the benchmark reads no clean data).
    clean_layout: str | None = None

    def __init__(
        self, name: str, title: str, summary: str, layout: str, source: str, models: ModelData
    ) -> None:
        self.name, self.title, self.summary = name, title, summary
        self.layout, self.source, self.models = layout, source, models

    def check_root(self, settings: ShiftSettings) -> None:
        """Raise a :class:`DatasetNotFoundError` naming the layout and the source when
        ``--data-root`` does not exist."""
        if not settings.root.exists():
            raise DatasetNotFoundError(
                f"{self.title} not found: {settings.root} does not exist. --data-root must be "
                f"the folder holding {self.layout}. Get the data from {self.source}."
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


# ----------------------------------------------------------------------------- registry
#: Benchmark name → :class:`Benchmark` (the values of ``robustart shift --benchmark``); each
#: family module registers its own with :func:`register`.
BENCHMARKS: SpellingTolerantRegistry[Benchmark] = SpellingTolerantRegistry("benchmark")

#: Where the Hendrycks et al. benchmarks (-C, -P) are downloaded.
HENDRYCKS_SOURCE = "https://github.com/hendrycks/robustness (links to the Zenodo archives)"
#: Where the CIFAR test sets are downloaded.
CIFAR_SOURCE = "https://www.cs.toronto.edu/~kriz/cifar.html (the python version)"


def register(benchmark: Benchmark) -> Benchmark:
    """Add ``benchmark`` to :data:`BENCHMARKS` under its name."""
    return BENCHMARKS.register(benchmark.name)(benchmark)


def get_benchmark(name: str) -> Benchmark:
    """The benchmark registered as ``name``; case, ``-``, ``_`` and ``.`` are ignored
    (``CIFAR10_C`` finds ``cifar10-c``).

    Raises:
        UnknownNameError: listing close names and every known benchmark.
    """
    return BENCHMARKS.get(name)
