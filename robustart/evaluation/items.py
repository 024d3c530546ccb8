"""The items of a benchmark suite: what ``robustart benchmark`` evaluates, stores and resumes
as a unit (see :mod:`robustart.evaluation.benchmark`).

A benchmark suite is a robustness suite (:func:`~robustart.evaluation.suite.load_suite`) with
two more sections::

    attacks: [{name: pgd, norm: linf, eps: [8/255], steps: 10}]
    corruptions: [gaussian_noise, fog]
    severities: [1, 3, 5]
    minimal_eps: [{attack: pgd, eps_max: 16/255, steps: 10}]
    system_noise: true
    shift:
      - {benchmark: cifar10-c, data_root: data/CIFAR-10-C, optional: true}
    certification: {sigma: 0.25, n0: 100, n: 1000, alpha: 0.001, radii: [0, 0.25, 0.5]}

Its items: ``clean``, ``attack/<label>`` (one attack at each of its budgets),
``corruption/<name>`` (one corruption at each severity), ``minimal_eps/<label>``,
``system_noise``, ``certification`` (randomized smoothing,
:mod:`robustart.evaluation.certification`) and ``shift/<benchmark>``.

A ``shift`` entry takes the settings of ``robustart shift``: ``clean_root``, ``subsets``,
``severities``, ``allow_missing_classes`` (score a partial copy of a class-folder set), and
``optional`` (skip the entry when ``data_root`` does not exist).
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from robustart.errors import ConfigError, DatasetNotFoundError
from robustart.evaluation.loop import distributed_rank_and_size, iterate_chunks, sum_over_processes
from robustart.evaluation.runner import evaluate_robustness
from robustart.evaluation.suite import BatchResult, RobustnessSuite, parse_severities, suites_dir
from robustart.utils import read_yaml_file

__all__ = [
    "BenchmarkSuite",
    "CertificationItem",
    "CheckedLogits",
    "Context",
    "Item",
    "ShiftEntry",
    "build_items",
    "check_items_run",
    "load_benchmark_suite",
    "pack_bits",
    "to_json",
    "unpack_bits",
]

#: Settings of a ``shift`` entry.
SHIFT_KEYS = (
    "benchmark",
    "data_root",
    "clean_root",
    "subsets",
    "severities",
    "optional",
    "allow_missing_classes",
)


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
    allow_missing_classes: bool = False


@dataclass
class BenchmarkSuite:
    """What a benchmark runs: a robustness suite plus system noise and on-disk sets.

    Attributes:
        name: The suite's name or file (for reports).
        robustness: Attacks, corruptions and other on-the-fly tests.
        spec: The robustness part as written (a mapping; the identity of its items).
        system_noise: Run the resize round trips.
        shift: On-disk benchmarks.
        certification: Settings of the randomized-smoothing certification (checked and
            completed by :func:`~robustart.evaluation.certification.check_certification_settings`),
            ``None`` for none.
    """

    name: str
    robustness: RobustnessSuite
    spec: dict[str, Any]
    system_noise: bool = False
    shift: list[ShiftEntry] = field(default_factory=list)
    certification: dict[str, Any] | None = None


def load_benchmark_suite(spec: str | os.PathLike | Mapping[str, Any]) -> BenchmarkSuite:
    """Build a :class:`BenchmarkSuite` from a shipped suite's name, a YAML file or a mapping.

    Every name, budget and on-disk folder is checked here, before any model is evaluated.

    Raises:
        ConfigError: an unknown suite, key, attack, corruption or benchmark; a missing
            non-optional on-disk set; a suite with nothing to run beside clean accuracy;
            ``severities`` without ``corruptions``; two shift entries of one benchmark.
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
    certification = data.pop("certification", None)
    if certification is not None:
        from robustart.evaluation.certification import check_certification_settings

        certification = check_certification_settings(certification)
    if "severities" in data and not data.get("corruptions"):
        raise ConfigError(
            f"suite {name!r} lists severities but no corruptions: severities apply to the "
            "corruptions; list them under 'corruptions' or remove 'severities'"
        )
    _refuse_repeated_shift_entries(shift)
    robustness = load_suite(data)
    suite = BenchmarkSuite(name, robustness, data, system_noise, shift, certification)
    check_items_run(suite.name, build_items(suite, None, 1))
    return suite


def check_items_run(suite: str, items: list[Item], skipped: list[str] | None = None) -> None:
    """Refuse a benchmark that would evaluate clean accuracy alone: its leaderboard would pass
    for the suite's robustness results.

    Args:
        suite: The suite's name (for the message).
        items: The items that run (``clean`` first).
        skipped: The notes of the items skipped for missing data.

    Raises:
        DatasetNotFoundError: every item beside ``clean`` was skipped.
        ConfigError: the suite has no item beside ``clean``.
    """
    if len(items) > 1:
        return
    if skipped:
        raise DatasetNotFoundError(
            f"every item of suite {suite!r} beside clean accuracy was skipped "
            f"({'; '.join(skipped)}): provide the data, or give the suite an item that runs"
        )
    raise ConfigError(
        f"suite {suite!r} has nothing to evaluate beside clean accuracy: list attacks, "
        "corruptions, minimal_eps, certification or shift entries, or set system_noise: true"
    )


