"""``robustart.benchmark``: any models, one suite, one call; resumable, and the same numbers on
one device or under DDP.

A benchmark runs every *item* of a suite on every model and stores each (model, item) result
as soon as it finishes, keyed by everything that defines it. The items of a suite:

============================  =================================================================
``clean``                     clean accuracy (always run first)
``attack/<label>``            one attack at each of its budgets (``attacks:`` of the suite)
``corruption/<name>``         one corruption at each severity, generated on the fly
``<section>/<label>``         any further section of the robustness suite (e.g. the minimal-ε
                              search)
``system_noise``              resize round trips (24-48 px, three interpolations) of the images
``shift/<benchmark>``         an on-disk set of :mod:`robustart.evaluation.benchmarks`
                              (CIFAR-10-C, ImageNet-A, ..., ``optional: true`` to skip it with a
                              note when its files are missing)
============================  =================================================================

A benchmark suite is a robustness suite (:func:`~robustart.evaluation.suite.load_suite`) with
two more keys::

    attacks: [{name: pgd, norm: linf, eps: [8/255], steps: 10}]
    corruptions: [gaussian_noise, fog]
    severities: [1, 3, 5]
    system_noise: true
    shift:
      - {benchmark: cifar10-c, data_root: data/CIFAR-10-C, optional: true}

Resuming: a result is stored under ``<output>/items/<weights checksum>/<item hash>.json`` where
the hash covers the item's settings (with every default of the attack), the data, split, subset
size, seed, chunk size and robustart's version. An interrupted benchmark continues where it
stopped; a changed setting recomputes only the items it affects. Randomness is seeded per
(seed, test, chunk), so a resumed or sharded benchmark gives exactly the numbers of an
uninterrupted single-device one.

Example:
    >>> import robustart
    >>> from robustart.models import create_model
    >>> model = create_model("resnet20", 10, weights="zoo:digits_resnet20_pgd_at")
    >>> result = robustart.benchmark(model, "digits", "quick", num_images=64)  # doctest: +SKIP
    >>> print(result.leaderboard().text())  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from robustart.errors import ConfigError, DatasetNotFoundError, EmptyInputError
from robustart.evaluation.loop import (
    distributed_rank_and_size,
    iterate_chunks,
    limit_dataset,
    sum_over_processes,
)
from robustart.evaluation.report import RobustnessReport
from robustart.evaluation.runner import evaluate_robustness
from robustart.evaluation.suite import BatchResult, RobustnessSuite, suites_dir
from robustart.utils import atomic_write_json, atomic_write_text, format_eps, read_yaml_file

__all__ = [
    "SCHEMA",
    "BenchmarkResult",
    "BenchmarkSuite",
    "benchmark",
    "load_benchmark_suite",
]

#: Version of the layout of ``benchmark.json`` and of the stored item results.
SCHEMA = "robustart.benchmark/1"
#: Settings of a ``shift`` entry.
SHIFT_KEYS = ("benchmark", "data_root", "clean_root", "subsets", "severities", "optional")


# ----------------------------------------------------------------------------- the suite
@dataclass
class ShiftEntry:
    """One on-disk benchmark of a suite (see :mod:`robustart.evaluation.benchmarks`)."""

    benchmark: str
    data_root: str
    clean_root: str | None = None
    subsets: list[str] | None = None
    severities: list[int] | None = None
    optional: bool = False


@dataclass
class BenchmarkSuite:
    """What a benchmark runs: a robustness suite plus system noise and on-disk sets.

    Attributes:
        name: The suite's name or file (for reports).
        robustness: Attacks, corruptions and other on-the-fly tests.
        spec: The robustness part as written (a mapping; the identity of its items).
        system_noise: Run the resize round trips.
        shift: On-disk benchmarks.
    """

    name: str
    robustness: RobustnessSuite
    spec: dict[str, Any]
    system_noise: bool = False
    shift: list[ShiftEntry] = field(default_factory=list)


def load_benchmark_suite(spec: str | os.PathLike | Mapping[str, Any]) -> BenchmarkSuite:
    """Build a :class:`BenchmarkSuite` from a shipped suite's name, a YAML file or a mapping.

    Every name, budget and on-disk folder is checked here, before any model is evaluated.

    Raises:
        ConfigError: an unknown suite, key, attack, corruption or benchmark; a missing
            non-optional on-disk set.
    """
    from robustart.evaluation.suite import load_suite, suite_names

    if isinstance(spec, Mapping):
        data, name = dict(spec), "custom"
    else:
        path = Path(spec)
        if not path.suffix and not path.exists():
            path = suites_dir() / f"{spec}.yaml"
            if not path.is_file():
                raise ConfigError(
                    f"unknown suite {str(spec)!r}; give a YAML file or one of: "
                    f"{', '.join(suite_names())}"
                )
        data = read_yaml_file(path, "suite file", mapping=False)
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must be a mapping of suite sections")
        name = path.stem
    data = copy.deepcopy(data)
    system_noise = data.pop("system_noise", False)
    if not isinstance(system_noise, bool):
        raise ConfigError(f"system_noise must be true or false, got {system_noise!r}")
    shift = [_shift_entry(entry, i) for i, entry in enumerate(data.pop("shift", None) or [])]
    robustness = load_suite(data)
    return BenchmarkSuite(name, robustness, data, system_noise, shift)


def _shift_entry(entry: Any, index: int) -> ShiftEntry:
    if not isinstance(entry, Mapping) or "benchmark" not in entry:
        raise ConfigError(
            f"shift entry #{index + 1} must be a mapping with 'benchmark' and 'data_root', "
            f"got {entry!r}"
        )
    unknown = sorted(set(entry) - set(SHIFT_KEYS))
    if unknown:
        raise ConfigError(
            f"shift entry {entry['benchmark']!r} has unknown keys {unknown}; "
            f"known: {', '.join(SHIFT_KEYS)}"
        )
    if not entry.get("data_root"):
        raise ConfigError(f"shift entry {entry['benchmark']!r} needs data_root (its folder)")
    return ShiftEntry(**{k: entry[k] for k in SHIFT_KEYS if k in entry})


# ----------------------------------------------------------------------------- items
@dataclass
class Context:
    """What every item of one model's benchmark needs."""

    model: nn.Module
    subset: Dataset
    device: torch.device
    seed: int
    batch_size: int
    num_workers: int
    progress: bool
    num_classes: int


