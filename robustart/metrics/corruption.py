"""Common-corruption scores: CE, mCE, relative mCE, unnormalised mCE, mean accuracy.

Inputs are top-1 *errors* (or accuracies) as fractions in [0, 1], keyed by corruption name and
severity: ``{"gaussian_noise": {1: 0.31, 2: 0.42, ...}, ...}``. Following the published
convention (Hendrycks & Dietterich, 2019), the mCE family is returned as a percentage (a
ResNet-50 has an mCE of about 76.7); accuracies stay fractions like everywhere in robustart.

Every per-corruption constant is keyed by name; the order of a list of names never matters.

Definitions, with ``E(f, c, s)`` the error of model ``f`` on corruption ``c`` at severity ``s``:

* ``CE(f, c) = Σ_s E(f, c, s) / Σ_s E(AlexNet, c, s)``
* ``mCE = 100 · mean_c CE(f, c)`` over the 15 benchmark corruptions
* ``relative CE(f, c) = Σ_s (E(f, c, s) − E(f, clean)) / Σ_s (E(AlexNet, c, s) − E(AlexNet,
  clean))`` and relative mCE its mean (×100)
* unnormalised mCE = ``100 · mean_{c, s} E(f, c, s)`` (RobustART, CIFAR work)
* mean corruption accuracy = ``mean_{c, s} accuracy`` (RobustBench's CIFAR-10-C score)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from robustart.corruptions.base import (
    BENCHMARK_CORRUPTIONS,
    CORRUPTION_CATEGORIES,
    CORRUPTIONS,
    SEVERITIES,
    table_for_size,
)
from robustart.errors import ConfigError, EmptyInputError
from robustart.metrics.checks import check_fraction

if TYPE_CHECKING:  # the evaluation package may import these metrics: no import cycle
    from robustart.evaluation.report import RobustnessReport

#: ``{corruption: {severity: value}}``: errors or accuracies as fractions.
CorruptionTable = Mapping[str, Mapping[int, float]]

_ALEXNET_ROWS: dict[str, tuple[float, float, float, float, float]] = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
    "speckle_noise": (0.66192, 0.74440, 0.90246, 0.94548, 0.97268),
    "gaussian_blur": (0.54732, 0.70444, 0.82574, 0.89864, 0.95940),
    "spatter": (0.47196, 0.62194, 0.75052, 0.84132, 0.90182),
    "saturate": (0.59342, 0.65514, 0.51174, 0.70834, 0.82260),
}

#: Top-1 error of AlexNet on ImageNet-C, ``{corruption: {severity: error}}`` (fractions), for all
#: 19 corruptions. Keyed by name: never index it by position in a list of corruptions.
ALEXNET_ERRORS: dict[str, dict[int, float]] = {
    name: dict(zip(SEVERITIES, row)) for name, row in _ALEXNET_ROWS.items()
}
#: Clean top-1 error of torchvision's AlexNet on ImageNet (fraction).
ALEXNET_CLEAN_ERROR = 0.43478


def _check_curve(values: Mapping[int, float], what: str) -> dict[int, float]:
    """Validate ``{severity: fraction}`` and return it with int keys."""
    if not values:
        raise ConfigError(f"{what} has no severities")
    out = {}
    for severity, value in values.items():
        # an integer, or its decimal string (JSON keys); 1.5, "01" or True would be read as
        # another severity (int(1.5) == 1) and overwrite it
        integral = isinstance(severity, numbers.Integral) and not isinstance(severity, bool)
        canonical = (
            isinstance(severity, str) and severity.isdigit() and severity == str(int(severity))
        )
        if not (integral or canonical) or int(severity) not in SEVERITIES:
            raise ConfigError(f"{what}: severity must be an integer 1..5, got {severity!r}")
        if int(severity) in out:
            raise ConfigError(f"{what}: severity {int(severity)} is given twice")
        out[int(severity)] = check_fraction(value, f"{what} at severity {severity}")
    return out


def _baseline_errors(
    baseline: CorruptionTable, name: str, severities: Iterable[int]
) -> list[float]:
    """The baseline's errors on ``name`` at ``severities``, each a fraction in [0, 1]."""
    if name not in baseline:
        raise ConfigError(
            f"no baseline errors for corruption {name!r}; the baseline knows "
            f"{', '.join(sorted(baseline))}"
        )
    row = baseline[name]
    severities = list(severities)
    missing = [s for s in severities if s not in row]
    if missing:
        raise ConfigError(f"the baseline has no error for {name} at severities {missing}")
    return [
        check_fraction(row[s], f"the baseline's error on {name} at severity {s}")
        for s in severities
    ]


def accuracies_to_errors(accuracies: CorruptionTable) -> dict[str, dict[int, float]]:
    """``{c: {s: 1 - accuracy}}``."""
    return {
        name: {
            s: 1.0 - check_fraction(a, f"accuracy of {name} at severity {s}") for s, a in v.items()
        }
        for name, v in accuracies.items()
    }


