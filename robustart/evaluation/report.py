"""The result of a robustness evaluation, its metric names and its sanity checks.

Metric names, the same for every logger (CSV, W&B, ``trainer.callback_metrics``):

* ``robust/clean``: clean accuracy on the evaluation subset,
* ``robust/<attack label>/eps=<ε>``: robust accuracy over all images; the label states the
  iterations and restarts (``pgd10_linf``, ``apgd_ce100_linf``, ``square5000_linf``), ε is
  written ``8_255`` (read 8/255) for L∞ multiples of 1/255, else as a decimal; names carry no
  ``/`` inside a value, so W&B groups them by section (the first part) and attack,
* ``robust_ar/<label>/eps=<ε>``: AR, robust accuracy over the clean-correct images (RobustART),
* ``attack_success/<label>/eps=<ε>``: attack success rate (1 − AR),
* ``robust/worst_case_<norm>/eps=<ε>``: WCAR, images correct under every attack of that norm
  and budget (when the suite has two or more),
* ``corruption/<name>/<severity>``, ``corruption/<name>/mean`` and ``corruption/mean``
  (accuracies; the callback adds ``corruption/category/<category>`` and, in percent, the
  section ``corruption_error/``: ``mce``, ``relative_mce``, ``unnormalized_mce``, ``<name>``),
* ``minimal_eps/<label>/mean`` and ``minimal_eps/<label>/median``: mean and median per-image
  minimal ε of a minimal-ε search, over the images it broke within ``eps_max`` (NaN if none),
  in the search's norm; ``minimal_eps/<label>/median_all``: the median over all images
  (misclassified ones count 0, unbroken ones ``inf``), the smallest budget at which robust
  accuracy is at most 50 % (``inf`` when half the images survive ``eps_max``; the leaderboard
  ranks by it); ``minimal_eps_unbroken/<label>``: the fraction of all images it did not break
  within ``eps_max``,
* with the callback's ``certification`` option (randomized smoothing), ``certified/r=<r>``
  (certified ℓ2 accuracy at radius ``r``, written ``%g``), ``certified/abstention_rate``,
  ``certified/guess_accuracy`` and ``certified/smoothed_accuracy`` (see
  :meth:`robustart.evaluation.certification.CertificationResult.metrics`).

Accuracies and fractions are in [0, 1] (one unit per section; corruption errors, in percent,
have their own section); printed tables show percentages. At test time every section gets the
prefix ``test_`` (``test_robust/clean``, ``test_corruption/mean``), so the test results form
sections of their own beside Lightning's ``test/acc``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from robustart.errors import ConfigError, EmptyInputError, InputRangeError
from robustart.evaluation.suite import CLEAN_KEY, RobustnessSuite
from robustart.utils import eps_key

#: What each minimal-ε search reports (see
#: :func:`~robustart.metrics.robustness.minimal_eps_statistics`).
MINIMAL_EPS_STATISTICS = ("mean", "median", "unbroken", "median_all")

#: Share of images with an all-zero CE input gradient above which a warning is raised.
ZERO_GRADIENT_WARNING = 0.1


@dataclass
class RobustnessReport:
    """Accuracies of one model on one evaluation subset.

    Attributes:
        num_images: Images evaluated.
        clean: Clean accuracy.
        attacks: ``{label: {eps: robust accuracy}}``.
        attack_settings: ``{label: settings}`` (norm, steps, restarts, ...), to be reported with
            every number.
        corruptions: ``{name: {severity: accuracy}}``.
        ar: ``{label: {eps: AR}}`` (robust accuracy over the clean-correct images).
        worst_case: ``{metric name: WCAR}``.
        distortion: ``{label: {eps: {"linf_mean", "linf_median", "l2_mean", "l2_median"}}}``
            over successful points.
        gradient_check: Fractions of images with all-zero / non-finite CE input gradients.
        minimal_eps: ``{label: {"mean", "median", "unbroken", "median_all"}}`` of every
            minimal-ε search (mean and median ``None`` when no image was broken, median_all
            ``inf`` when half the images or more were not).
        minimal_eps_settings: ``{label: settings}`` of every minimal-ε search (attack, norm,
            eps_max, grid, bisection steps, ...).
        image_size: ``(height, width)`` of the evaluated images (``None``: not recorded). It
            decides whether AlexNet's ImageNet-C errors may normalise the corruption errors
            (:func:`~robustart.metrics.corruption.summarize_report`).
    """

    num_images: int
    clean: float
    attacks: dict[str, dict[float, float]] = field(default_factory=dict)
    attack_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    corruptions: dict[str, dict[int, float]] = field(default_factory=dict)
    ar: dict[str, dict[float, float]] = field(default_factory=dict)
    worst_case: dict[str, float] = field(default_factory=dict)
    distortion: dict[str, dict[float, dict[str, float | None]]] = field(default_factory=dict)
    gradient_check: dict[str, float] = field(default_factory=dict)
    minimal_eps: dict[str, dict[str, float | None]] = field(default_factory=dict)
    minimal_eps_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        """Refuse a report no evaluation can produce: fewer than one image, or accuracies that
        are not fractions in [0, 1] (percentages, NaN between two budgets), which every
        summary, sanity check and figure would otherwise take at face value.

        Raises:
            EmptyInputError: ``num_images`` below 1.
            InputRangeError: an accuracy outside [0, 1] (the clean one may be NaN: not
                measured).
        """
        if isinstance(self.num_images, bool) or not isinstance(self.num_images, int):
            raise InputRangeError(
                f"RobustnessReport: num_images must be an integer, got {self.num_images!r}"
            )
        if self.num_images < 1:
            raise EmptyInputError(
                f"RobustnessReport of {self.num_images} images: a report needs at least one "
                "evaluated image"
            )
        values = [("clean", self.clean, True)]
        values += [
            (f"{label} at eps={eps:g}", acc, False)
            for label, curve in self.attacks.items()
            for eps, acc in curve.items()
        ]
        values += [
            (f"{name} at severity {severity}", acc, False)
            for name, curve in self.corruptions.items()
            for severity, acc in curve.items()
        ]
        values += [(name, acc, False) for name, acc in self.worst_case.items()]
        for what, value, may_be_nan in values:
            number = float(value) if isinstance(value, (int, float)) else math.nan
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputRangeError(
                    f"RobustnessReport: the accuracy {what} must be a number, got {value!r}"
                )
            if math.isnan(number) and may_be_nan:
                continue
            if not 0.0 <= number <= 1.0:
                hint = " (a percentage? give fractions)" if 1 < number <= 100 else ""
                raise InputRangeError(
                    f"RobustnessReport: the accuracy {what} is {value!r}; accuracies are "
                    f"fractions in [0, 1]{hint}"
                )

    @classmethod
    def from_metrics(
        cls,
        suite: RobustnessSuite,
        counts: dict[str, dict[str, float]],
        distortion: dict[str, dict[str, float | None]] | None = None,
        gradient_check: dict[str, float] | None = None,
        minimal_eps: dict[str, dict[str, float | None]] | None = None,
        image_size: tuple[int, int] | None = None,
    ) -> RobustnessReport:
        """Build a report from the computed metrics of :mod:`robustart.metrics.robustness`.

        Args:
            suite: The suite that was run.
            counts: :class:`~robustart.metrics.robustness.RobustnessCounts` output.
            distortion: :class:`~robustart.metrics.robustness.PerturbationNorms` output.
            gradient_check: :class:`~robustart.metrics.robustness.GradientHealth` output.
            minimal_eps: :class:`~robustart.metrics.robustness.MinimalEpsilons` output
                ``{label: {"mean", "median", "unbroken", "median_all"}}``; ``None`` leaves the
                suite's minimal-ε searches out of the report.
            image_size: ``(height, width)`` of the evaluated images.
        """
        acc, ar = counts["accuracy"], counts["ar"]
        report = cls(
            num_images=int(counts["count"]["images"]),
            clean=acc[CLEAN_KEY],
            worst_case=dict(counts.get("wcar", {})),
            gradient_check=dict(gradient_check or {}),
            image_size=image_size,
        )
        for entry in suite.attacks:
            report.attacks[entry.label] = {e: acc[entry.key(e)] for e in entry.eps}
            report.ar[entry.label] = {e: ar[entry.key(e)] for e in entry.eps}
            report.attack_settings[entry.label] = {
                k: v for k, v in entry.attack.config.items() if k != "eps"
            }
            if distortion:
                report.distortion[entry.label] = {e: distortion[entry.key(e)] for e in entry.eps}
        for name in suite.corruption_names:
            report.corruptions[name] = {
                s: acc[suite.corruption_key(name, s)] for s in suite.severities
            }
        for entry in suite.minimal_eps if minimal_eps is not None else ():
            report.minimal_eps[entry.label] = dict(minimal_eps[entry.label])
            report.minimal_eps_settings[entry.label] = entry.search.config
        return report

    @classmethod
    def placeholder(
        cls, suite: RobustnessSuite, image_size: tuple[int, int] | None = None
    ) -> RobustnessReport:
        """A report of ``suite`` with made-up values (0.5) in every field: its
        :meth:`metrics` names are every metric an evaluation of the suite logs (to check a
        checkpoint's ``monitor`` before anything runs). ``image_size`` (height, width) of the
        evaluated images decides which corruption errors exist (``None``: all)."""
        keys = suite.keys()
        counts = {
            "accuracy": dict.fromkeys(keys, 0.5),
            "ar": dict.fromkeys(keys, 0.5),
            "count": {"images": 1},
            "wcar": dict.fromkeys(suite.worst_case_groups(), 0.5),
        }
        statistics = dict.fromkeys(MINIMAL_EPS_STATISTICS, 0.5)
        minimal_eps = {entry.label: statistics for entry in suite.minimal_eps}
        return cls.from_metrics(suite, counts, minimal_eps=minimal_eps, image_size=image_size)

    @classmethod
    def from_counts(
        cls, suite: RobustnessSuite, correct: list[float], total: int
    ) -> RobustnessReport:
        """Build a report from plain correct counts in ``suite.keys()`` order (no AR).

        Raises:
            EmptyInputError: ``total`` is not a positive count (no accuracy over zero images).
        """
        if total <= 0:
            raise EmptyInputError(
                f"a robustness report over {total} images: nothing was evaluated, so no "
                "accuracy is reported; check the dataset split and num_images"
            )
        keys = suite.keys()
        counts = {
            "accuracy": {k: c / total for k, c in zip(keys, correct)},
            "ar": {k: float("nan") for k in keys},
            "count": {"images": total},
        }
        report = cls.from_metrics(suite, counts)
        report.ar = {}
        return report

    def corruption_means(self) -> dict[str, float]:
        """Mean accuracy over severities, per corruption."""
        return {n: sum(v.values()) / len(v) for n, v in self.corruptions.items() if v}

    def corruption_mean(self) -> float | None:
        """Mean accuracy over every corruption × severity pair (RobustBench's CIFAR-10-C
        score); ``None`` without corruptions."""
        values = [a for per_severity in self.corruptions.values() for a in per_severity.values()]
        return sum(values) / len(values) if values else None

    def _norm(self, label: str) -> str:
        return self.attack_settings.get(label, {}).get("norm", "linf")

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat ``{name: value}`` with the names of the module docstring."""
        out = {f"{prefix}{CLEAN_KEY}": self.clean}
        for label, curve in self.attacks.items():
            for eps, acc in curve.items():
                suffix = f"{label}/eps={eps_key(eps, self._norm(label))}"
                out[f"{prefix}robust/{suffix}"] = acc
                if label in self.ar:
                    out[f"{prefix}robust_ar/{suffix}"] = self.ar[label][eps]
                    out[f"{prefix}attack_success/{suffix}"] = 1.0 - self.ar[label][eps]
        for name, value in self.worst_case.items():
            out[f"{prefix}{name}"] = value
        for name, curve in self.corruptions.items():
            for severity, acc in curve.items():
                out[f"{prefix}corruption/{name}/{severity}"] = acc
        for name, mean in self.corruption_means().items():
            out[f"{prefix}corruption/{name}/mean"] = mean
        mean = self.corruption_mean()
        if mean is not None:
            out[f"{prefix}corruption/mean"] = mean
        for label, statistics in self.minimal_eps.items():
            for name, value in statistics.items():
                key = (  # ε in its own section, the unbroken fraction in another
                    f"{prefix}minimal_eps_unbroken/{label}"
                    if name == "unbroken"
                    else f"{prefix}minimal_eps/{label}/{name}"
                )
                out[key] = math.nan if value is None else value
        return out

    def sanity_warnings(self) -> list[str]:
        """The checks careful evaluators run by hand (Carlini et al., 2019), as messages.

        ε = 0 must give clean accuracy; accuracy must not rise with ε; iterative attacks must
        be at least as strong as FGSM; a gradient-free attack must not beat the gradient-based
        ones; input gradients must not be zero or non-finite. Any failure hints at a weak or
        misconfigured attack or at gradient masking.
        """
        warnings = []
        for label, curve in self.attacks.items():
            points = sorted(curve.items())
            for eps, acc in points:
                if eps == 0 and acc != self.clean:
                    warnings.append(
                        f"{label}: accuracy at eps=0 is {acc:.4f}, not the clean "
                        f"accuracy {self.clean:.4f}"
                    )
            for (e1, a1), (e2, a2) in itertools.pairwise(points):
                if a2 > a1:
                    warnings.append(
                        f"{label}: accuracy rises from {a1:.4f} at eps={e1:g} to {a2:.4f} at "
                        f"eps={e2:g}; the attack is not converging (more steps or restarts?) "
                        "or gradients are masked"
                    )
        by_budget: dict[tuple[str, float], dict[str, float]] = {}
        for label, curve in self.attacks.items():
            for eps, acc in curve.items():
                by_budget.setdefault((self._norm(label), eps), {})[label] = acc
        for (norm, eps), accs in by_budget.items():
            kinds = {label: self.attack_settings.get(label, {}).get("attack", "") for label in accs}
            fgsm = [accs[k] for k, a in kinds.items() if a == "fgsm"]
            iterative = {
                k: accs[k]
                for k, a in kinds.items()
                if a not in ("fgsm", "square", "cw", "deepfool", "fab_t", "autoattack")
            }
            black_box = [accs[k] for k, a in kinds.items() if a == "square"]
            white_box = [accs[k] for k, a in kinds.items() if a not in ("square", "autoattack")]
            for label, acc in iterative.items():
                if fgsm and acc > min(fgsm):
                    warnings.append(
                        f"{label} at {norm} eps={eps:g} ({acc:.4f}) is weaker than "
                        f"FGSM ({min(fgsm):.4f}): possible gradient masking"
                    )
            if black_box and white_box and min(black_box) < min(white_box):
                warnings.append(
                    f"the gradient-free square attack at {norm} eps={eps:g} "
                    f"({min(black_box):.4f}) beats every gradient-based attack "
                    f"({min(white_box):.4f}): likely gradient masking"
                )
        zero = self.gradient_check.get("zero_fraction", 0.0)
        if zero > ZERO_GRADIENT_WARNING:
            warnings.append(
                f"{100 * zero:.1f}% of the images have an all-zero CE input gradient (saturated "
                "softmax or gradient masking): CE-based attacks cannot move them; check with "
                "margin/DLR-based attacks (APGD-DLR, APGD-T) or the square attack"
            )
        if self.gradient_check.get("nonfinite_fraction", 0.0) > 0:
            warnings.append(
                "some input gradients are NaN or infinite: the model or its "
                "pre-processing is not differentiable everywhere"
            )
        return warnings

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (budgets and severities become strings)."""

        def by_eps(values: dict) -> dict:
            return {k: {repr(e): a for e, a in v.items()} for k, v in values.items()}

        return {
            "num_images": self.num_images,
            "clean": self.clean,
            "attacks": by_eps(self.attacks),
            "ar": by_eps(self.ar),
            "worst_case": self.worst_case,
            "attack_settings": self.attack_settings,
            "distortion": by_eps(self.distortion),
            "corruptions": {
                k: {str(s): a for s, a in v.items()} for k, v in self.corruptions.items()
            },
            "corruption_mean": self.corruption_mean(),
            "gradient_check": self.gradient_check,
            "minimal_eps": self.minimal_eps,
            "minimal_eps_settings": self.minimal_eps_settings,
            "image_size": None if self.image_size is None else list(self.image_size),
            "warnings": self.sanity_warnings(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RobustnessReport:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: ``data`` is not a report's JSON (a key missing, a value of another
                type), naming what is wrong.
            EmptyInputError, InputRangeError: as the constructor.
        """
        try:
            return cls._from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            if isinstance(error, (ConfigError, InputRangeError)):
                raise
            what = f"the key {error}" if isinstance(error, KeyError) else str(error)
            raise ConfigError(
                f"not a robustart report (RobustnessReport.to_dict): {what} is missing or "
                "malformed. Read reports written by robustart, or rerun the evaluation"
            ) from None

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> RobustnessReport:
        def by_eps(values: dict) -> dict:
            return {k: {float(e): a for e, a in v.items()} for k, v in values.items()}

        return cls(
            num_images=int(data["num_images"]),
            clean=float(data["clean"]),
            attacks=by_eps(data["attacks"]),
            attack_settings=dict(data.get("attack_settings", {})),
            corruptions={
                k: {int(s): a for s, a in v.items()} for k, v in data["corruptions"].items()
            },
            ar=by_eps(data.get("ar", {})),
            worst_case=dict(data.get("worst_case", {})),
            distortion=by_eps(data.get("distortion", {})),
            gradient_check=dict(data.get("gradient_check", {})),
            minimal_eps={k: dict(v) for k, v in data.get("minimal_eps", {}).items()},
            minimal_eps_settings=dict(data.get("minimal_eps_settings", {})),
            image_size=tuple(data["image_size"]) if data.get("image_size") else None,
        )