class Item:
    """One unit of a benchmark: evaluated, stored and resumed as a whole.

    Attributes:
        key: Its name in results (``attack/pgd10_linf``).
        settings: JSON-ready definition; with the common settings it forms the storage key.
        sharded: Whether its images are split over DDP processes (else rank zero runs it).
    """

    key: str
    settings: dict[str, Any]
    sharded: bool = True

    def check(self) -> str | None:
        """Check prerequisites before any work; returns a note when the item is skipped."""
        return None

    def run(self, context: Context) -> dict[str, Any]:
        """Evaluate the model; returns the JSON-ready result."""
        raise NotImplementedError


class SuiteItem(Item):
    """A part of the robustness suite (clean, an attack, a corruption), run by
    :func:`~robustart.evaluation.evaluate_robustness`; keeps each image's correctness."""

    def __init__(self, key: str, spec: dict[str, Any], settings: dict[str, Any]) -> None:
        self.key, self.spec, self.settings = key, spec, settings

    def run(self, context: Context) -> dict[str, Any]:
        from robustart.evaluation.suite import load_suite

        suite = load_suite(self.spec)
        keys = suite.keys()
        n = len(context.subset)  # type: ignore[arg-type]
        correct = torch.zeros(len(keys), n, dtype=torch.int32, device=context.device)
        labels = [entry.label for entry in suite.minimal_eps]
        min_eps = torch.zeros(len(labels), n, dtype=torch.float64, device=context.device)
        rank, world = distributed_rank_and_size()

        def keep(chunk_id: int, result: BatchResult) -> None:
            start = chunk_id * context.batch_size
            for i, key in enumerate(keys):
                values = result.correct[key]
                correct[i, start : start + len(values)] = values.to(torch.int32)
            for i, label in enumerate(labels):
                values = result.minimal_eps[label]
                min_eps[i, start : start + len(values)] = values.double()

        chunks = iterate_chunks(context.subset, context.batch_size, rank, world)
        report = evaluate_robustness(
            context.model,
            chunks,
            suite,
            context.device,
            seed=context.seed,
            progress=context.progress and rank == 0,
            on_batch=keep,
        )
        correct = sum_over_processes(correct).bool().cpu()
        min_eps = sum_over_processes(min_eps).cpu()  # each image is on one process only
        result = {
            "metrics": report.metrics(),
            "report": report.to_dict(),
            "correct": {key: pack_bits(correct[i]) for i, key in enumerate(keys)},
        }
        if labels:  # per image, for distortion-vs-error studies (None: not broken)
            result["minimal_eps"] = {
                label: [None if math.isinf(v) else v for v in min_eps[i].tolist()]
                for i, label in enumerate(labels)
            }
        return result