def corruption_error(
    name: str, errors: Mapping[int, float], baseline: CorruptionTable = ALEXNET_ERRORS
) -> float:
    """Baseline-normalised corruption error CE of one corruption (a ratio, 1.0 = baseline).

    Sums run over the severities present in ``errors``; the baseline is summed over the same
    severities, so a partial curve is compared like with like.

    Args:
        name: Corruption name (key of ``baseline``).
        errors: ``{severity: top-1 error}`` of the model, fractions in [0, 1].
        baseline: ``{corruption: {severity: error}}`` of the reference model (AlexNet),
            fractions in [0, 1].

    Raises:
        ConfigError: an error of the model or of the baseline is not a finite fraction in
            [0, 1], a severity is not 1..5 or lacks a baseline error, or the baseline's errors
            sum to 0 (nothing to normalise by).

    Example:
        >>> round(corruption_error("gaussian_noise", {s: 0.5 for s in range(1, 6)}), 6)
        0.564062
    """
    curve = _check_curve(errors, f"errors of {name}")
    denominator = sum(_baseline_errors(baseline, name, curve))
    if denominator <= 0:
        raise ConfigError(
            f"the baseline's errors on {name} are 0 at severities {sorted(curve)}: no CE can be "
            "normalised by them; choose another baseline model"
        )
    return sum(curve.values()) / denominator


def relative_corruption_error(
    name: str,
    errors: Mapping[int, float],
    clean_error: float,
    baseline: CorruptionTable = ALEXNET_ERRORS,
    baseline_clean_error: float | None = None,
) -> float:
    """Relative CE: the error *increase* over clean, normalised by the baseline's increase.

    ``Σ_s (E(f, c, s) − E(f, clean)) / Σ_s (E(base, c, s) − E(base, clean))`` over the severities
    present in ``errors``.

    Args:
        name: Corruption name (key of ``baseline``).
        errors: ``{severity: top-1 error}`` of the model, fractions in [0, 1].
        clean_error: Clean top-1 error of the model, a fraction in [0, 1].
        baseline: ``{corruption: {severity: error}}`` of the reference model (AlexNet),
            fractions in [0, 1].
        baseline_clean_error: Clean top-1 error of the reference model, a fraction in [0, 1];
            AlexNet's by default, required with another ``baseline``.

    Raises:
        ConfigError: an error is not a finite fraction in [0, 1], a severity is not 1..5 or
            lacks a baseline error, the baseline's corruption errors do not exceed its clean
            error (the denominator is ≤ 0), or another baseline comes without its clean error
            (AlexNet's would be paired with it).
    """
    curve = _check_curve(errors, f"errors of {name}")
    clean = check_fraction(clean_error, "clean_error")
    baseline_clean = check_fraction(
        _baseline_clean_error(baseline, baseline_clean_error), "baseline_clean_error"
    )
    denominator = sum(e - baseline_clean for e in _baseline_errors(baseline, name, curve))
    if denominator <= 0:
        raise ConfigError(f"the baseline's error on {name} does not exceed its clean error")
    return sum(e - clean for e in curve.values()) / denominator


def missing_pairs(
    table: CorruptionTable,
    corruptions: Iterable[str] = BENCHMARK_CORRUPTIONS,
    severities: Iterable[int] = SEVERITIES,
) -> list[str]:
    """Human-readable list of what ``table`` lacks among ``corruptions × severities``.

    Example:
        >>> missing_pairs({"fog": {1: 0.1}}, ["fog", "snow"], [1, 2])
        ['fog (severity 2)', 'snow']
    """
    severities = list(severities)
    out = []
    for name in corruptions:
        if name not in table or not table[name]:
            out.append(name)
            continue
        absent = [s for s in severities if s not in table[name]]
        if absent:
            label = "severity" if len(absent) == 1 else "severities"
            out.append(f"{name} ({label} {', '.join(map(str, absent))})")
    return out


def _require_complete(table: CorruptionTable, corruptions: Sequence[str], what: str) -> None:
    if isinstance(corruptions, str) or not corruptions:
        raise EmptyInputError(
            f"{what} needs a list of corruptions to average over, got {corruptions!r}"
        )
    repeated = sorted({c for c in corruptions if list(corruptions).count(c) > 1})
    if repeated:
        raise ConfigError(
            f"{what}: corruptions listed more than once would weigh double: {', '.join(repeated)}"
        )
    missing = missing_pairs(table, corruptions)
    if missing:
        raise ConfigError(
            f"{what} needs all {len(corruptions)} corruptions at severities 1-5; missing: "
            f"{'; '.join(missing)}. Evaluate them, or pass `corruptions=` to average a named "
            "subset explicitly."
        )


