"""The result of a robustness evaluation and its metric names.

Metric names, the same for every logger (CSV, W&B, ``trainer.callback_metrics``):

* ``robust/clean``: clean accuracy on the evaluation subset,
* ``robust/<attack label>/eps=<ε>``: accuracy under attack over all images (ε written as
  ``8/255`` for L∞ multiples of 1/255, else as a decimal),
* ``corruption/<name>/<severity>`` and ``corruption/<name>/mean`` per corruption,
* ``corruption/mean``: mean accuracy over all corruption × severity pairs.

Accuracies are fractions in [0, 1]; printed tables show percentages. At test time every name
gets the prefix ``test/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robustart.evaluation.suite import CLEAN_KEY, RobustnessSuite
from robustart.utils import format_eps


@dataclass
class RobustnessReport:
    """Accuracies of one model on one evaluation subset.

    Attributes:
        num_images: Images evaluated.
        clean: Clean accuracy.
        attacks: ``{label: {eps: accuracy}}``.
        attack_settings: ``{label: settings}`` (norm, steps, restarts, ...), to be reported with
            every number.
        corruptions: ``{name: {severity: accuracy}}``.
    """

    num_images: int
    clean: float
    attacks: dict[str, dict[float, float]] = field(default_factory=dict)
    attack_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    corruptions: dict[str, dict[int, float]] = field(default_factory=dict)

    @classmethod
    def from_counts(
        cls, suite: RobustnessSuite, correct: list[float], total: int
    ) -> RobustnessReport:
        """Build a report from per-key correct counts (in ``suite.keys()`` order)."""
        acc = dict(zip(suite.keys(), (c / max(total, 1) for c in correct)))
        report = cls(num_images=int(total), clean=acc[CLEAN_KEY])
        for entry in suite.attacks:
            report.attacks[entry.label] = {e: acc[entry.key(e)] for e in entry.eps}
            report.attack_settings[entry.label] = {
                k: v for k, v in entry.attack.config.items() if k != "eps"
            }
        for name in suite.corruption_names:
            report.corruptions[name] = {
                s: acc[suite.corruption_key(name, s)] for s in suite.severities
            }
        return report

    def corruption_means(self) -> dict[str, float]:
        """Mean accuracy over severities, per corruption."""
        return {n: sum(v.values()) / len(v) for n, v in self.corruptions.items() if v}

    def corruption_mean(self) -> float | None:
        """Mean accuracy over every corruption × severity pair (RobustBench's CIFAR-10-C
        score); ``None`` without corruptions."""
        values = [a for per_severity in self.corruptions.values() for a in per_severity.values()]
        return sum(values) / len(values) if values else None

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat ``{name: accuracy}`` with the names of the module docstring."""
        out = {f"{prefix}{CLEAN_KEY}": self.clean}
        for label, curve in self.attacks.items():
            norm = self.attack_settings.get(label, {}).get("norm", "linf")
            for eps, acc in curve.items():
                out[f"{prefix}robust/{label}/eps={format_eps(eps, norm)}"] = acc
        for name, curve in self.corruptions.items():
            for severity, acc in curve.items():
                out[f"{prefix}corruption/{name}/{severity}"] = acc
        for name, mean in self.corruption_means().items():
            out[f"{prefix}corruption/{name}/mean"] = mean
        mean = self.corruption_mean()
        if mean is not None:
            out[f"{prefix}corruption/mean"] = mean
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (budgets and severities become strings)."""
        return {
            "num_images": self.num_images,
            "clean": self.clean,
            "attacks": {k: {repr(e): a for e, a in v.items()} for k, v in self.attacks.items()},
            "attack_settings": self.attack_settings,
            "corruptions": {
                k: {str(s): a for s, a in v.items()} for k, v in self.corruptions.items()
            },
            "corruption_mean": self.corruption_mean(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RobustnessReport:
        """Inverse of :meth:`to_dict`."""
        return cls(
            num_images=int(data["num_images"]),
            clean=float(data["clean"]),
            attacks={k: {float(e): a for e, a in v.items()} for k, v in data["attacks"].items()},
            attack_settings=dict(data.get("attack_settings", {})),
            corruptions={
                k: {int(s): a for s, a in v.items()} for k, v in data["corruptions"].items()
            },
        )
