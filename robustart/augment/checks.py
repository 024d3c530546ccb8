"""Validation of augmentation settings: each failure is a :class:`ConfigError` naming the
setting, the bad value and the valid range."""

from __future__ import annotations

import math

from robustart.errors import ConfigError


def check_probability(owner: str, name: str, value: float) -> float:
    """Return ``value`` if it lies in [0, 1]."""
    if not 0 <= value <= 1:
        raise ConfigError(f"{owner}: {name} must be a probability in [0, 1], got {value}")
    return float(value)


def check_positive(owner: str, name: str, value: float) -> float:
    """Return ``value`` if it is a finite number > 0."""
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
    if not 0 <= value < 1:
        raise ConfigError(f"{owner}: label_smoothing must be in [0, 1), got {value}")
    return float(value)