def mean_corruption_error(
    errors: CorruptionTable,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
    baseline: CorruptionTable = ALEXNET_ERRORS,
) -> float:
    """mCE (percent): ``100 · mean_c CE(f, c)`` over ``corruptions`` (default: the 15).

    Raises:
        ConfigError: if any corruption × severity pair is missing (named in the message);
            a subset is never averaged silently.
    """
    _require_complete(errors, corruptions, "mCE")
    ces = [corruption_error(name, errors[name], baseline) for name in corruptions]
    return 100.0 * sum(ces) / len(ces)


def relative_mean_corruption_error(
    errors: CorruptionTable,
    clean_error: float,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
    baseline: CorruptionTable = ALEXNET_ERRORS,
    baseline_clean_error: float | None = None,
) -> float:
    """Relative mCE (percent): ``100 · mean_c relative CE(f, c)`` over ``corruptions``; a
    ``baseline`` other than AlexNet's needs its ``baseline_clean_error``
    (:func:`relative_corruption_error`)."""
    _require_complete(errors, corruptions, "relative mCE")
    baseline_clean_error = _baseline_clean_error(baseline, baseline_clean_error)
    values = [
        relative_corruption_error(n, errors[n], clean_error, baseline, baseline_clean_error)
        for n in corruptions
    ]
    return 100.0 * sum(values) / len(values)


def _baseline_clean_error(baseline: CorruptionTable, clean_error: float | None) -> float:
    """The baseline's clean error: AlexNet's for AlexNet's table, else the one given."""
    if clean_error is not None:
        return clean_error
    if baseline is ALEXNET_ERRORS or baseline == ALEXNET_ERRORS:
        return ALEXNET_CLEAN_ERROR
    raise ConfigError(
        "a relative corruption error against another baseline than AlexNet needs that "
        "baseline's clean error (baseline_clean_error); AlexNet's "
        f"({ALEXNET_CLEAN_ERROR:.4f}) would be paired with the other model's corruption errors"
    )


def _pair_values(table: CorruptionTable, what: str) -> list[float]:
    values = [
        value
        for name, curve in table.items()
        if curve
        for value in _check_curve(curve, f"{what} of {name}").values()
    ]
    if not values:
        raise ConfigError(f"no corruption {what} given")
    return values


def unnormalized_mean_corruption_error(errors: CorruptionTable) -> float:
    """Unnormalised mCE (percent): mean error over every corruption × severity pair given."""
    values = _pair_values(errors, "errors")
    return 100.0 * sum(values) / len(values)


def mean_corruption_accuracy(accuracies: CorruptionTable) -> float:
    """Mean accuracy (fraction) over every corruption × severity pair given (RobustBench)."""
    values = _pair_values(accuracies, "accuracies")
    return sum(values) / len(values)


def corruption_category(name: str) -> str:
    """The category of corruption ``name``: its ImageNet-C category (noise, blur, weather,
    digital, extra), else the ``category`` of a corruption registered under that name (e.g. a
    user's own), else ``"other"``."""
    for category, names in CORRUPTION_CATEGORIES.items():
        if name in names:
            return category
    if name in CORRUPTIONS:
        return str(getattr(CORRUPTIONS.get(name), "category", "") or "other")
    return "other"


def category_means(accuracies: CorruptionTable) -> dict[str, float]:
    """Mean accuracy per category over the corruptions present in ``accuracies``.

    Every corruption with a value counts in the category :func:`corruption_category` gives
    it (none is dropped); categories with no corruption present are left out. Order: noise,
    blur, weather, digital, extra, then other categories in order of appearance.
    """
    grouped: dict[str, CorruptionTable] = {c: {} for c in CORRUPTION_CATEGORIES}
    for name, per_severity in accuracies.items():
        if per_severity:
            grouped.setdefault(corruption_category(name), {})[name] = per_severity
    return {c: mean_corruption_accuracy(table) for c, table in grouped.items() if table}


def imagenet_scale(report: RobustnessReport) -> bool:
    """Whether ``report``'s images take the ImageNet parameter table (shorter side of 85 px or
    more, :func:`~robustart.corruptions.base.table_for_size`), so that AlexNet's ImageNet-C
    errors may normalise its corruption errors; ``True`` when the size was not recorded."""
    if report.image_size is None:
        return True
    return table_for_size(*report.image_size)[0] == "imagenet"


