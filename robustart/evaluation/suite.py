"""Robustness suites: which attacks (at which budgets) and corruptions (at which severities).

A suite is plain data, written in YAML::

    attacks:
      - {name: pgd, norm: linf, eps: [2/255, 4/255, 8/255], steps: 10}
      - {name: fgsm, eps: [8/255], label: fgsm_linf}
    corruptions: [gaussian_noise, contrast]     # or "all"
    severities: [1, 2, 3, 4, 5]

Every entry is validated when the suite is built (unknown names, bad budgets, settings an
attack does not accept), so a typo fails at start-up, not after an epoch of training.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustart.attacks import Attack, create_attack
from robustart.corruptions import CORRUPTIONS, check_severity, create_corruption
from robustart.corruptions.base import Corruption
from robustart.errors import ConfigError, NonFiniteError
from robustart.utils import (
    check_finite_logits,
    check_labels,
    format_eps,
    make_generator,
    parse_eps,
    preserve_mode,
    read_yaml_file,
    stable_seed,
)

#: The cheap default for epoch-end evaluation: PGD-10 (L∞) at three budgets.
#: Attack labels in metric names state iterations and restarts (``pgd10_linf``).
DEFAULT_ATTACKS: list[dict[str, Any]] = [
    {"name": "pgd", "norm": "linf", "eps": ["2/255", "4/255", "8/255"], "steps": 10},
]

CLEAN_KEY = "robust/clean"


@dataclass
class AttackEntry:
    """One attack of a suite, evaluated at each budget of ``eps``."""

    label: str
    attack: Attack
    eps: tuple[float, ...]

    def key(self, eps: float) -> str:
        return f"robust/{self.label}/eps={format_eps(eps, self.attack.norm)}"

    @property
    def gradient_free(self) -> bool:
        return self.attack.name == "square"


@dataclass
class BatchResult:
    """What one batch of a suite produced."""

    #: ``{key: correct (N,) bool}`` for every test.
    correct: dict[str, Tensor]
    #: ``{attack key: (perturbation (N, C, H, W), success (N,) bool)}``.
    perturbations: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    #: Input gradient of the CE loss on the clean images (N, C, H, W), if attacks ran.
    clean_gradient: Tensor | None = None


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
        label = spec.pop("label", None)
        attack = create_attack(name, eps=eps[0], **spec)
        label = label or attack.label
        if any(e.label == label for e in entries):
            raise ConfigError(f"two attacks share the label {label!r}: give one a 'label'")
        entries.append(AttackEntry(label, attack, eps))
    return entries


def parse_corruptions(names: Sequence[str] | str | None) -> list[str]:
    """Corruption names of a suite; ``"all"`` means every registered corruption."""
    if names is None:
        return []
    if isinstance(names, str):
        if names == "all":
            return CORRUPTIONS.names()
        names = [names]
    for name in names:
        CORRUPTIONS.get(name)  # raises with close matches
    if len(set(names)) != len(names):
        raise ConfigError(f"corruptions are listed twice: {list(names)}")
    return list(names)


class RobustnessSuite:
    """A set of robustness tests run on the same images.

    Args:
        attacks: Attack dictionaries (see :func:`parse_attacks`); ``None`` → none.
        corruptions: Corruption names or ``"all"``; ``None`` → none.
        severities: Severities of each corruption (1..5).

    Example:
        >>> suite = RobustnessSuite(attacks=DEFAULT_ATTACKS, corruptions=["contrast"])
        >>> suite.keys()[:2]
        ['robust/clean', 'robust/pgd10_linf/eps=2/255']
    """

    def __init__(
        self,
        attacks: Sequence[dict[str, Any]] | None = None,
        corruptions: Sequence[str] | str | None = None,
        severities: Sequence[int] = (1, 2, 3, 4, 5),
    ) -> None:
        self.attacks = parse_attacks(attacks)
        self.corruption_names = parse_corruptions(corruptions)
        self.corruptions: dict[str, Corruption] = {
            n: create_corruption(n) for n in self.corruption_names
        }
        for corruption in self.corruptions.values():
            corruption.check_available()  # missing files fail now, not after the attacks
        self.severities = tuple(check_severity(s) for s in severities)
        if self.corruption_names and not self.severities:
            raise ConfigError("severities is empty but corruptions are listed")

    @staticmethod
    def corruption_key(name: str, severity: int) -> str:
        return f"corruption/{name}/{severity}"

    def keys(self) -> list[str]:
        """Metric keys of every test in the order they run."""
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
                name = f"robust/worst_case_{norm}/eps={format_eps(eps, norm)}"
                groups.setdefault(name, []).append(entry.key(eps))
        return {k: v for k, v in groups.items() if len(v) > 1}

    @staticmethod
    @torch.no_grad()
    def _logits(model: nn.Module, images: Tensor) -> Tensor:
        return model(images)

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
            A :class:`BatchResult` with the correctness of every key of :meth:`keys`.
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

        with preserve_mode(model, False):
            clean_logits = self._logits(model, images)
            check_finite_logits(
                clean_logits, f"the model's logits on the clean images of chunk {chunk_id}"
            )
            check_labels(labels, len(images), clean_logits.shape[1])
            clean = score(CLEAN_KEY, clean_logits)
            if self.attacks:
                result.clean_gradient = self._clean_gradient(model, images, labels)
            for entry in self.attacks:
                for eps in entry.eps:
                    key = entry.key(eps)
                    generator = make_generator(stable_seed(seed, key, chunk_id), device)
                    adversarial = entry.attack(model, images, labels, eps=eps, generator=generator)
                    correct = score(key, self._logits(model, adversarial))
                    result.perturbations[key] = (adversarial - images, clean & ~correct)
            for name, corruption in self.corruptions.items():
                for severity in self.severities:
                    key = self.corruption_key(name, severity)
                    generator = make_generator(stable_seed(seed, key, chunk_id), device)
                    corrupted = corruption(images, severity, generator)
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

    @staticmethod
    def _clean_gradient(model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
        with torch.inference_mode(False), torch.enable_grad():
            x = images.detach().clone().requires_grad_(True)
            loss = F.cross_entropy(model(x).float(), labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
        return grad


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


_SUITE_KEYS = ("attacks", "corruptions", "severities")


def load_suite(spec: str | os.PathLike | dict[str, Any]) -> RobustnessSuite:
    """Build a :class:`RobustnessSuite` from a name, a YAML file or a mapping.

    Args:
        spec: A shipped suite's name (see :func:`suite_names`), the path of a YAML file, or a
            mapping with the keys ``attacks``, ``corruptions`` and ``severities`` (all optional).

    Raises:
        ConfigError: for an unknown name, a missing or malformed file, or unknown keys.

    Example:
        >>> load_suite("epoch_end").keys()[1]
        'robust/pgd10_linf/eps=2/255'
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
    unknown = sorted(set(data) - set(_SUITE_KEYS))
    if unknown:
        raise ConfigError(
            f"{source} has unknown keys {unknown}; a suite has {', '.join(_SUITE_KEYS)}"
        )
    kwargs = {k: data[k] for k in _SUITE_KEYS if k in data}
    return RobustnessSuite(**kwargs)
