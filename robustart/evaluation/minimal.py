"""Minimal-ε search: each image's smallest budget at which an attack succeeds.

Following Su et al. (ECCV 2018) and ARES-Bench, the budget of an iterative attack (PGD, APGD,
...) is searched per image: a coarse pass over an increasing grid of budgets brackets each
image's minimal ε, then bisection narrows the bracket. Everything is batched: every step is one
attack call over all images still being searched, each with its own budget (attacks take a
per-sample ε tensor). One search gives

* the whole robust-accuracy-vs-ε curve (:func:`accuracy_curve`): an image is robust at ε exactly
  when its minimal ε is larger than ε, and
* distortion statistics (:meth:`MinimalEpsilonResult.distortion_statistics`, through
  :func:`~robustart.metrics.robustness.distortion_statistics`): mean and median minimal
  perturbation of the points the attack breaks.

Suites run searches through their ``minimal_eps`` key (:mod:`robustart.evaluation.suite`).

Conventions: the minimal ε of an image the model already misclassifies is 0; an image the attack
does not break within ``eps_max`` gets ``inf``.

Example:
    >>> search = MinimalEpsilonSearch("pgd", {"steps": 10}, norm="linf", eps_max="16/255")
    >>> result = search(model, images, labels, generator=make_generator(0))  # doctest: +SKIP
    >>> accuracy_curve(result.min_eps, [0, 2 / 255, 8 / 255])  # doctest: +SKIP
    tensor([0.9800, 0.9100, 0.3400])
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from robustart.attacks import Attack, cascade, create_attack
from robustart.attacks.base import (
    Model,
    as_model_input,
    check_attack_labels,
    check_budget,
    checked_input_gradient,
)
from robustart.attacks.losses import class_indices
from robustart.errors import ConfigError, EmptyInputError
from robustart.metrics.robustness import (
    DistortionStatistics,
    distortion_statistics,
    minimal_eps_statistics,
)
from robustart.utils import (
    as_tensor_argument,
    check_finite_logits,
    check_images,
    check_logits_shape,
    parse_eps,
    preserve_mode,
)

__all__ = ["MinimalEpsilonResult", "MinimalEpsilonSearch", "accuracy_curve"]


@dataclass
class MinimalEpsilonResult:
    """What a minimal-ε search found for N images.

    Attributes:
        min_eps: (N,) smallest budget at which the attack succeeded: 0 for images the model
            misclassifies without attack, ``inf`` for images not broken within ``eps_max``.
        lower: (N,) largest budget at which the attack was seen to fail (0 if it never failed,
            ``eps_max`` for unbroken images): the true minimal ε of the attack lies in
            ``(lower, min_eps]``.
        adversarial: (N, C, H, W) adversarial images found at ``min_eps`` (the clean image where
            ``min_eps`` is 0 or ``inf``); their perturbation norm is at most ``min_eps``.
        clean_correct: (N,) bool, the model classifies the clean image correctly.
        norm: Threat model of the search (``"linf"``, ``"l2"``, ``"l1"``).
        eps_max: Largest budget tried.
        attack_calls: Number of batched attack calls the search made.
    """

    min_eps: Tensor
    lower: Tensor
    adversarial: Tensor
    clean_correct: Tensor
    norm: str
    eps_max: float
    attack_calls: int

    @property
    def success(self) -> Tensor:
        """(N,) bool: clean-correct images the attack broke within ``eps_max``."""
        return self.clean_correct & torch.isfinite(self.min_eps)

    def accuracy_curve(self, eps_grid: Sequence[float] | Tensor) -> Tensor:
        """Robust accuracy at each budget of ``eps_grid``, see :func:`accuracy_curve`."""
        return accuracy_curve(self.min_eps, eps_grid)

    def distortion_statistics(self) -> DistortionStatistics:
        """Mean and median minimal ε (in the search's norm, computed in float64) of the
        images broken within ``eps_max`` (clean-misclassified images, ε = 0, are left out)."""
        broken = torch.isfinite(self.min_eps) & (self.min_eps > 0)
        return distortion_statistics({self.norm: self.min_eps.double()}, broken)

    def statistics(self) -> dict[str, float | None]:
        """``{"mean", "median", "unbroken", "median_all"}``, what a suite reports (see
        :func:`~robustart.metrics.robustness.minimal_eps_statistics`)."""
        return minimal_eps_statistics(self.min_eps)


def accuracy_curve(min_eps: Tensor, eps_grid: Sequence[float] | Tensor) -> Tensor:
    """Robust accuracy at every budget of ``eps_grid`` from per-image minimal budgets.

    An image counts as robust at ε when its minimal ε is strictly larger than ε (an attack that
    succeeds at exactly ε breaks it at ε), so the curve starts at clean accuracy (ε = 0, where
    misclassified images have minimal ε 0) and never increases.

    Args:
        min_eps: (N,) minimal budgets (0 for clean-misclassified, ``inf`` for never broken).
        eps_grid: (G,) budgets, any order.

    Returns:
        (G,) float tensor of accuracies in [0, 1], in the order of ``eps_grid``.

    Raises:
        EmptyInputError: ``min_eps`` is empty (an accuracy over no images).

    Example:
        >>> accuracy_curve(torch.tensor([0.0, 0.1, 0.3, float("inf")]), [0.0, 0.1, 0.2, 1.0])
        tensor([0.7500, 0.5000, 0.5000, 0.2500])
    """
    min_eps = as_tensor_argument(min_eps, "min_eps")
    if min_eps.ndim != 1:
        raise ConfigError(f"min_eps must have shape (N,), got {tuple(min_eps.shape)}")
    # Budgets are compared in the precision of ``min_eps`` (float32 from a search), so that an
    # image broken at exactly a grid budget is not counted robust there through rounding.
    dtype = min_eps.dtype if min_eps.is_floating_point() else torch.float32
    grid = torch.as_tensor(eps_grid, device=min_eps.device).to(dtype).flatten()
    if min_eps.numel() == 0:
        raise EmptyInputError("an accuracy curve over 0 images: the search had no images")
    robust = min_eps.to(dtype)[None, :] > grid[:, None]  # (G, N)
    return robust.float().mean(dim=1).cpu()


class MinimalEpsilonSearch:
    """Per-image search for the smallest budget at which an attack succeeds.

    The search first attacks the images still unbroken at each budget of an increasing coarse
    grid (by default ``eps_max / growth**k``, k = ``coarse_steps − 1`` … 0). An image first
    broken at grid budget ε_j is bracketed in ``(ε_{j−1}, ε_j]``; ``bisection_steps`` rounds of
    bisection then halve every bracket, each round a single attack call with per-image budgets.
    The result's minimal ε at a grid budget is therefore exactly "broken at this budget or a
    smaller one", and the accuracy curve read off it agrees with a fixed-ε sweep of the same
    attack up to the attack's randomness.

    Args:
        attack: A registered attack name (``"pgd"``, ``"apgd"``, ...) or an :class:`Attack`
            instance. Budgets are chosen by the search, so the attack's own ``eps`` is unused.
        attack_args: Settings of the attack when ``attack`` is a name (``steps``,
            ``restarts``, ...; not ``eps`` or ``norm``).
        norm: Threat model (``"linf"``, ``"l2"``, ``"l1"``; default ``"linf"``, or the
            norm of an attack instance, which it must match).
        eps_max: Largest budget tried (float or fraction string such as ``"16/255"``), > 0.
        grid: Coarse budgets (each in (0, ``eps_max``]); ``eps_max`` is added if missing.
            ``None`` uses the geometric grid described above.
        coarse_steps: Size of the default geometric grid.
        growth: Ratio between neighbouring budgets of the default grid (> 1).
        bisection_steps: Bisection rounds after the coarse pass (each halves the brackets).
        tolerance: Stop bisecting an image once its bracket is at most this wide.

    Example:
        >>> search = MinimalEpsilonSearch("apgd", {"steps": 20}, norm="l2", eps_max=2.0)
        >>> result = search(model, images, labels)  # doctest: +SKIP
        >>> result.distortion_statistics().median["l2"]  # doctest: +SKIP
        0.61
    """

    def __init__(
        self,
        attack: str | Attack = "pgd",
        attack_args: Mapping[str, Any] | None = None,
        *,
        norm: str | None = None,
        eps_max: float | str,
        grid: Sequence[float | str] | None = None,
        coarse_steps: int = 5,
        growth: float = 2.0,
        bisection_steps: int = 8,
        tolerance: float = 0.0,
    ) -> None:
        if isinstance(attack, Attack):
            if attack_args:
                raise ConfigError("attack_args only apply when the attack is given by name")
            if norm is not None and norm != attack.norm:
                raise ConfigError(f"norm {norm!r} differs from the attack's norm {attack.norm!r}")
            self.attack = attack
        else:
            args = dict(attack_args or {})
            for fixed in ("eps", "norm"):
                if fixed in args:
                    raise ConfigError(
                        f"attack_args must not set {fixed!r}: the search chooses the budgets "
                        "and the norm is its own argument"
                    )
            with warnings.catch_warnings():  # its default eps is not searched: eps_max is
                warnings.filterwarnings("ignore", ".*cannot reach the edge of its budget")
                self.attack = create_attack(attack, norm=norm or "linf", **args)
        self.norm = self.attack.norm
        self.eps_max = check_budget(self.attack.name, self.norm, eps_max, "eps_max")
        self.attack.warn_if_short_of_budget(self.eps_max)
        if self.eps_max <= 0:
            raise ConfigError(f"eps_max must be > 0, got {eps_max!r}")
        if int(bisection_steps) < 0:
            raise ConfigError(f"bisection_steps must be >= 0, got {bisection_steps}")
        if tolerance < 0:
            raise ConfigError(f"tolerance must be >= 0, got {tolerance}")
        self.bisection_steps = int(bisection_steps)
        self.tolerance = float(tolerance)
        self.grid = self._make_grid(grid, int(coarse_steps), float(growth))

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> MinimalEpsilonSearch:
        """Build a search from one flat mapping, as a suite's ``minimal_eps`` entry writes it.

        Args:
            settings: ``attack`` (a registered name, default ``"pgd"``), the search's own
                settings (``eps_max``, ``norm``, ``grid``, ``coarse_steps``, ``growth``,
                ``bisection_steps``, ``tolerance``), and any other key as a setting of the
                attack (``steps``, ``restarts``, ...).

        Example:
            >>> search = MinimalEpsilonSearch.from_settings(
            ...     {"attack": "pgd", "norm": "linf", "eps_max": "16/255", "steps": 10}
            ... )
            >>> search.attack.label, search.bisection_steps
            ('pgd10_linf', 8)
        """
        search_settings = {
            name
            for name, parameter in inspect.signature(cls.__init__).parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        }
        attack_args = dict(settings)
        attack = attack_args.pop("attack", "pgd")
        if not isinstance(attack, str):
            raise ConfigError(f"'attack' must be a registered attack name, got {attack!r}")
        search_args = {k: attack_args.pop(k) for k in search_settings if k in attack_args}
        if "eps_max" not in search_args:
            raise ConfigError(f"a minimal-eps search needs 'eps_max', got {dict(settings)}")
        return cls(attack, attack_args, **search_args)

    def _make_grid(
        self, grid: Sequence[float | str] | None, coarse_steps: int, growth: float
    ) -> tuple[float, ...]:
        if grid is None:
            if coarse_steps < 1:
                raise ConfigError(f"coarse_steps must be >= 1, got {coarse_steps}")
            if not growth > 1:
                raise ConfigError(f"growth must be > 1, got {growth}")
            return tuple(self.eps_max / growth**k for k in reversed(range(coarse_steps)))
        values = sorted({parse_eps(g, "grid budget") for g in grid} | {self.eps_max})
        if values[0] <= 0 or values[-1] > self.eps_max:
            raise ConfigError(
                f"grid budgets must lie in (0, eps_max={self.eps_max:g}], got {list(grid)}"
            )
        return tuple(values)

    @property
    def config(self) -> dict[str, Any]:
        """Settings to report with the results."""
        attack = {k: v for k, v in self.attack.config.items() if k != "eps"}
        return {
            **attack,
            "eps_max": self.eps_max,
            "grid": list(self.grid),
            "bisection_steps": self.bisection_steps,
            "tolerance": self.tolerance,
        }

    def __call__(
        self,
        model: Model,
        images: Tensor,
        labels: Tensor,
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
    ) -> MinimalEpsilonResult:
        """Search the minimal ε of every image.

        Args:
            model: Maps images (N, C, H, W) in [0, 1] to logits (N, K).
            images: Clean images (N, C, H, W) in [0, 1].
            labels: Labels (N,) (or soft labels (N, K), scored by their most probable class).
            generator: Random generator for the attack's random starts, consumed by the
                attack calls in order (the same generator state gives the same result).
            batch_size: Search this many images at a time (``None``: all at once).

        Returns:
            A :class:`MinimalEpsilonResult`.
        """
        check_images(images)
        if labels.shape[:1] != images.shape[:1]:
            raise ConfigError(
                f"labels must have {images.shape[0]} entries, got shape {tuple(labels.shape)}"
            )
        check_attack_labels(labels, images.shape[0])  # dtype, shape, >= 0; classes: below
        n = images.shape[0]
        if n == 0:
            raise EmptyInputError("minimal-eps search got 0 images: there is nothing to attack")
        step = max(n, 1) if batch_size is None else int(batch_size)
        if step < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if self.attack.name != "square":  # gradient attacks need finite input gradients
            first = images[: min(step, n)]
            with preserve_mode(model, False) if isinstance(model, nn.Module) else nullcontext():
                checked_input_gradient(
                    model, first, class_indices(labels[: len(first)]), "the searched model"
                )
        parts = [
            self._search(model, images[i : i + step], labels[i : i + step], generator)
            for i in range(0, max(n, 1), step)
        ]
        return MinimalEpsilonResult(
            min_eps=torch.cat([p.min_eps for p in parts]),
            lower=torch.cat([p.lower for p in parts]),
            adversarial=torch.cat([p.adversarial for p in parts]),
            clean_correct=torch.cat([p.clean_correct for p in parts]),
            norm=self.norm,
            eps_max=self.eps_max,
            attack_calls=sum(p.attack_calls for p in parts),
        )

    def _search(
        self, model: Model, images: Tensor, labels: Tensor, generator: torch.Generator | None
    ) -> MinimalEpsilonResult:
        device = images.device
        n = images.shape[0]
        hard = class_indices(labels)
        correct = self._correct(model, images, hard, labels)
        min_eps = torch.full((n,), math.inf, device=device)
        min_eps[~correct] = 0.0
        lower = torch.zeros(n, device=device)
        adversarial = images.detach().clone()
        calls = 0

        # Coarse pass: attack the still-unbroken images at each grid budget in turn.
        previous = 0.0
        for eps, active in cascade(self.grid, lambda: torch.isinf(min_eps)):
            adv = self.attack(model, images[active], labels[active], eps=eps, generator=generator)
            calls += 1
            fooled = ~self._correct(model, adv, hard[active])
            broken = active[fooled]
            min_eps[broken] = eps
            lower[broken] = previous
            adversarial[broken] = adv[fooled]
            lower[active[~fooled]] = eps
            previous = eps

        # Bisection: one call per round, every bracketed image with its own budget.
        def bracketed() -> Tensor:
            return torch.isfinite(min_eps) & (min_eps > 0) & (min_eps - lower > self.tolerance)

        for _, index in cascade(range(self.bisection_steps), bracketed):
            mid = (lower[index] + min_eps[index]) / 2
            adv = self.attack(model, images[index], labels[index], eps=mid, generator=generator)
            calls += 1
            fooled = ~self._correct(model, adv, hard[index])
            min_eps[index[fooled]] = mid[fooled]
            adversarial[index[fooled]] = adv[fooled]
            lower[index[~fooled]] = mid[~fooled]

        return MinimalEpsilonResult(
            min_eps=min_eps,
            lower=lower,
            adversarial=adversarial,
            clean_correct=correct,
            norm=self.norm,
            eps_max=self.eps_max,
            attack_calls=calls,
        )

    @staticmethod
    @torch.no_grad()
    def _correct(
        model: Model, images: Tensor, labels: Tensor, given_labels: Tensor | None = None
    ) -> Tensor:
        """(N,) bool: the model classifies ``images`` as ``labels`` (class indices).

        Raises:
            NonFiniteError: NaN or infinite logits.
            InputRangeError: ``given_labels`` (the caller's labels, checked once per search)
                do not fit the width of the logits.
        """
        if isinstance(model, nn.Module):
            with preserve_mode(model, False):
                logits = model(as_model_input(model, images))
        else:
            logits = model(images)
        check_logits_shape(logits, len(images))
        check_finite_logits(logits)
        if given_labels is not None:
            check_attack_labels(given_labels, images.shape[0], logits.shape[-1])
        return logits.argmax(dim=1) == labels
