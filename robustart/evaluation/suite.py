"""Robustness suites: which attacks (at which budgets) and corruptions (at which severities).

A suite is plain data, written in YAML::

    attacks:
      - {name: pgd, norm: linf, eps: [2/255, 4/255, 8/255], steps: 10}
      - {name: fgsm, eps: [8/255], label: fgsm_linf}
    corruptions: [gaussian_noise, contrast]     # or "all"
    severities: [1, 2, 3, 4, 5]
    minimal_eps:                                # per-image minimal budgets
      - {attack: pgd, norm: linf, eps_max: 16/255, steps: 10}
      - {attack: apgd, norm: l2, eps_max: 2.0, steps: 20, bisection_steps: 6, label: apgd_l2}

A ``minimal_eps`` entry runs a :class:`~robustart.evaluation.minimal.MinimalEpsilonSearch` on
the suite's images: ``attack`` (default ``pgd``), the search's settings (``eps_max``, ``norm``,
``grid``, ``coarse_steps``, ``growth``, ``bisection_steps``, ``tolerance``), an optional
``label`` (default: the attack's, e.g. ``pgd10_linf``), and the attack's own settings.

Every entry is validated when the suite is built (unknown names, bad budgets, settings an
attack does not accept), so a typo fails at start-up, not after an epoch of training.
"""

from __future__ import annotations

import copy
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robustart.attacks import Attack, create_attack
from robustart.attacks.base import as_model_input, check_budget, checked_input_gradient
from robustart.corruptions import CORRUPTIONS, check_severity, create_corruption
from robustart.corruptions.base import Corruption
from robustart.errors import ConfigError, NonFiniteError, RobustartWarning
from robustart.evaluation.minimal import MinimalEpsilonSearch
from robustart.utils import (
    check_finite_logits,
    check_images,
    check_labels,
    check_logits_shape,
    check_model_consistency,
    check_not_probabilities,
    eps_key,
    format_eps,
    make_generator,
    parse_eps,
    preserve_mode,
    read_yaml_file,
    stable_seed,
    warn_if_one_class,
)

#: The cheap default for epoch-end evaluation: PGD-10 (L∞) at three budgets.
#: Attack labels in metric names state iterations and restarts (``pgd10_linf``).
DEFAULT_ATTACKS: list[dict[str, Any]] = [
    {"name": "pgd", "norm": "linf", "eps": ["2/255", "4/255", "8/255"], "steps": 10},
]

CLEAN_KEY = "robust/clean"


def robust_metric(label: str, eps: float, norm: str) -> str:
    """The metric name of an attack's robust accuracy at ``eps``, e.g.
    ``robust/pgd10_linf/eps=8_255`` (ε without ``/``; see :func:`~robustart.utils.eps_key`)."""
    return f"robust/{label}/eps={eps_key(eps, norm)}"


def worst_case_metric(eps: float, norm: str) -> str:
    """The metric name of the worst case over a suite's attacks of one norm and budget, e.g.
    ``robust/worst_case_linf/eps=8_255``."""
    return robust_metric(f"worst_case_{norm}", eps, norm)


def metric_display_name(name: str) -> str:
    """A robust-accuracy metric name for tables and legends: ``robust/pgd10_linf/eps=8_255``
    → ``pgd10_linf @8/255``."""
    label, _, eps = name.removeprefix("robust/").partition("/eps=")
    return f"{label} @{eps.replace('_', '/')}" if eps else label


@dataclass
class AttackEntry:
    """One attack of a suite, evaluated at each budget of ``eps``."""

    label: str
    attack: Attack
    eps: tuple[float, ...]

    def key(self, eps: float) -> str:
        return robust_metric(self.label, eps, self.attack.norm)

    def seed_name(self, eps: float) -> str:
        """The name the random start at ``eps`` is seeded from: the metric name as it was
        first written (``robust/pgd10_linf/eps=8/255``), so that numbers stay the same across
        versions whatever the metric names become."""
        return f"robust/{self.label}/eps={format_eps(eps, self.attack.norm)}"

    @property
    def gradient_free(self) -> bool:
        return self.attack.name == "square"