class SystemNoiseItem(Item):
    """Accuracy after resizing the images to 24, 28, 40 and 48 px and back with three
    interpolations (CIFAR-S style system noise; mean and std over the 12 variants)."""

    key = "system_noise"
    sharded = False

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def run(self, context: Context) -> dict[str, Any]:
        from robustart.evaluation.benchmarks import evaluate_cifar_system_noise

        images, labels = _stack(context.subset)
        return evaluate_cifar_system_noise(
            context.model,
            images,
            labels,
            batch_size=max(1, context.batch_size // 13),
            device=context.device,
        ).to_dict()


class ShiftItem(Item):
    """An on-disk benchmark (:mod:`robustart.evaluation.benchmarks`), run on rank zero."""

    sharded = False

    def __init__(
        self, entry: ShiftEntry, num_images: int | None, batch_size: int, device: torch.device
    ) -> None:
        self.entry, self.device = entry, device
        self.key = f"shift/{entry.benchmark}"
        self.num_images, self.batch_size = num_images, batch_size
        root = Path(entry.data_root).expanduser()
        self.settings = {
            "benchmark": entry.benchmark,
            "data_root": str(root.resolve()),
            "clean_root": entry.clean_root and str(Path(entry.clean_root).expanduser().resolve()),
            "subsets": entry.subsets,
            "severities": entry.severities,
            "num_images": num_images,
        }
        self._evaluate: Callable[..., dict[str, Any]] | None = None

    def _settings(self) -> Any:
        from robustart.evaluation import benchmarks

        settings = benchmarks.ShiftSettings(root=Path(self.entry.data_root).expanduser())
        values = {
            "clean_root": self.entry.clean_root and Path(self.entry.clean_root).expanduser(),
            "subsets": self.entry.subsets,
            "severities": self.entry.severities and tuple(self.entry.severities),
            "batch_size": self.batch_size,
            "device": self.device,
        }
        for name in ("limit", "num_images"):  # the per-subset image limit
            if hasattr(settings, name):
                values[name] = self.num_images
        for name, value in values.items():
            if value is not None:
                setattr(settings, name, value)
        return settings

    def check(self) -> str | None:
        from robustart.evaluation import benchmarks

        bench = benchmarks.get_benchmark(self.entry.benchmark)
        settings = self._settings()
        try:
            bench.check_root(settings)
            self._evaluate = bench.prepare(settings)
        except DatasetNotFoundError as err:
            if self.entry.optional:
                return f"{self.key} skipped: {err}"
            raise
        return None

    def run(self, context: Context) -> dict[str, Any]:
        if self._evaluate is None:
            self.check()
        assert self._evaluate is not None
        return json.loads(json.dumps(self._evaluate(context.model, None), default=_plain))


def build_items(
    suite: BenchmarkSuite,
    num_images: int | None,
    batch_size: int,
    device: torch.device | None = None,
) -> list[Item]:
    """The items of ``suite`` in the order they run: clean, attacks, corruptions, the other
    robustness sections, system noise, on-disk sets."""
    robustness = suite.robustness
    items: list[Item] = [SuiteItem("clean", {}, {"kind": "clean"})]
    for entry, spec in zip(robustness.attacks, suite.spec.get("attacks") or []):
        item_spec = {"attacks": [spec]}
        settings = {
            "kind": "attack",
            "label": entry.label,
            "eps": list(entry.eps),
            "config": _plain(entry.attack.config),
        }
        items.append(SuiteItem(f"attack/{entry.label}", item_spec, settings))
    for name in robustness.corruption_names:
        spec = {"corruptions": [name], "severities": list(robustness.severities)}
        settings = {"kind": "corruption", "name": name, "severities": list(robustness.severities)}
        items.append(SuiteItem(f"corruption/{name}", spec, settings))
    for entry, spec in zip(robustness.minimal_eps, suite.spec.get("minimal_eps") or []):
        settings = {"kind": "minimal_eps", "label": entry.label, "spec": _plain(spec)}
        settings["attack"] = _plain(entry.search.attack.config)
        items.append(SuiteItem(f"minimal_eps/{entry.label}", {"minimal_eps": [spec]}, settings))
    if suite.system_noise:
        items.append(SystemNoiseItem({"kind": "system_noise", "variants": "cifar_resize"}))
    device = device or torch.device("cpu")
    items += [ShiftItem(entry, num_images, batch_size, device) for entry in suite.shift]
    return items


# ----------------------------------------------------------------------------- storage
class ItemStore:
    """Item results on disk: ``<root>/<model checksum>/<item hash>.json``, written atomically."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    @staticmethod
    def identity(item: Item, common: Mapping[str, Any], checksum: str) -> dict[str, Any]:
        return {"item": item.key, "settings": item.settings, **common, "weights": checksum}

    def path(self, identity: Mapping[str, Any]) -> Path | None:
        if self.root is None:
            return None
        text = json.dumps(identity, sort_keys=True, default=_plain)
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        return self.root / identity["weights"][:16] / f"{digest}.json"

    def load(self, identity: Mapping[str, Any]) -> dict[str, Any] | None:
        path = self.path(identity)
        if path is None or not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # a damaged file is recomputed
        identity = json.loads(json.dumps(identity, default=_plain))
        if stored.get("schema") != SCHEMA or stored.get("identity") != identity:
            return None
        return stored

    def save(self, identity: Mapping[str, Any], record: dict[str, Any]) -> None:
        path = self.path(identity)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"schema": SCHEMA, "identity": identity, **record})


# ----------------------------------------------------------------------------- results
@dataclass
class ModelResult:
    """One model's benchmark: where it came from and each item's result."""

    name: str
    spec: str
    checksum: str
    parameters: int
    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    def item(self, key: str) -> dict[str, Any] | None:
        record = self.items.get(key)
        return None if record is None else record["result"]

    def report(self) -> RobustnessReport:
        """The :class:`RobustnessReport` over every suite item (attacks, corruptions, worst
        case across attacks of the same norm and budget)."""
        clean = self.item("clean")
        if clean is None:
            raise ConfigError(f"{self.name}: no clean result")
        merged = RobustnessReport.from_dict(clean["report"])
        for key, record in self.items.items():
            result = record["result"]
            if key == "clean" or "report" not in result:
                continue
            part = RobustnessReport.from_dict(result["report"])
            for section in dataclasses.fields(RobustnessReport):
                value = getattr(part, section.name)
                if isinstance(value, dict) and section.name != "worst_case":
                    getattr(merged, section.name).update(value)
        merged.worst_case = self.worst_case()
        return merged

    def correct(self) -> dict[str, Tensor]:
        """Per-image correctness ``{metric key: (N,) bool}`` of every suite item."""
        out: dict[str, Tensor] = {}
        n = None
        for record in self.items.values():
            for key, bits in record["result"].get("correct", {}).items():
                n = n or int(record["result"]["report"]["num_images"])
                out[key] = unpack_bits(bits, n)
        return out

    def worst_case(self) -> dict[str, float]:
        """Worst-case robust accuracy per norm and budget: images correct under every attack
        of the benchmark with that norm and budget (where two or more attacks ran there)."""
        correct = self.correct()
        groups: dict[str, list[Tensor]] = {}
        for key, record in self.items.items():
            if not key.startswith("attack/"):
                continue
            report = record["result"]["report"]
            for label, settings in report.get("attack_settings", {}).items():
                norm = settings.get("norm", "linf")
                for eps in report["attacks"][label]:
                    metric = f"robust/{label}/eps={format_eps(float(eps), norm)}"
                    name = f"robust/worst_case_{norm}/eps={format_eps(float(eps), norm)}"
                    groups.setdefault(name, []).append(correct[metric])
        return {  # count / images, as the callback computes it (no float32 mean)
            name: int(torch.stack(vectors).all(dim=0).sum()) / len(vectors[0])
            for name, vectors in groups.items()
            if len(vectors) > 1
        }


@dataclass
class BenchmarkResult:
    """Every model's results, the settings that produced them and the notes of the run."""

    settings: dict[str, Any]
    models: dict[str, ModelResult]
    notes: list[str] = field(default_factory=list)
    #: ``"model/item"`` of the results read back from an earlier run rather than computed.
    reused: list[str] = field(default_factory=list)

    def leaderboard(self) -> Any:
        """One row per model: clean, each attack at each budget, worst case, corruption mean
        and mCE, minimal ε, system noise and the headline of each on-disk set (percent), as a
        :class:`~robustart.evaluation.benchmarks.Table`."""
        from robustart.evaluation.benchmarks import Table

        rows: list[dict[str, Any]] = []
        for model in self.models.values():
            report = model.report()
            row: dict[str, Any] = {
                "model": model.name,
                "params (M)": model.parameters / 1e6,
                "images": report.num_images,
                "clean": 100 * report.clean,
            }
            for label, curve in report.attacks.items():
                norm = report.attack_settings.get(label, {}).get("norm", "linf")
                for eps, accuracy in curve.items():
                    row[f"{label} @{format_eps(eps, norm)}"] = 100 * accuracy
            for name, value in report.worst_case.items():
                row[name.removeprefix("robust/").replace("/eps=", " @")] = 100 * value
            if report.corruptions:
                summary = _corruption_summary(report)
                row["corruption mean"] = 100 * summary["mean_corruption_accuracy"]
                row["unnorm. mCE"] = summary["unnormalized_mce"]
                if summary.get("mce") is not None:
                    row["mCE"] = summary["mce"]
            for name, value in report.metrics().items():
                if name.startswith("minimal_eps/") and name.endswith("/median"):
                    row[name.removesuffix("/median") + " median"] = value
            noise = model.item("system_noise")
            if noise is not None:
                row["system noise mean"] = 100 * noise["mean"]
                row["system noise std"] = 100 * noise["std"]
            for key, record in model.items.items():
                if key.startswith("shift/"):
                    row.update(_shift_headline(key.removeprefix("shift/"), record["result"]))
            rows.append(row)
        headers = list(dict.fromkeys(h for row in rows for h in row))
        decimals = [
            0 if h in ("model", "images") else 2 if h == "params (M)" else 1 for h in headers
        ]
        return Table(headers, [[row.get(h) for h in headers] for row in rows], decimals)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``benchmark.json``: schema, versions, settings, every item result (with
        its settings and time) and the leaderboard."""
        table = self.leaderboard()
        return {
            "schema": SCHEMA,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(),
            "settings": self.settings,
            "notes": self.notes,
            "models": {
                name: {
                    "spec": m.spec,
                    "weights_sha256": m.checksum,
                    "parameters": m.parameters,
                    "metrics": m.report().metrics(),
                    "items": m.items,
                }
                for name, m in self.models.items()
            },
            "leaderboard": table.to_dict(),
        }

    def save(self, output: str | os.PathLike) -> dict[str, Path]:
        """Write ``benchmark.json``, ``leaderboard.md``, ``leaderboard.csv`` and the plots
        (robustness curves, corruption heat map) into ``output``; returns their paths."""
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        table = self.leaderboard()
        paths = {
            "json": atomic_write_json(output / "benchmark.json", self.to_dict()),
            "csv": atomic_write_text(output / "leaderboard.csv", table.csv()),
        }
        reports = {name: m.report() for name, m in self.models.items()}
        from robustart.plots import plot_robustness_curves, save_accuracy_heatmap

        if any(r.attacks for r in reports.values()):
            paths["curves"] = plot_robustness_curves(
                reports, output / "robustness_curves.png", title=self._title()
            )
        if any(r.corruptions for r in reports.values()):
            paths["heatmap"] = save_accuracy_heatmap(
                reports, output / "corruption_heatmap.png", title=f"{self._title()}: accuracy (%)"
            )
        lines = [
            f"# robustart benchmark: {self._title()}",
            "",
            f"Accuracies in percent. Settings: `{json.dumps(self.settings, default=_plain)}`.",
            "",
            table.markdown(),
        ]
        if self.notes:
            lines += ["", "Notes:", "", *(f"- {note}" for note in self.notes)]
        lines += [""] + [f"![{k}]({p.name})" for k, p in paths.items() if p.suffix == ".png"]
        paths["markdown"] = atomic_write_text(output / "leaderboard.md", "\n".join(lines) + "\n")
        return paths

    def _title(self) -> str:
        s = self.settings
        images = s.get("num_images") or "all"
        return f"suite {s.get('suite')} on {s.get('data')} {s.get('split')} ({images} images)"


# ----------------------------------------------------------------------------- the call
ModelLike = nn.Module | str


def benchmark(
    models: ModelLike | Sequence[ModelLike] | Mapping[str, ModelLike],
    data: str | Any = "digits",
    suite: str | os.PathLike | Mapping[str, Any] | BenchmarkSuite = "quick",
    *,
    data_root: str | None = None,
    split: str = "test",
    num_images: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device | None = None,
    output: str | os.PathLike | None = None,
    arch: str | None = None,
    num_workers: int = 0,
    progress: bool = True,
    on_item: Callable[[str, str, dict[str, Any]], None] | None = None,
) -> BenchmarkResult:
    """Evaluate ``models`` on every item of ``suite``.

    Args:
        models: An ``nn.Module`` mapping images in [0, 1] (N, C, H, W) to logits (normalising
            itself), a model spec (``zoo:NAME``, a checkpoint, ``timm:NAME@FILE``, ... see
            :mod:`robustart.models.loading`), or a list or ``{name: model}`` mapping of them.
        data: A dataset name (``digits``, ``cifar10``, ``cifar100``, ``imagenet``), a robustart
            datamodule, or a ``Dataset`` of ``(image (C, H, W) in [0, 1], label)`` items.
        suite: A shipped suite's name (``quick``, ``autoattack_linf``, ...), a YAML file, a
            mapping or a :class:`BenchmarkSuite`.
        data_root: Where the dataset's files are (CIFAR, ImageNet).
        split: The datamodule's split to evaluate.
        num_images: Size of the fixed seeded subset of the split (``None``: all images).
        batch_size: Images per chunk (part of the results' identity: randomness is per chunk).
        seed: Seed of the subset and of every random test.
        device: ``"auto"``/``None`` (CUDA when available), ``"cpu"``, ``"cuda:1"``, ...
        output: Folder of the results; item results are stored there as they finish, and a
            later call with the same folder reuses every result whose settings are unchanged.
        arch: Architecture of plain state-dict files among ``models``.
        num_workers: DataLoader workers.
        progress: Show progress bars.
        on_item: Called as ``(model name, item key, result)`` after each item (computed or
            reused).

    Returns:
        A :class:`BenchmarkResult`; with ``output`` it is also written there (rank zero).

    Raises:
        ConfigError: an unknown suite item or dataset, a bad model spec, a missing non-optional
            on-disk set; all checked before any model is evaluated.
        NonFiniteError: a model's logits are NaN or infinite (no accuracy is reported).
    """
    from robustart.models.loading import load_model, model_names, resolve_device, state_checksum

    suite = suite if isinstance(suite, BenchmarkSuite) else load_benchmark_suite(suite)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if num_images is not None and num_images < 1:
        raise ConfigError(f"num_images must be >= 1, got {num_images}")
    device = resolve_device("auto" if device is None else str(device))
    entries = _model_entries(models)
    datamodule, subset, data_name = _evaluation_data(data, data_root, split, num_images, seed)
    if len(subset) == 0:  # type: ignore[arg-type]
        raise EmptyInputError(f"the {split} split of {data_name} holds no images")
    items = build_items(suite, num_images, batch_size, device)
    notes = [note for item in items if (note := item.check())]
    skipped = {note.split(" ", 1)[0] for note in notes}
    items = [item for item in items if item.key not in skipped]
    rank, world = distributed_rank_and_size()
    settings = {
        "suite": suite.name,
        "data": data_name,
        "split": split,
        "num_images": len(subset),  # type: ignore[arg-type]
        "seed": seed,
        "batch_size": batch_size,
        "world_size": world,
        "device": str(device),
        "suite_spec": _plain(suite.spec),
    }
    common = {
        "data": data_name,
        "split": split,
        "num_images": len(subset),  # type: ignore[arg-type]
        "seed": seed,
        "chunk_size": batch_size,
        "robustart": library_versions()["robustart"],
    }
    store = ItemStore(None if output is None else Path(output) / "items")

    # Load every model before evaluating any (a bad spec fails now, not after hours).
    spec_names = model_names([s if isinstance(s, str) else "model" for _, s in entries])
    loaded: dict[str, tuple[str, nn.Module]] = {}
    for (given, source), default in zip(entries, spec_names):
        name = given or (default if isinstance(source, str) else _module_name(source, loaded))
        if isinstance(source, str):
            if datamodule is None:
                raise ConfigError(
                    f"model {source!r} is a spec: give data as a dataset name or datamodule "
                    "(its classes and normalisation are needed to load it)"
                )
            model = load_model(
                source,
                datamodule.num_classes,
                datamodule.in_channels,
                datamodule.mean,
                datamodule.std,
                dataset=data_name,
                dataset_hint="pass --data {trained_on}",
                arch=arch,
            )
        else:
            model, source = source, f"<{type(source).__name__}>"
        if name in loaded:
            raise ConfigError(f"two models are named {name!r}: give distinct names")
        loaded[name] = (source, model)

    from tqdm.auto import tqdm

    results: dict[str, ModelResult] = {}
    reused: list[str] = []
    for name, (source, model) in loaded.items():
        model = model.to(device).eval()
        checksum = state_checksum(model)
        result = ModelResult(name, source, checksum, sum(p.numel() for p in model.parameters()))
        context = Context(
            model, subset, device, seed, batch_size, num_workers, progress, _num_classes(datamodule)
        )
        bar = tqdm(items, desc=name, disable=not progress or rank != 0, dynamic_ncols=True)
        for item in bar:
            bar.set_postfix_str(item.key, refresh=False)
            identity = store.identity(item, common, checksum)
            record = _shared(store.load(identity) if rank == 0 else None)
            if record is None:
                record = _run_item(item, context, rank)
                if rank == 0:
                    store.save(identity, record)
            else:
                reused.append(f"{name}/{item.key}")
            result.items[item.key] = {k: record[k] for k in ("settings", "result", "seconds")}
            if on_item is not None:
                on_item(name, item.key, record["result"])
        results[name] = result
    outcome = BenchmarkResult(settings, results, notes, reused)
    if output is not None and rank == 0:
        outcome.save(output)
    return outcome


def _run_item(item: Item, context: Context, rank: int) -> dict[str, Any]:
    start = time.perf_counter()
    if item.sharded:
        value = item.run(context)
    else:  # rank zero evaluates; the others receive its result
        value = _shared(item.run(context) if rank == 0 else None)
    return {"settings": item.settings, "result": value, "seconds": time.perf_counter() - start}


def _shared(value: Any) -> Any:
    """``value`` of rank zero, on every process (itself without DDP)."""
    if distributed_rank_and_size()[1] == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _model_entries(models: Any) -> list[tuple[str | None, ModelLike]]:
    if isinstance(models, (nn.Module, str)):
        return [(None, models)]
    if isinstance(models, Mapping):
        return [(str(k), v) for k, v in models.items()]
    entries = [(None, m) for m in models]
    if not entries:
        raise ConfigError("no models to benchmark")
    return entries


def _module_name(model: nn.Module, taken: Mapping[str, Any]) -> str:
    base = type(model).__name__
    name, k = base, 2
    while name in taken:
        name, k = f"{base}#{k}", k + 1
    return name


def _evaluation_data(
    data: Any, root: str | None, split: str, num_images: int | None, seed: int
) -> tuple[Any, Dataset, str]:
    """``(datamodule or None, the evaluated subset, the data's name)``."""
    from robustart.data.base import RobustartDataModule
    from robustart.data.named import create_datamodule

    if isinstance(data, str):
        name, data = data, create_datamodule(data, root)
    elif isinstance(data, RobustartDataModule):
        name = type(data).__name__.removesuffix("DataModule").lower()
    elif isinstance(data, Dataset):
        return None, limit_dataset(data, num_images), type(data).__name__
    else:
        raise ConfigError(
            f"data must be a dataset name, a robustart datamodule or a Dataset, got {data!r}"
        )
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split must be train, val or test, got {split!r}")
    return data, data.robustness_subset(split, num_images, seed), name


def _num_classes(datamodule: Any) -> int:
    return int(getattr(datamodule, "num_classes", 0) or 0)


def _stack(dataset: Dataset) -> tuple[Tensor, Tensor]:
    items = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
    images = torch.stack([torch.as_tensor(image) for image, _ in items]).float()
    return images, torch.tensor([int(label) for _, label in items])


def _corruption_summary(report: RobustnessReport) -> dict[str, Any]:
    from robustart.metrics.corruption import summarize_report

    return summarize_report(report)


def _shift_headline(name: str, result: Mapping[str, Any]) -> dict[str, float | None]:
    """The headline numbers of an on-disk benchmark's result (percent)."""
    if "corruptions" in result:
        values = [a for curve in result["corruptions"].values() for a in curve.values()]
        return {f"{name} mean": 100 * sum(values) / len(values)} if values else {}
    if "auroc" in result:
        return {f"{name} AUROC": 100 * result["auroc"]}
    if "perturbations" in result:
        flips = [v["flip_probability"] for v in result["perturbations"].values()]
        return {f"{name} flip prob.": 100 * sum(flips) / len(flips)} if flips else {}
    if "mean" in result and "std" in result:
        return {f"{name} mean": 100 * result["mean"], f"{name} std": 100 * result["std"]}
    if "accuracy" in result:
        return {name: 100 * result["accuracy"]}
    return {}


# ----------------------------------------------------------------------------- helpers
def pack_bits(values: Tensor) -> str:
    """A boolean vector (N,) as a hex string (``np.packbits``, big-endian bit order).

    Example:
        >>> pack_bits(torch.tensor([True, False, True]))
        'a0'
        >>> unpack_bits("a0", 3).tolist()
        [True, False, True]
    """
    return np.packbits(values.cpu().numpy().astype(bool)).tobytes().hex()


def unpack_bits(text: str, length: int) -> Tensor:
    """The boolean vector (``length``,) of :func:`pack_bits`."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:length]
    return torch.from_numpy(bits.astype(bool))


def library_versions() -> dict[str, str]:
    """Versions of Python, robustart and the libraries its numbers depend on."""
    import importlib.metadata

    import robustart

    versions = {"python": platform.python_version(), "robustart": robustart.__version__}
    for package in ("torch", "torchvision", "timm", "lightning", "kornia", "numpy", "torchmetrics"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _plain(value: Any) -> Any:
    """``value`` with tuples, paths, tensors and numpy scalars made JSON-ready."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    return value
