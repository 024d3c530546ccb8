"""Validation shared by the metrics: a metric refuses bad input rather than report a number.

Each check raises a :class:`~robustart.errors.RobustartError` subclass whose message names the
value, what was expected and what to do.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustart.errors import ConfigError, InputRangeError


def check_number(
    value: float, what: str, low: float = 0.0, high: float | None = None, positive: bool = False
) -> float:
    """Return ``value`` as a float if it is finite and in range.

    Args:
        value: The number to check.
        what: Name used in the error message.
        low: Smallest allowed value (inclusive unless ``positive``).
        high: Largest allowed value (inclusive); ``None``: no upper bound.
        positive: Require ``value > low`` instead of ``value >= low``.

    Raises:
        ConfigError: ``value`` is not a number, NaN, infinite or out of range; a value in
            (1, 100] where a fraction in [0, 1] is expected is pointed out as a percentage.

    Example:
        >>> check_number(0.25, "the flip probability", high=1.0)
        0.25
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, got {value!r}") from None
    lower = low < number if positive else low <= number
    if math.isfinite(number) and lower and (high is None or number <= high):
        return number
    if high is None:
        bound = f"a finite number {'>' if positive else '>='} {low:g}"
    elif (low, high) == (0.0, 1.0) and not positive:
        bound = "a fraction in [0, 1]"
    else:
        bound = f"a number in {'(' if positive else '['}{low:g}, {high:g}]"
    hint = " (divide percentages by 100)" if high == 1.0 and 1.0 < number <= 100.0 else ""
    raise ConfigError(f"{what} must be {bound}, got {value!r}{hint}")


def check_fraction(value: float, what: str) -> float:
    """Return ``value`` as a float if it is a finite fraction in [0, 1] (see
    :func:`check_number`)."""
    return check_number(value, what, 0.0, 1.0)


def check_integer_tensor(values: Tensor, what: str, advice: str = "") -> None:
    """Refuse a float, complex or bool tensor where integer class indices are expected.

    Raises:
        InputRangeError: naming the dtype (and ``advice``, appended to the message).
    """
    if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
        raise InputRangeError(
            f"{what} must be integer class indices, got dtype {values.dtype}{advice}"
        )
