"""Statistics of a robustness study over many models.

* :func:`fit_line`: an ordinary least-squares line with its coefficient of determination;
* :func:`pareto_frontier`: the models that no other model beats on both of two scores to be
  maximised (e.g. clean and robust accuracy; RobustART, ARES-Bench);
* :func:`scaling_law`: Su et al. (2018, "Is robustness the cost of accuracy?") found that the
  mean minimal adversarial distortion of ImageNet models scales linearly with the logarithm of
  their classification error; this fits ``distortion = slope · ln(1 − clean accuracy) +
  intercept`` over models;
* :func:`family_transfer_averages`: mean transfer-attack accuracy between models of the same
  architecture family and of different families (adversarial examples transfer best within a
  family, Su et al. 2018);
* :class:`Spread`: mean and sample standard deviation of one result over replicate runs (seeds),
  and whether two results differ by less than that spread.

Broken input (non-finite numbers, nothing to compute on, names that do not match) raises
:class:`~robustart.errors.ConfigError` (:class:`~robustart.errors.EmptyInputError` for empty
input) rather than returning a number.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robustart.errors import ConfigError, EmptyInputError, RobustartWarning

__all__ = [
    "LinearFit",
    "Spread",
    "family_transfer_averages",
    "fit_line",
    "pareto_frontier",
    "scaling_law",
]


@dataclass(frozen=True)
class LinearFit:
    """A least-squares line ``y = slope · x + intercept``.

    Attributes:
        slope: Slope of the line (finite).
        intercept: Value of the line at ``x = 0`` (finite).
        r2: Coefficient of determination ``1 − SS_res / SS_tot`` of the line on the points it
            was fitted to, in [0, 1] (1.0 for a perfect fit); NaN when all y are equal
            (``SS_tot = 0``: there is no variance to explain).
        n: Number of points the line was fitted to (≥ 2).

    Example:
        >>> fit = LinearFit(slope=2.0, intercept=1.0, r2=1.0, n=3)
        >>> fit.predict(0.5)
        2.0
        >>> fit.to_dict()
        {'slope': 2.0, 'intercept': 1.0, 'r2': 1.0, 'n': 3}
    """

    slope: float
    intercept: float
    r2: float
    n: int

    def predict(self, x: float) -> float:
        """The line's value ``slope · x + intercept`` at ``x``.

        Args:
            x: A finite number.

        Raises:
            ConfigError: if ``x`` is not a finite number.
        """
        value = _finite_number(x, "the x to predict at")
        return self.slope * value + self.intercept

    def to_dict(self) -> dict[str, float | int]:
        """``{"slope", "intercept", "r2", "n"}`` (``r2`` may be NaN, see the class)."""
        return {"slope": self.slope, "intercept": self.intercept, "r2": self.r2, "n": self.n}


def _finite_number(value: Any, what: str) -> float:
    """``value`` as a float; ConfigError unless it is a finite real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ConfigError(f"{what} must be a finite number, got {number}")
    return number