@dataclass
class MinimalEpsilonEntry:
    """One minimal-ε search of a suite, reported as ``minimal_eps/<label>/...``."""

    label: str
    search: MinimalEpsilonSearch

    @property
    def key(self) -> str:
        """The name of the search in metric names and random seeds."""
        return f"minimal_eps/{self.label}"


@dataclass
class BatchResult:
    """What one batch of a suite produced."""

    #: ``{key: correct (N,) bool}`` for every test.
    correct: dict[str, Tensor]
    #: ``{attack key: (perturbation (N, C, H, W), success (N,) bool)}``.
    perturbations: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    #: Input gradient of the CE loss on the clean images (N, C, H, W), if attacks ran.
    clean_gradient: Tensor | None = None
    #: ``{minimal-ε label: per-image minimal budgets (N,)}`` (0: clean-misclassified,
    #: ``inf``: not broken within ``eps_max``).
    minimal_eps: dict[str, Tensor] = field(default_factory=dict)


def parse_attacks(specs: Sequence[dict[str, Any]] | None) -> list[AttackEntry]:
    """Build the attacks of a suite from YAML-style dictionaries.

    Each dictionary needs ``name`` and ``eps`` (a number, a fraction string or a list of them);
    ``label`` (default: the attack's own, stating iterations and restarts, e.g. ``pgd10_linf``)
    names it in metrics; every other key is a setting of the attack (``norm``, ``steps``,
    ``restarts``, ...).
    """
    entries: list[AttackEntry] = []
    for i, spec in enumerate(specs or []):
        if not isinstance(spec, dict):
            raise ConfigError(
                f"attack #{i + 1} must be a mapping with 'name' and 'eps', got {spec!r}"
            )
        spec = copy.deepcopy(dict(spec))
        name = spec.pop("name", None)
        if not name:
            raise ConfigError(f"attack #{i + 1} has no 'name': {spec}")
        if "eps" not in spec:
            raise ConfigError(f"attack {name!r} has no 'eps' (a budget or a list of budgets)")
        raw_eps = spec.pop("eps")
        raw_eps = raw_eps if isinstance(raw_eps, (list, tuple)) else [raw_eps]
        if not raw_eps:
            raise ConfigError(f"attack {name!r} has an empty eps list")
        eps = tuple(parse_eps(e, f"eps of attack {name!r}") for e in raw_eps)
        if len(set(eps)) != len(eps):  # one result per budget: a repeat would be dropped
            raise ConfigError(
                f"attack {name!r} lists a budget twice in eps {list(raw_eps)}: give each "
                "budget once"
            )
        label = spec.pop("label", None)
        attack = create_attack(name, eps=eps[0], **spec)
        if getattr(attack, "loss_name", None) == "kl":
            raise ConfigError(
                f"attack {name!r}: loss kl needs soft labels (TRADES crafts its training "
                "examples with it); an evaluation attacks class labels: use loss ce, dlr or cw"
            )
        names = [eps_key(e, attack.norm) for e in eps]
        if len(set(names)) != len(names):  # one metric name per budget: a result would be lost
            raise ConfigError(
                f"attack {name!r} has budgets {list(raw_eps)} that round to the same metric "
                f"name (eps={', eps='.join(names)}; six significant digits): give budgets that "
                "differ within six digits"
            )
        for value in eps[1:]:  # the first was checked by the attack
            check_budget(attack.name, attack.norm, value)
            attack.warn_if_short_of_budget(value)
        label = attack.label if label is None else check_label(label, f"attack {name!r}")
        if any(e.label == label for e in entries):
            raise ConfigError(f"two attacks share the label {label!r}: give one a 'label'")
        entries.append(AttackEntry(label, attack, eps))
    return entries


