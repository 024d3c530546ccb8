"""Optimisers and learning-rate schedules, chosen by name in the task's YAML.

Schedules are per-step multipliers of the base learning rate, so they do not depend on the
number of batches per epoch. ``warmup_epochs`` adds a linear warm-up from 0 in front of any
schedule except ``cyclic`` (which has its own ramp).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from robustart.errors import ConfigError
from robustart.registry import Registry

OptimizerFactory = Callable[..., torch.optim.Optimizer]
#: ``(progress in [0, 1], milestones, gamma, min_ratio) -> lr multiplier``.
Schedule = Callable[[float, Sequence[float], float, float], float]

#: Optimisers by name.
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")
#: Learning-rate schedules by name.
LR_SCHEDULES: Registry[Schedule] = Registry("lr schedule")


@OPTIMIZERS.register("sgd")
def _sgd(
    params: Iterable, lr: float, momentum: float, weight_decay: float, nesterov: bool
) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=nesterov and momentum > 0,
    )


@OPTIMIZERS.register("adamw")
def _adamw(
    params: Iterable, lr: float, momentum: float, weight_decay: float, nesterov: bool
) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("adam")
def _adam(
    params: Iterable, lr: float, momentum: float, weight_decay: float, nesterov: bool
) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@LR_SCHEDULES.register("constant")
def constant_schedule(
    progress: float, milestones: Sequence[float], gamma: float, min_ratio: float
) -> float:
    """The base learning rate throughout."""
    return 1.0


@LR_SCHEDULES.register("cosine")
def cosine_schedule(
    progress: float, milestones: Sequence[float], gamma: float, min_ratio: float
) -> float:
    """Half-cosine from the base rate down to ``min_lr``."""
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


@LR_SCHEDULES.register("multistep")
def multistep_schedule(
    progress: float, milestones: Sequence[float], gamma: float, min_ratio: float
) -> float:
    """Multiply by ``gamma`` at each milestone (fractions of training, e.g. 0.5 and 0.75 for
    epochs 100 and 150 of 200, the piecewise schedule of Rice et al.)."""
    return gamma ** sum(progress >= m for m in milestones)


@LR_SCHEDULES.register("cyclic")
def cyclic_schedule(
    progress: float, milestones: Sequence[float], gamma: float, min_ratio: float
) -> float:
    """Triangle: 0 → base rate at 2/5 of training → 0 (Wong et al.'s fast adversarial
    training)."""
    peak = 0.4
    if progress <= peak:
        return progress / peak
    return max(0.0, (1 - progress) / (1 - peak))


#: Options read by some schedules or optimisers only: ``{option: (readers, default)}``. A
#: value other than the default under another one would be silently ignored (milestones with
#: the cosine schedule, ``min_lr`` with multistep, SGD's momentum with Adam, whose betas are
#: fixed).
OPTIONS_READ_BY: dict[str, tuple[tuple[str, ...], Any]] = {
    "milestones": (("multistep",), (0.5, 0.75)),
    "gamma": (("multistep",), 0.1),
    "min_lr": (("cosine",), 0.0),
    "momentum": (("sgd",), 0.9),
}


def _show_option(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple) else f"{value:g}"


def check_optimization(
    optimizer: str,
    lr: float,
    momentum: float,
    weight_decay: float,
    nesterov: bool,
    lr_schedule: str,
    warmup_epochs: float,
    min_lr: float,
    milestones: Sequence[float],
    gamma: float,
) -> None:
    """Refuse optimiser and schedule settings that would train differently from what they say
    (a task calls this when it is built, before any training).

    Raises:
        ConfigError: a non-finite or out-of-range value (``min_lr`` below 0 made the cosine
            rate negative, above ``lr`` made it rise; ``gamma`` above 1 grows the rate at each
            milestone), Nesterov without SGD momentum (silently plain SGD before), or a
            warm-up with the cyclic schedule (which has its own ramp and ignored it), or an
            option the chosen schedule or optimiser does not read, set to another value than
            its default (:data:`OPTIONS_READ_BY`).
    """
    OPTIMIZERS.get(optimizer)
    LR_SCHEDULES.get(lr_schedule)

    def finite(name: str, value: float) -> float:
        number = float(value)
        if not math.isfinite(number):
            raise ConfigError(f"{name} must be a finite number, got {value}")
        return number

    if not finite("lr", lr) > 0:
        raise ConfigError(f"lr must be > 0, got {lr}")
    if finite("weight_decay", weight_decay) < 0:
        raise ConfigError(f"weight_decay must be >= 0, got {weight_decay}")
    if not 0 <= finite("momentum", momentum) < 1:
        raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
    if nesterov and (optimizer != "sgd" or momentum == 0):
        raise ConfigError(
            "nesterov needs optimizer sgd with momentum > 0 (it was silently plain "
            f"{'SGD' if optimizer == 'sgd' else optimizer}); drop nesterov or set the momentum"
        )
    if not 0 <= finite("min_lr", min_lr) <= lr:
        raise ConfigError(
            f"min_lr must be in [0, lr] = [0, {lr:g}] (the cosine schedule ends there), got "
            f"{min_lr}"
        )
    if not 0 < finite("gamma", gamma) <= 1:
        raise ConfigError(f"gamma (the multistep decay factor) must be in (0, 1], got {gamma}")
    if any(not 0 < finite("milestones", m) < 1 for m in milestones):
        raise ConfigError(f"milestones are fractions of training in (0, 1), got {milestones}")
    if finite("warmup_epochs", warmup_epochs) < 0:
        raise ConfigError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
    given = {
        "milestones": tuple(milestones),
        "gamma": gamma,
        "min_lr": min_lr,
        "momentum": momentum,
    }
    for option, (readers, default) in OPTIONS_READ_BY.items():
        chosen = optimizer if option == "momentum" else lr_schedule
        value = given[option]
        if chosen not in readers and value != default:
            kind = "optimizer" if option == "momentum" else "lr_schedule"
            raise ConfigError(
                f"{option} {_show_option(value)} is read only by {kind} "
                f"{' or '.join(readers)}, but {kind} is {chosen}: it would be ignored. Drop "
                f"{option}, or set {kind} {readers[0]}"
            )
    if warmup_epochs > 0 and lr_schedule == "cyclic":
        raise ConfigError(
            "the cyclic schedule rises from 0 over the first 2/5 of training, its own warm-up, "
            f"and ignores warmup_epochs ({warmup_epochs}); set warmup_epochs to 0"
        )


def build_optimizer(
    name: str, model: nn.Module, lr: float, momentum: float, weight_decay: float, nesterov: bool
) -> torch.optim.Optimizer:
    """Build optimiser ``name`` over the trainable parameters of ``model``."""
    if lr <= 0:
        raise ConfigError(f"lr must be > 0, got {lr}")
    if weight_decay < 0:
        raise ConfigError(f"weight_decay must be >= 0, got {weight_decay}")
    params = [p for p in model.parameters() if p.requires_grad]
    return OPTIMIZERS.get(name)(params, lr, momentum, weight_decay, nesterov)


def lr_multiplier(
    schedule: str,
    total_steps: int,
    warmup_steps: int = 0,
    lr: float = 1.0,
    min_lr: float = 0.0,
    milestones: Sequence[float] = (0.5, 0.75),
    gamma: float = 0.1,
) -> Callable[[int], float]:
    """A ``step -> multiplier`` function for :class:`torch.optim.lr_scheduler.LambdaLR`.

    Example:
        >>> f = lr_multiplier("cosine", total_steps=100, warmup_steps=10)
        >>> round(f(4), 2), round(f(10), 2), round(f(100), 2)  # warm-up: (step + 1) / 10
        (0.5, 1.0, 0.0)
    """
    fn = LR_SCHEDULES.get(schedule)
    if any(not 0 < m < 1 for m in milestones):
        raise ConfigError(f"milestones are fractions of training in (0, 1), got {milestones}")
    total_steps = max(int(total_steps), 1)
    warmup = 0 if schedule == "cyclic" else max(int(warmup_steps), 0)
    min_ratio = min_lr / lr if lr > 0 else 0.0

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total_steps - warmup, 1)
        return fn(progress, milestones, gamma, min_ratio)

    return multiplier