def _vector(values: Any, what: str) -> np.ndarray:
    """``values`` as a 1-D float64 array; ConfigError if it is not one."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{what} must be a sequence of numbers: {error}") from error
    if array.ndim != 1:
        raise ConfigError(f"{what} must be a flat sequence of numbers, got shape {array.shape}")
    return array


def fit_line(x: Sequence[float], y: Sequence[float]) -> LinearFit:
    """Fit ``y = slope · x + intercept`` by ordinary least squares.

    Args:
        x: (N,) finite numbers, not all equal (N ≥ 2); a list, array or 1-D tensor.
        y: (N,) finite numbers.

    Returns:
        The :class:`LinearFit` (``r2`` in [0, 1], NaN when all ``y`` are equal).

    Raises:
        ConfigError: for fewer than 2 points, ``x`` and ``y`` of different lengths, non-finite
            values, or all ``x`` equal (the slope is undefined).

    Example:
        >>> fit = fit_line([0, 1, 2, 3], [1, 3, 5, 7])
        >>> fit.slope, fit.intercept, fit.r2, fit.n
        (2.0, 1.0, 1.0, 4)
        >>> round(fit_line([0, 1, 2], [0, 2, 1]).r2, 4)
        0.25
    """
    xs, ys = _vector(x, "x"), _vector(y, "y")
    if len(xs) != len(ys):
        raise ConfigError(f"x and y must have the same length, got {len(xs)} and {len(ys)}")
    if len(xs) < 2:
        raise ConfigError(f"a line needs at least 2 points, got {len(xs)}")
    for name, values in (("x", xs), ("y", ys)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ConfigError(
                f"{name} has non-finite values at positions {bad.tolist()}: "
                f"{values[bad].tolist()}; a line cannot be fitted through them"
            )
    dx, dy = xs - xs.mean(), ys - ys.mean()
    sxx = float(dx @ dx)
    if sxx == 0.0 or np.ptp(xs) == 0.0:
        raise ConfigError(
            f"all x are equal ({xs[0]}): the slope of a line through them is undefined"
        )
    slope = float(dx @ dy) / sxx
    intercept = float(ys.mean()) - slope * float(xs.mean())
    syy = float(dy @ dy)
    if syy == 0.0:
        r2 = math.nan
    else:
        residuals = ys - (slope * xs + intercept)
        r2 = min(1.0, max(0.0, 1.0 - float(residuals @ residuals) / syy))
    return LinearFit(slope=slope, intercept=intercept, r2=r2, n=len(xs))


def _point(name: str, value: Any) -> tuple[float, float]:
    """A ``(first, second)`` score pair as floats; ConfigError for anything else."""
    try:
        first, second = value
    except (TypeError, ValueError) as error:
        raise ConfigError(f"point {name!r} must be a pair of numbers, got {value!r}") from error
    return (
        _finite_number(first, f"the first coordinate of point {name!r}"),
        _finite_number(second, f"the second coordinate of point {name!r}"),
    )


def pareto_frontier(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """Names of the non-dominated points when both coordinates are to be maximised.

    A point is dominated if another point is at least as large in both coordinates and larger
    in one; identical points do not dominate each other, so they are all on the frontier.

    Args:
        points: ``{name: (first, second)}``, e.g. ``{model: (clean accuracy, robust
            accuracy)}``; finite numbers of any scale.

    Returns:
        The frontier's names sorted by the first coordinate ascending (then by the second
        descending, then by name); along the frontier the second coordinate falls.

    Raises:
        EmptyInputError: for no points.
        ConfigError: for a value that is not a pair of finite numbers.

    Example:
        >>> pareto_frontier({"a": (0.9, 0.1), "b": (0.8, 0.3), "c": (0.7, 0.2), "d": (0.6, 0.4)})
        ['d', 'b', 'a']
    """
    if not points:
        raise EmptyInputError("no points given: a Pareto frontier of nothing is undefined")
    pairs = {name: _point(name, value) for name, value in points.items()}
    frontier = []
    for name, (a, b) in pairs.items():
        dominated = any(
            c >= a and d >= b and (c > a or d > b)
            for other, (c, d) in pairs.items()
            if other != name
        )
        if not dominated:
            frontier.append(name)
    return sorted(frontier, key=lambda n: (pairs[n][0], -pairs[n][1], str(n)))


def _check_names(first: Mapping[str, Any], second: Mapping[str, Any], what: str) -> None:
    """ConfigError unless both mappings have the same names."""
    only_first = sorted(map(str, set(first) - set(second)))
    only_second = sorted(map(str, set(second) - set(first)))
    if only_first or only_second:
        raise ConfigError(
            f"{what} must name the same models; only in the distortions: {only_first}, "
            f"only in the clean accuracies: {only_second}"
        )


def scaling_law(
    distortion: Mapping[str, float], clean_accuracy: Mapping[str, float]
) -> tuple[LinearFit, dict[str, tuple[float, float]]]:
    """Fit Su et al.'s (2018) law: mean minimal distortion against ln(classification error).

    The fitted line is ``distortion = slope · ln(1 − clean accuracy) + intercept``; Su et al.
    found it holds across ImageNet architectures for L2 and L∞ distortions (more accurate
    models, with a more negative ln error, are less robust: the slope is positive).

    Models with clean accuracy 1 (error 0, ln undefined) or a NaN distortion (no image broken)
    are left out and named in a :class:`UserWarning`.

    Args:
        distortion: ``{model: mean minimal adversarial distortion}``, ≥ 0 or NaN (one norm).
        clean_accuracy: ``{model: clean accuracy}`` as fractions in [0, 1], same models.

    Returns:
        ``(fit, points)``: the :class:`LinearFit` and ``{model: (ln error, distortion)}`` of
        the models used (ln error ≤ 0), in the order of ``distortion``.

    Raises:
        EmptyInputError: for no models.
        ConfigError: if the mappings name different models, an accuracy is not in [0, 1], a
            distortion is negative or infinite, fewer than 2 models remain, or all remaining
            models have the same error.

    Example:
        >>> accuracy = {"a": 0.5, "b": 0.75, "c": 0.875}
        >>> distortion = {m: 0.3 * math.log(1 - a) + 2 for m, a in accuracy.items()}
        >>> fit, points = scaling_law(distortion, accuracy)
        >>> round(fit.slope, 6), round(fit.intercept, 6), fit.n
        (0.3, 2.0, 3)
        >>> [round(v, 4) for v in points["a"]]
        [-0.6931, 1.7921]
    """
    if not distortion and not clean_accuracy:
        raise EmptyInputError("no models given: there is no scaling law to fit")
    _check_names(distortion, clean_accuracy, "the distortions and the clean accuracies")
    points: dict[str, tuple[float, float]] = {}
    perfect, unbroken = [], []
    for model, value in distortion.items():
        accuracy = _finite_number(clean_accuracy[model], f"the clean accuracy of {model!r}")
        if not 0.0 <= accuracy <= 1.0:
            raise ConfigError(
                f"the clean accuracy of {model!r} is {accuracy}; accuracies are fractions in "
                "[0, 1] (divide percentages by 100)"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ConfigError(f"the distortion of {model!r} must be a number, got {value!r}")
        value = float(value)
        if math.isnan(value):
            unbroken.append(str(model))
            continue
        if not math.isfinite(value) or value < 0:
            raise ConfigError(
                f"the distortion of {model!r} is {value}; a mean minimal distortion is a "
                "finite norm ≥ 0 (NaN when no image was broken)"
            )
        error = 1.0 - accuracy
        if error <= 0.0:
            perfect.append(str(model))
            continue
        points[model] = (math.log(error), value)
    if perfect or unbroken:
        parts = []
        if perfect:
            parts.append(f"clean error 0, ln undefined: {', '.join(perfect)}")
        if unbroken:
            parts.append(f"NaN distortion: {', '.join(unbroken)}")
        warnings.warn(
            f"scaling law: left out {len(perfect) + len(unbroken)} model(s) ({'; '.join(parts)})",
            RobustartWarning,
            stacklevel=2,
        )
    if len(points) < 2:
        raise ConfigError(
            f"the scaling law needs at least 2 models with a clean error above 0 and a finite "
            f"distortion, got {len(points)} of {len(distortion)}"
        )
    xs = [x for x, _ in points.values()]
    if max(xs) == min(xs):
        raise ConfigError(
            f"all {len(points)} models have the same clean error ({math.exp(xs[0]):.6g}): "
            "the scaling law's slope is undefined"
        )
    return fit_line(xs, [y for _, y in points.values()]), points


def _names(names: Sequence[str], what: str) -> list[str]:
    """``names`` as a list; EmptyInputError for none, ConfigError for duplicates."""
    if isinstance(names, str):
        raise ConfigError(f"{what} must be a sequence of model names, not the string {names!r}")
    out = list(names)
    if not out:
        raise EmptyInputError(f"no {what} given: there is no transfer pair to average")
    duplicates = sorted({str(n) for n in out if out.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{what} name models more than once: {duplicates}")
    return out


def family_transfer_averages(
    matrix: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
    sources: Sequence[str],
    targets: Sequence[str],
    families: Mapping[str, str],
) -> dict[str, float | None]:
    """Mean transfer-attack accuracy within and across architecture families.

    Entry ``matrix[s, t]`` is the accuracy of target ``t`` on adversarial examples crafted on
    source ``s`` (lower: the attack transfers better). White-box pairs (source and target of
    the same name) are left out; every other ordered pair counts once, as "within" if both
    models belong to the same family and as "cross" otherwise.

    Args:
        matrix: (S, T) accuracies in [0, 1]; nested lists, a NumPy array or a tensor.
        sources: The S source model names, distinct.
        targets: The T target model names, distinct.
        families: ``{model: family}`` for every source and target (more models are allowed).

    Returns:
        ``{"within": mean or None, "cross": mean or None, "within_pairs": count,
        "cross_pairs": count}``; a mean is None when there is no pair of its kind.

    Raises:
        EmptyInputError: for no sources or no targets.
        ConfigError: if the matrix is not (S, T), has values outside [0, 1] or non-finite
            ones, names repeat, or a model has no family.

    Example:
        >>> matrix = [[0.1, 0.5, 0.8], [0.4, 0.2, 0.9], [0.7, 0.6, 0.0]]
        >>> families = {"r18": "resnet", "r50": "resnet", "vit": "vit"}
        >>> averages = family_transfer_averages(matrix, ["r18", "r50", "vit"],
        ...                                     ["r18", "r50", "vit"], families)
        >>> averages["within"], averages["within_pairs"], averages["cross_pairs"]
        (0.45, 2, 4)
        >>> round(averages["cross"], 4)
        0.75
    """
    sources, targets = _names(sources, "sources"), _names(targets, "targets")
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().double().numpy()
    try:
        grid = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"the transfer matrix must be a grid of numbers: {error}") from error
    if grid.shape != (len(sources), len(targets)):
        raise ConfigError(
            f"the transfer matrix has shape {grid.shape}, expected (sources, targets) = "
            f"({len(sources)}, {len(targets)})"
        )
    if not np.isfinite(grid).all():
        raise ConfigError(
            f"the transfer matrix has {int((~np.isfinite(grid)).sum())} non-finite value(s); "
            "evaluate every (source, target) pair first"
        )
    if ((grid < 0) | (grid > 1)).any():
        raise ConfigError(
            f"transfer accuracies must be fractions in [0, 1], got values from {grid.min()} "
            f"to {grid.max()} (divide percentages by 100)"
        )
    missing = [str(m) for m in dict.fromkeys([*sources, *targets]) if m not in families]
    if missing:
        raise ConfigError(f"no architecture family given for: {', '.join(missing)}")
    within, cross = [], []
    for i, source in enumerate(sources):
        for j, target in enumerate(targets):
            if source == target:
                continue
            same = families[source] == families[target]
            (within if same else cross).append(float(grid[i, j]))
    return {
        "within": float(np.mean(within)) if within else None,
        "cross": float(np.mean(cross)) if cross else None,
        "within_pairs": len(within),
        "cross_pairs": len(cross),
    }


#: Techniques that lead every family's rows in study and zoo tables (the baselines), in this
#: order; other techniques follow in order of first appearance.
LEADING_TECHNIQUES = ("standard", "pgd_at", "trades")


def grouped_order(rows: Sequence[tuple[str, str, str]]) -> list[int]:
    """The order of table rows grouped by architecture family and training technique.

    Families come in order of first appearance; within a family the techniques of
    :data:`LEADING_TECHNIQUES` come first, then the others in order of first appearance; rows
    of one family and technique (replicates) are sorted by name.

    Args:
        rows: ``(name, family, technique)`` of every row.

    Returns:
        Indices into ``rows``, in table order.

    Example:
        >>> rows = [("v2", "vit", "mixup"), ("c", "cnn", "pgd_at"), ("v1", "vit", "standard")]
        >>> grouped_order(rows)
        [2, 0, 1]
    """
    families = list(dict.fromkeys(family for _, family, _ in rows))
    techniques = list(dict.fromkeys([*LEADING_TECHNIQUES, *(t for _, _, t in rows)]))
    return sorted(
        range(len(rows)),
        key=lambda i: (families.index(rows[i][1]), techniques.index(rows[i][2]), rows[i][0]),
    )


@dataclass(frozen=True)
class Spread:
    """One result over replicate runs (e.g. training seeds): mean, sample standard deviation
    and the number of runs that had a value.

    A single run has no measured spread: its ``std`` is ``None`` and its text is the bare value,
    never ``"± 0.0"``, which would claim a spread of zero.

    Attributes:
        mean: Mean over the runs with a value (``None`` when none had one).
        std: Sample standard deviation (n − 1 in the denominator); ``None`` for fewer than two
            runs.
        n: Runs with a value.

    Example:
        >>> a, b = Spread.of([90.0, 92.0, 94.0]), Spread.of([93.0, 95.0, None])
        >>> a.mean, a.std, b.n
        (92.0, 2.0, 2)
        >>> a.within(b), a.text()
        (True, '92.0 ± 2.0')
        >>> single = Spread.of([97.0])
        >>> single.std, single.text(), single.within(a), Spread.of([97.0]).within(single)
        (None, '97.0', False, True)
    """

    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Spread:
        """The spread of ``values`` (``None`` entries are runs without the result).

        Raises:
            ConfigError: a value is not finite.
        """
        present = [_finite_number(v, "replicate value") for v in values if v is not None]
        if not present:
            return cls(None, None, 0)
        mean = math.fsum(present) / len(present)
        if len(present) < 2:
            return cls(mean, None, 1)
        variance = math.fsum((v - mean) ** 2 for v in present) / (len(present) - 1)
        return cls(mean, math.sqrt(variance), len(present))

    def within(self, other: Spread) -> bool:
        """Whether the means differ by no more than the spread of a difference of single
        runs, √(s₁² + s₂²), a single run counting as no spread (so with one run each, only
        equal means are within)."""
        if self.mean is None or other.mean is None:
            return False
        return abs(self.mean - other.mean) <= math.hypot(self.std or 0.0, other.std or 0.0)

    def text(self, decimals: int = 1) -> str:
        """``"mean ± std"``, the bare mean for a single run, ``"-"`` without a value."""
        if self.mean is None:
            return "-"
        if self.std is None:
            return f"{self.mean:.{decimals}f}"
        return f"{self.mean:.{decimals}f} ± {self.std:.{decimals}f}"

    def to_dict(self) -> dict[str, Any]:
        """``{"mean", "std", "n"}`` (``std`` is ``None`` for fewer than two runs)."""
        return {"mean": self.mean, "std": self.std, "n": self.n}