#: Labels the suite's own results use: an attack under one of them would be overwritten.
RESERVED_LABEL = re.compile(r"^(clean|worst_case_.*)$")


def check_label(label: Any, what: str) -> str:
    """Refuse a label that cannot name a metric: not a non-empty string (a YAML ``label: 7``
    crashed the figures after the whole evaluation), a name the suite's own results use
    (``clean``, ``worst_case_<norm>``: overwritten by them), or one holding ``/`` or
    whitespace (metric names are ``robust/<label>/eps=...``).

    Raises:
        ConfigError: naming the label and what to write.
    """
    if not isinstance(label, str) or not label:
        raise ConfigError(
            f"{what} label must be a non-empty string, got {label!r}: quote it in YAML "
            f"(label: '{label}')"
        )
    if RESERVED_LABEL.match(label):
        raise ConfigError(
            f"{what} label {label!r} is a name of the suite's own results (clean, "
            "worst_case_<norm>), which would overwrite it: choose another"
        )
    if "/" in label or any(c.isspace() for c in label):
        raise ConfigError(
            f"{what} label {label!r} holds '/' or whitespace; metric names are "
            "robust/<label>/eps=..., so use letters, digits, '_', '-' or '.'"
        )
    return label


def parse_minimal_eps(specs: Sequence[dict[str, Any]] | None) -> list[MinimalEpsilonEntry]:
    """Build the minimal-ε searches of a suite from YAML-style dictionaries.

    Each dictionary needs ``eps_max``; ``label`` (default: the attack's own, e.g.
    ``pgd10_linf``) names it in metrics; the other keys go to
    :meth:`MinimalEpsilonSearch.from_settings`.
    """
    entries: list[MinimalEpsilonEntry] = []
    for i, spec in enumerate(specs or []):
        if not isinstance(spec, dict):
            raise ConfigError(
                f"minimal_eps entry #{i + 1} must be a mapping with 'attack' and 'eps_max', "
                f"got {spec!r}"
            )
        settings = copy.deepcopy(dict(spec))
        label = settings.pop("label", None)
        search = MinimalEpsilonSearch.from_settings(settings)
        label = (
            search.attack.label
            if label is None
            else check_label(label, f"minimal_eps entry #{i + 1}")
        )
        if any(e.label == label for e in entries):
            raise ConfigError(
                f"two minimal_eps searches share the label {label!r}: give one a 'label'"
            )
        entries.append(MinimalEpsilonEntry(label, search))
    return entries


def parse_corruptions(names: Sequence[str] | str | None) -> list[str]:
    """Corruption names of a suite; ``"all"`` means every registered corruption."""
    if names is None:
        return []
    if isinstance(names, str):
        if names == "all":
            return CORRUPTIONS.names()
        names = [names]
    if not isinstance(names, (list, tuple)):
        raise ConfigError(f"corruptions must be a list of corruption names or 'all', got {names!r}")
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise ConfigError(
                f"corruptions entry #{i + 1} must be a corruption name, got {name!r} (the "
                "severities are one list for all corruptions: 'severities: [1, 2, 3]')"
            )
        CORRUPTIONS.get(name)  # raises with close matches
    if len(set(names)) != len(names):
        raise ConfigError(f"corruptions are listed twice: {list(names)}")
    return list(names)


def parse_severities(severities: Sequence[int]) -> tuple[int, ...]:
    """The severities of a suite: a list of distinct integers 1..5.

    Raises:
        ConfigError: a single number (``3`` instead of ``[3]``), another type, an entry out
            of 1..5 or listed twice.
    """
    if not isinstance(severities, (list, tuple)):
        example = f"[{severities}]" if isinstance(severities, int) else "[1, 2, 3, 4, 5]"
        raise ConfigError(
            f"severities must be a list of severities 1..5 (e.g. {example}), got {severities!r}"
        )
    parsed = tuple(check_severity(s) for s in severities)
    if len(set(parsed)) != len(parsed):
        raise ConfigError(f"severities are listed twice: {list(parsed)}")
    return parsed