def _refuse_repeated_shift_entries(entries: list[ShiftEntry]) -> None:
    """Two entries of one benchmark would share the item ``shift/<benchmark>`` (and its
    leaderboard column): the first result would be dropped without a word."""
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries, start=1):
        first = seen.setdefault(entry.benchmark, index)
        if first != index:
            raise ConfigError(
                f"shift entries #{first} and #{index} both run {entry.benchmark!r}; a suite "
                "runs each benchmark once (its result is shift/<benchmark>): keep one entry, "
                "or run the other data_root in a second suite"
            )


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
    what = f"shift entry {entry['benchmark']!r}"
    if not entry.get("data_root"):
        raise ConfigError(f"{what} needs data_root (its folder)")
    settings = {k: entry[k] for k in SHIFT_KEYS if k in entry}
    if settings.get("severities") is not None:
        try:
            settings["severities"] = list(parse_severities(settings["severities"]))
        except ConfigError as error:
            raise ConfigError(f"{what}: {error}") from None
    subsets = settings.get("subsets")
    if subsets is not None:
        if isinstance(subsets, str):
            subsets = settings["subsets"] = [subsets]
        if not isinstance(subsets, list) or not all(isinstance(s, str) for s in subsets):
            raise ConfigError(f"{what}: subsets must be a list of names, got {subsets!r}")
        if len(set(subsets)) != len(subsets):
            raise ConfigError(f"{what}: subsets are listed twice: {subsets}")
    return ShiftEntry(**settings)


