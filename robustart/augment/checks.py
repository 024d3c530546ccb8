"""Validation of augmentation settings: each failure is a :class:`ConfigError` naming the
setting, the bad value and the valid range."""

from __future__ import annotations

import math

from robustart.errors import ConfigError


def _check_real(owner: str, name: str, value: object) -> None:
    """ConfigError unless ``value`` is a real number (a string or a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{owner}: {name} must be a number, got {value!r}")


def check_probability(owner: str, name: str, value: float) -> float:
    """Return ``value`` if it lies in [0, 1]."""
    _check_real(owner, name, value)
    if not 0 <= value <= 1:
        raise ConfigError(f"{owner}: {name} must be a probability in [0, 1], got {value}")
    return float(value)


def check_positive(owner: str, name: str, value: float) -> float:
    """Return ``value`` if it is a finite number > 0."""
    _check_real(owner, name, value)
    if not 0 < value < math.inf:
        raise ConfigError(f"{owner}: {name} must be > 0 and finite, got {value}")
    return float(value)


def check_int_range(owner: str, name: str, value: int, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an integer in [low, high] (``high=None``: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{owner}: {name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{owner}: {name} must be {bound}, got {value}")
    return value


def check_label_smoothing(owner: str, value: float) -> float:
    """Return ``value`` if it lies in [0, 1)."""
    _check_real(owner, "label_smoothing", value)
    if not 0 <= value < 1:
        raise ConfigError(f"{owner}: label_smoothing must be in [0, 1), got {value}")
    return float(value)


#: Smallest Beta/Dirichlet concentration α a mixing augmentation takes: below it torch's
#: samplers underflow (both gamma draws reach 0 and Beta(α, α) returns exactly 0.5: 24 % of
#: the draws at α = 0.001, none at 0.01), instead of values near 0 or 1.
MIN_CONCENTRATION = 0.01


def check_concentration(owner: str, name: str, value: float, instead: str) -> float:
    """Return ``value`` if it is a finite number ≥ :data:`MIN_CONCENTRATION`; ``instead``
    says in the message what to set for (almost) no mixing."""
    value = check_positive(owner, name, value)
    if value < MIN_CONCENTRATION:
        raise ConfigError(
            f"{owner}: {name} must be >= {MIN_CONCENTRATION}, got {value:g}: below it torch's "
            "Beta and Dirichlet samplers underflow (Beta(α, α) gives exactly 0.5 for a quarter "
            f"of its draws at 0.001, instead of values near 0 or 1); {instead}"
        )
    return value