#: A corruption whose output moves no pixel of a chunk by this much (half an 8-bit level)
#: left the images unchanged.
UNCHANGED_TOLERANCE = 0.5 / 255


def check_corruption_changes(corrupted: Tensor, images: Tensor, name: str, severity: int) -> None:
    """Refuse a corruption × severity that leaves the images unchanged.

    Spatial parameters scale with the image side (tables of 32 or 224 px), so on small
    images a blur radius can fall below a pixel (defocus blur at severity 4 on 28-px
    images): the "corrupted" accuracy would be the clean one, and it would flatter the
    corruption mean and the mCE.

    Args:
        corrupted: (N, C, H, W) output of the corruption.
        images: (N, C, H, W) its input.
        name: The corruption, for the message.
        severity: Its severity.

    Raises:
        ConfigError: no pixel moved by :data:`UNCHANGED_TOLERANCE` or more.
    """
    if len(images) and not bool((corrupted - images).abs().amax() >= UNCHANGED_TOLERANCE):
        height, width = images.shape[-2:]
        raise ConfigError(
            f"corruption {name} at severity {severity} leaves these {height}x{width} images "
            "unchanged (no pixel moves by half an 8-bit level), so its accuracy would be the "
            "clean accuracy. Its spatial parameters scale with the image size and fall below a "
            "pixel here: leave this corruption or severity out of the suite, or evaluate "
            "larger images"
        )