def summarize_report(
    report: RobustnessReport,
    baseline: CorruptionTable | None = ALEXNET_ERRORS,
    baseline_clean_error: float | None = ALEXNET_CLEAN_ERROR,
) -> dict[str, Any]:
    """Corruption scores of a :class:`RobustnessReport`, JSON-ready.

    Args:
        report: Corruption accuracies; ``report.clean`` may be NaN when the clean accuracy was
            not measured (``relative_mce`` and ``clean_error`` are then ``None``).
        baseline: ``{corruption: {severity: error}}`` of the reference model the CE values are
            normalised by (AlexNet's ImageNet-C errors by default, applied only to reports of
            ImageNet-scale images: on CIFAR- or digits-size images an AlexNet-normalised
            error compares other corruptions, :func:`imagenet_scale`); ``None``: no normalised
            scores (``mce``, ``relative_mce`` ``None``, ``ce`` empty), e.g. for CIFAR-10-C
            without a baseline model.
        baseline_clean_error: Clean error of the reference model, for the relative mCE
            (AlexNet's by default: required with another ``baseline``); ``None``: no relative
            mCE.

    Keys:
        ``mce``: mCE (percent) over the 15 benchmark corruptions, or ``None`` when a pair is
            missing; ``mce_missing`` then lists what is missing (empty list otherwise).
        ``relative_mce``: relative mCE (percent) under the same condition (uses the report's
            clean accuracy).
        ``unnormalized_mce``: mean error (percent) over the report's pairs.
        ``mean_corruption_accuracy``: mean accuracy over the report's pairs; ``num_pairs`` how
            many pairs that is.
        ``ce``: ``{name: CE (percent)}`` for every corruption of the report with a baseline
            (over the severities present).
        ``category_accuracy``: ``{category: mean accuracy}``.
        ``clean_error``: 1 − clean accuracy.

    Raises:
        ConfigError: if the report has no corruption accuracies.
    """
    accuracies = {n: c for n, c in report.corruptions.items() if c}
    if not accuracies:
        raise ConfigError(
            "the report has no corruption accuracies; evaluate corruptions first (e.g. "
            "`corruptions: all` in the robustness suite)"
        )
    if baseline is ALEXNET_ERRORS and not imagenet_scale(report):
        baseline = baseline_clean_error = None  # AlexNet's errors are ImageNet-C's
    custom = baseline is not None and baseline is not ALEXNET_ERRORS and baseline != ALEXNET_ERRORS
    if custom and baseline_clean_error == ALEXNET_CLEAN_ERROR:
        raise ConfigError(
            "summarize_report: another baseline than AlexNet's, paired with AlexNet's clean "
            "error (the default): give the baseline's own baseline_clean_error, or None for no "
            "relative mCE"
        )
    errors = accuracies_to_errors(accuracies)
    clean_error = (
        None if math.isnan(report.clean) else 1.0 - check_fraction(report.clean, "clean accuracy")
    )
    missing = missing_pairs(errors, BENCHMARK_CORRUPTIONS)
    normalized = baseline is not None and not missing
    relative = normalized and clean_error is not None and baseline_clean_error is not None
    return {
        "mce": mean_corruption_error(errors, baseline=baseline) if normalized else None,
        "mce_missing": missing,
        "relative_mce": (
            relative_mean_corruption_error(
                errors, clean_error, baseline=baseline, baseline_clean_error=baseline_clean_error
            )
            if relative
            else None
        ),
        "unnormalized_mce": unnormalized_mean_corruption_error(errors),
        "mean_corruption_accuracy": mean_corruption_accuracy(accuracies),
        "num_pairs": sum(len(c) for c in accuracies.values()),
        "ce": {
            n: 100.0 * corruption_error(n, e, baseline)
            for n, e in errors.items()
            if baseline is not None and n in baseline
        },
        "category_accuracy": category_means(accuracies),
        "clean_error": clean_error,
    }


def summary_metrics(summary: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten :func:`summarize_report` output to ``{name: float}`` for loggers.

    One unit per section: accuracies (fractions) under ``<prefix>corruption/``
    (``mean_accuracy``, ``category/<category>``), corruption errors (percent) under
    ``<prefix>corruption_error/`` (``mce``, ``relative_mce``, ``unnormalized_mce`` and the CE
    of each corruption, ``<name>``). ``None`` values (an incomplete mCE) are left out.

    Example:
        >>> summary_metrics({"mce": 80.0, "ce": {"fog": 75.0}, "category_accuracy": {}})
        {'corruption_error/mce': 80.0, 'corruption_error/fog': 75.0}
    """
    accuracy, error = f"{prefix}corruption/", f"{prefix}corruption_error/"
    out: dict[str, float] = {}
    for key, name in (
        ("mce", f"{error}mce"),
        ("relative_mce", f"{error}relative_mce"),
        ("unnormalized_mce", f"{error}unnormalized_mce"),
        ("mean_corruption_accuracy", f"{accuracy}mean_accuracy"),
    ):
        if summary.get(key) is not None:
            out[name] = float(summary[key])
    for name, value in summary.get("ce", {}).items():
        out[f"{error}{name}"] = float(value)
    for category, value in summary.get("category_accuracy", {}).items():
        out[f"{accuracy}category/{category}"] = float(value)
    return out