# ----------------------------------------------------------------------------- items
class CheckedLogits(nn.Module):
    """``model`` whose every output is checked to be logits ``(N, num_classes)`` for ``N``
    images: the class count is probed once before the evaluation, and a model whose output
    width changes with the batch would otherwise be scored on whatever columns it returns.

    Args:
        model: The evaluated model (its parameters and modes are this module's).
        num_classes: The classes its logits must have.
        what: How the model is named in errors (``"model 'a'"``).
    """

    def __init__(self, model: nn.Module, num_classes: int, what: str) -> None:
        super().__init__()
        self.model, self.num_classes, self.what = model, num_classes, what

    def forward(self, images: Tensor) -> Tensor:
        logits = self.model(images)
        expected = (images.shape[0], self.num_classes)
        if not isinstance(logits, Tensor) or tuple(logits.shape) != expected:
            got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ConfigError(
                f"{self.what} returned {got} for {images.shape[0]} images, not logits "
                f"{expected} of its {self.num_classes} classes: its output must be (N, classes) "
                "whatever the batch size"
            )
        return logits


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

    def check_model(self, num_classes: int, what: str) -> None:
        """Refuse, before any work, a model of ``num_classes`` classes (``0``: unknown) that
        this item cannot score; ``what`` names the model in the error.

        Raises:
            ConfigError: the item needs a model of other classes.
        """
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
        from robustart.system_noise.cifar import cifar_variants

        images, labels = _stack(context.subset)
        inputs_per_image = 1 + len(cifar_variants())  # the image and each of its variants
        return evaluate_cifar_system_noise(
            context.model,
            images,
            labels,
            batch_size=max(1, context.batch_size // inputs_per_image),
            device=context.device,
        ).to_dict()


class CertificationItem(Item):
    """Certified ℓ2 accuracy of the Gaussian-smoothed model (Cohen et al., 2019): CERTIFY on
    every image, sharded over DDP processes like the suite items (each image's noise is seeded
    by its index, so the numbers do not depend on the sharding)."""

    key = "certification"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = {"kind": "certification", **settings}

    def run(self, context: Context) -> dict[str, Any]:
        from robustart.evaluation.certification import certify_chunks

        rank, world = distributed_rank_and_size()
        result = certify_chunks(
            context.model,
            iterate_chunks(context.subset, context.batch_size, rank, world, context.num_workers),
            len(context.subset),  # type: ignore[arg-type]
            context.batch_size,
            self.settings,
            seed=context.seed,
            num_classes=context.num_classes or None,
            device=context.device,
        )
        out = result.to_dict(self.settings["radii"])
        out["settings"] = to_json(self.settings)
        return out


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
        self._models: Any = None  # what the benchmark's models must be (set by check)

    def _settings(self) -> Any:
        from robustart.evaluation import benchmarks

        settings = benchmarks.ShiftSettings(root=Path(self.entry.data_root).expanduser())
        values = {
            "clean_root": self.entry.clean_root and Path(self.entry.clean_root).expanduser(),
            "subsets": self.entry.subsets,
            "severities": self.entry.severities and tuple(self.entry.severities),
            "batch_size": self.batch_size,
            "device": self.device,
            "num_images": self.num_images,  # per subset (corruption × severity, perturbation)
            "allow_missing_classes": self.entry.allow_missing_classes or None,
        }
        for name, value in values.items():
            if value is not None:
                setattr(settings, name, value)
        return settings

    def check(self) -> str | None:
        from robustart.evaluation import benchmarks

        bench = benchmarks.get_benchmark(self.entry.benchmark)
        if self.entry.allow_missing_classes and "allow_missing_classes" not in bench.options:
            raise ConfigError(
                f"shift entry {self.entry.benchmark!r}: allow_missing_classes applies only to "
                "the class-folder sets (imagenet-a, -r, -o, -sketch, -v2); remove it"
            )
        settings = self._settings()
        try:
            bench.check_root(settings)
            self._evaluate = bench.prepare(settings)
            self._models = bench.model_data(settings)
        except DatasetNotFoundError as err:
            # optional: a set that is not there is skipped; one that is there but broken (labels
            # out of range, a wrong layout, an empty file) is an error, as for any other set
            root = getattr(settings, "root", None)
            if self.entry.optional and (root is None or not Path(root).exists()):
                return f"{self.key} skipped: {err}"
            raise
        return None

    def check_model(self, num_classes: int, what: str) -> None:
        """The check of ``robustart shift``: the set's labels are those of its models'
        classes (:meth:`~robustart.evaluation.benchmarks.Benchmark.model_data`), so a model
        of another class count fails on them mid-run or, with more classes, is scored on
        labels it does not predict."""
        if self._models is None:
            self.check()
        expected = self._models.num_classes if self._models is not None else 0
        if num_classes and expected and num_classes != expected:
            data = f" ({self._models.dataset})" if self._models.dataset else ""
            raise ConfigError(
                f"{what} predicts {num_classes} classes but the shift entry "
                f"{self.entry.benchmark!r} evaluates {expected}-class models{data}: remove the "
                "entry from the suite or benchmark models of its classes"
            )

    def run(self, context: Context) -> dict[str, Any]:
        if self._evaluate is None:
            self.check()
        assert self._evaluate is not None
        return json.loads(json.dumps(self._evaluate(context.model, None), default=to_json))


def build_items(
    suite: BenchmarkSuite,
    num_images: int | None,
    batch_size: int,
    device: torch.device | None = None,
) -> list[Item]:
    """The items of ``suite`` in the order they run: clean, attacks, corruptions, the other
    robustness sections, system noise, certification, on-disk sets."""
    robustness = suite.robustness
    items: list[Item] = [SuiteItem("clean", {}, {"kind": "clean"})]
    for entry, spec in zip(robustness.attacks, suite.spec.get("attacks") or []):
        item_spec = {"attacks": [spec]}
        settings = {
            "kind": "attack",
            "label": entry.label,
            "eps": list(entry.eps),
            "config": to_json(entry.attack.config),
        }
        items.append(SuiteItem(f"attack/{entry.label}", item_spec, settings))
    for name in robustness.corruption_names:
        spec = {"corruptions": [name], "severities": list(robustness.severities)}
        settings = {"kind": "corruption", "name": name, "severities": list(robustness.severities)}
        settings.update(robustness.corruptions[name].data_identity())  # e.g. frost's photos
        items.append(SuiteItem(f"corruption/{name}", spec, settings))
    for entry, spec in zip(robustness.minimal_eps, suite.spec.get("minimal_eps") or []):
        settings = {"kind": "minimal_eps", "label": entry.label, "spec": to_json(spec)}
        settings["attack"] = to_json(entry.search.attack.config)
        items.append(SuiteItem(f"minimal_eps/{entry.label}", {"minimal_eps": [spec]}, settings))
    if suite.system_noise:
        items.append(SystemNoiseItem({"kind": "system_noise", "variants": "cifar_resize"}))
    if suite.certification is not None:
        items.append(CertificationItem(copy.deepcopy(suite.certification)))
    device = device or torch.device("cpu")
    items += [ShiftItem(entry, num_images, batch_size, device) for entry in suite.shift]
    return items


def _stack(dataset: Dataset) -> tuple[Tensor, Tensor]:
    items = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
    images = torch.stack([torch.as_tensor(image) for image, _ in items]).float()
    return images, torch.tensor([int(label) for _, label in items])


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


def to_json(value: Any) -> Any:
    """``value`` with tuples, paths, tensors and numpy scalars made JSON-ready."""
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
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