class RobustnessSuite:
    """A set of robustness tests run on the same images.

    Args:
        attacks: Attack dictionaries (see :func:`parse_attacks`); ``None`` → none.
        corruptions: Corruption names or ``"all"``; ``None`` → none.
        severities: Severities of each corruption (1..5).
        minimal_eps: Minimal-ε search dictionaries (see :func:`parse_minimal_eps`);
            ``None`` → none.

    Example:
        >>> suite = RobustnessSuite(attacks=DEFAULT_ATTACKS, corruptions=["contrast"])
        >>> suite.keys()[:2]
        ['robust/clean', 'robust/pgd10_linf/eps=2_255']
    """

    def __init__(
        self,
        attacks: Sequence[dict[str, Any]] | None = None,
        corruptions: Sequence[str] | str | None = None,
        severities: Sequence[int] = (1, 2, 3, 4, 5),
        minimal_eps: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        self.attacks = parse_attacks(attacks)
        self.minimal_eps = parse_minimal_eps(minimal_eps)
        self.corruption_names = parse_corruptions(corruptions)
        self.corruptions: dict[str, Corruption] = {
            n: create_corruption(n) for n in self.corruption_names
        }
        for corruption in self.corruptions.values():
            corruption.check_available()  # missing files fail now, not after the attacks
        self.severities = parse_severities(severities)
        if self.corruption_names and not self.severities:
            raise ConfigError("severities is empty but corruptions are listed")

    def data_identity(self) -> dict[str, dict[str, str]]:
        """``{corruption: checksums}`` of the data files its corruptions read (frost's
        photographs; :meth:`~robustart.corruptions.base.Corruption.data_identity`)."""
        identities = {n: c.data_identity() for n, c in self.corruptions.items()}
        return {n: identity for n, identity in identities.items() if identity}

    @staticmethod
    def corruption_key(name: str, severity: int) -> str:
        return f"corruption/{name}/{severity}"

    def keys(self) -> list[str]:
        """Metric keys of every correctness test in the order they run (minimal-ε searches
        report statistics, not a correctness per image, and are not among them)."""
        keys = [CLEAN_KEY]
        keys += [entry.key(e) for entry in self.attacks for e in entry.eps]
        keys += [self.corruption_key(n, s) for n in self.corruption_names for s in self.severities]
        return keys

    def __len__(self) -> int:
        return len(self.keys())

    def attack_keys(self) -> list[str]:
        return [entry.key(e) for entry in self.attacks for e in entry.eps]

    def worst_case_groups(self) -> dict[str, list[str]]:
        """WCAR groups: attacks sharing a norm and a budget (only groups of two or more)."""
        groups: dict[str, list[str]] = {}
        for entry in self.attacks:
            for eps in entry.eps:
                norm = entry.attack.norm
                name = worst_case_metric(eps, norm)
                groups.setdefault(name, []).append(entry.key(eps))
        return {k: v for k, v in groups.items() if len(v) > 1}

    @staticmethod
    @torch.no_grad()
    def _logits(model: nn.Module, images: Tensor) -> Tensor:
        return model(as_model_input(model, images))

    def run_batch(
        self,
        model: nn.Module,
        images: Tensor,
        labels: Tensor,
        chunk_id: int,
        seed: int = 0,
        on_test: Any = None,
    ) -> dict[str, Tensor]:
        """Run every test on one batch.

        Randomness (attack starts, corruption noise) is seeded by ``(seed, test, chunk_id)``,
        so a chunk of images gets the same result wherever (on whichever rank) it runs.

        Args:
            model: Classifier taking images in [0, 1]; evaluated in eval mode.
            images: (N, C, H, W) in [0, 1], on the model's device.
            labels: (N,).
            chunk_id: Global index of this batch in the evaluation subset.
            seed: Seed of the suite.
            on_test: Optional callable ``(key) -> None`` called after each test (progress).

        Returns:
            A :class:`BatchResult` with the correctness of every key of :meth:`keys` and the
            per-image minimal budgets of every minimal-ε search.
        """
        device = images.device
        result = BatchResult(correct={})
        finite: dict[str, Tensor] = {}  # per test: are all logits finite (checked once, below)

        def score(key: str, logits: Tensor) -> Tensor:
            finite[key] = torch.isfinite(logits).all()
            correct = logits.argmax(dim=1) == labels
            result.correct[key] = correct
            if on_test is not None:
                on_test(key)
            return correct

        check_images(images, f"the images of chunk {chunk_id}")  # a clean-only suite too
        with preserve_mode(model, False):
            clean_logits = self._logits(model, images)
            check_logits_shape(clean_logits, len(images))
            check_finite_logits(
                clean_logits, f"the model's logits on the clean images of chunk {chunk_id}"
            )
            check_labels(labels, len(images), clean_logits.shape[1])
            if chunk_id == 0:  # once per evaluation: two forward passes of two images
                check_model_consistency(
                    lambda x: self._logits(model, x),
                    images,
                    clean_logits,
                    f"the model's outputs on the clean images of chunk {chunk_id}",
                )
                warn_if_one_class(clean_logits, labels, "the clean images of the first chunk")
            if self.attacks or self.minimal_eps:
                check_not_probabilities(
                    clean_logits, f"the model's outputs on the clean images of chunk {chunk_id}"
                )
            clean = score(CLEAN_KEY, clean_logits)
            if self.attacks:
                # refused where gradient attacks run; the report's gradient check either way
                result.clean_gradient = checked_input_gradient(
                    model,
                    images,
                    labels,
                    f"the model on the clean images of chunk {chunk_id}",
                    required=not all(entry.gradient_free for entry in self.attacks),
                )
            for entry in self.attacks:
                for eps in entry.eps:
                    key = entry.key(eps)
                    seed_name = entry.seed_name(eps)
                    generator = make_generator(stable_seed(seed, seed_name, chunk_id), device)
                    adversarial = entry.attack(model, images, labels, eps=eps, generator=generator)
                    correct = score(key, self._logits(model, adversarial))
                    result.perturbations[key] = (adversarial - images, clean & ~correct)
            for search in self.minimal_eps:
                generator = make_generator(stable_seed(seed, search.key, chunk_id), device)
                found = search.search(model, images, labels, generator=generator)
                result.minimal_eps[search.label] = found.min_eps
                if on_test is not None:
                    on_test(search.key)
            for name, corruption in self.corruptions.items():
                for severity in self.severities:
                    key = self.corruption_key(name, severity)
                    generator = make_generator(stable_seed(seed, key, chunk_id), device)
                    corrupted = corruption(images, severity, generator)
                    if chunk_id == 0 and corruption.pixel_lengths:
                        check_corruption_changes(corrupted, images, name, severity)
                    score(key, self._logits(model, corrupted))
        flags = torch.stack(list(finite.values())).tolist()  # one host synchronisation
        broken = [key for key, ok in zip(finite, flags) if not ok]
        if broken:
            raise NonFiniteError(
                f"the model's logits are NaN or infinite under {', '.join(broken[:3])}"
                f"{' and others' if len(broken) > 3 else ''} (chunk {chunk_id}): the model is "
                "numerically unstable there, so its accuracy under these tests is undefined and "
                "no robustness is reported"
            )
        return result


def suites_dir() -> Path:
    """The folder of the named suites: ``$ROBUSTART_SUITES`` if set, else ``robustart/suites/``
    of an installed wheel (package data), else ``recipes/suites/`` of the source tree."""
    env = os.environ.get("ROBUSTART_SUITES")
    if env:
        return Path(env).expanduser()
    package = Path(__file__).resolve().parents[1]  # the robustart package folder
    installed = package / "suites"
    return installed if installed.is_dir() else package.parent / "recipes" / "suites"


def suite_names() -> list[str]:
    """Names of the shipped suites (``epoch_end``, ``autoattack_linf``, ...)."""
    folder = suites_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


_SUITE_KEYS = ("attacks", "corruptions", "severities", "minimal_eps")
#: Sections of a suite that only ``robustart benchmark`` runs (system noise and on-disk sets,
#: see :mod:`robustart.evaluation.benchmark`); other evaluations warn that they skip them.
BENCHMARK_ONLY_KEYS = ("system_noise", "shift")


def load_suite(spec: str | os.PathLike | dict[str, Any]) -> RobustnessSuite:
    """Build a :class:`RobustnessSuite` from a name, a YAML file or a mapping.

    Args:
        spec: A shipped suite's name (see :func:`suite_names`), the path of a YAML file, or a
            mapping with the keys ``attacks``, ``corruptions``, ``severities`` and
            ``minimal_eps`` (all optional).

    Raises:
        ConfigError: for an unknown name, a missing or malformed file, or unknown keys.

    Example:
        >>> load_suite("epoch_end").keys()[1]
        'robust/pgd10_linf/eps=2_255'
    """
    if isinstance(spec, dict):
        data, source = spec, "the suite mapping"
    else:
        text = str(spec)
        path = Path(text)
        if not path.suffix and not path.exists():
            path = suites_dir() / f"{text}.yaml"
            if not path.is_file():
                known = ", ".join(suite_names()) or "none found in " + str(suites_dir())
                raise ConfigError(
                    f"unknown robustness suite {text!r}; give a YAML file or one of: {known}"
                )
        data = read_yaml_file(path, "robustness suite file", mapping=False)
        source = str(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a mapping with keys {', '.join(_SUITE_KEYS)}")
    benchmark_only = sorted(set(data) & set(BENCHMARK_ONLY_KEYS))
    if benchmark_only:
        warnings.warn(
            f"{source}: {', '.join(benchmark_only)} run only in `robustart benchmark`; this "
            "evaluation runs the suite's attacks, corruptions and minimal-ε searches",
            RobustartWarning,
            stacklevel=2,
        )
    unknown = sorted(set(data) - set(_SUITE_KEYS) - set(BENCHMARK_ONLY_KEYS))
    if unknown:
        raise ConfigError(
            f"{source} has unknown keys {unknown}; a suite has {', '.join(_SUITE_KEYS)}"
        )
    kwargs = {k: data[k] for k in _SUITE_KEYS if k in data}
    return RobustnessSuite(**kwargs)
