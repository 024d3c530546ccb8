"""Minimal-ε search: each image's smallest budget at which an attack succeeds.

Following Su et al. (ECCV 2018) and ARES-Bench, the budget of an iterative attack (PGD, APGD,
...) is searched per image: a coarse pass over an increasing grid of budgets brackets each
image's minimal ε, then bisection narrows the bracket. Everything is batched: every step is one
attack call over all images still being searched, each with its own budget (attacks take a
per-sample ε tensor). One search gives

* the whole robust-accuracy-vs-ε curve (:func:`accuracy_curve`): an image is robust at ε exactly
  when its minimal ε is larger than ε, and
* distortion statistics (:func:`distortion_statistics`): mean and median minimal perturbation of
  the points the attack breaks.

Conventions: the minimal ε of an image the model already misclassifies is 0; an image the attack
does not break within ``eps_max`` gets ``inf``.

Example:
    >>> search = MinimalEpsilonSearch("pgd", {"steps": 10}, norm="linf", eps_max="16/255")
    >>> result = search(model, images, labels, generator=make_generator(0))  # doctest: +SKIP
    >>> accuracy_curve(result.min_eps, [0, 2 / 255, 8 / 255])  # doctest: +SKIP
    tensor([0.9800, 0.9100, 0.3400])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from robustart.attacks.base import Attack, Model, check_attack_labels, create_attack
from robustart.attacks.losses import class_indices
from robustart.errors import ConfigError, EmptyInputError
from robustart.utils import check_finite_logits, check_images, parse_eps, preserve_mode

__all__ = [
    "DistortionStatistics",
    "MinimalEpsilonResult",
    "MinimalEpsilonSearch",
    "accuracy_curve",
    "distortion_statistics",
]


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
        """Mean and median minimal ε (in the search's norm) of the broken images."""
        return distortion_statistics(self.min_eps, norm=self.norm)


@dataclass
class DistortionStatistics:
    """Mean and median perturbation size of successful attacks, per norm.

    Attributes:
        count: Number of successful points the statistics are over.
        mean: ``{norm: mean}``; ``None`` when there is no successful point.
        median: ``{norm: median}`` (for an even count the lower of the two middle values, as
            :class:`~robustart.metrics.PerturbationNorms` reports it); ``None`` when empty.
    """

    count: int
    mean: dict[str, float | None]
    median: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        """Flat dictionary ``{count, <norm>_mean, <norm>_median}``."""
        out: dict[str, Any] = {"count": self.count}
        for norm in self.mean:
            out[f"{norm}_mean"] = self.mean[norm]
            out[f"{norm}_median"] = self.median[norm]
        return out


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


def distortion_statistics(
    values: Tensor, success: Tensor | None = None, norm: str = "linf"
) -> DistortionStatistics:
    """Mean and median size of the successful perturbations.

    Two inputs are accepted:

    * minimal budgets ``min_eps`` (N,) from a search: the successful points are those with a
      finite, positive minimal ε (clean-misclassified points, ε = 0, are left out, as are
      unbroken ones); the statistics are reported under ``norm``;
    * perturbations ``adversarial − images`` (N, C, H, W): by default every row counts as
      successful; statistics are reported for ``"linf"`` and ``"l2"``.

    Args:
        values: (N,) minimal budgets or (N, C, H, W) perturbations.
        success: Optional (N,) bool mask further restricting the successful points.
        norm: Norm of the budgets in the (N,) form.

    Returns:
        :class:`DistortionStatistics`.

    Example:
        >>> stats = distortion_statistics(torch.tensor([0.0, 0.1, 0.2, 0.6, float("inf")]))
        >>> stats.count, round(stats.mean["linf"], 3), round(stats.median["linf"], 3)
        (3, 0.3, 0.2)
    """
    if values.ndim == 1:
        keep = torch.isfinite(values) & (values > 0)
        norms = {norm: values.double()}
    elif values.ndim >= 2:
        flat = values.detach().flatten(1).double()
        keep = torch.ones(values.shape[0], dtype=torch.bool, device=values.device)
        norms = {"linf": flat.abs().amax(dim=1), "l2": flat.norm(dim=1)}
    else:
        raise ConfigError("values must be (N,) budgets or (N, ...) perturbations, got a scalar")
    if success is not None:
        if success.shape != keep.shape:
            raise ConfigError(
                f"success must have shape {tuple(keep.shape)}, got {tuple(success.shape)}"
            )
        keep = keep & success.to(keep.device).bool()
    count = int(keep.sum())
    mean: dict[str, float | None] = {}
    median: dict[str, float | None] = {}
    for name, value in norms.items():
        chosen = value[keep]
        mean[name] = float(chosen.mean()) if count else None
        median[name] = float(chosen.median()) if count else None
    return DistortionStatistics(count, mean, median)


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
            self.attack = create_attack(attack, norm=norm or "linf", **args)
        self.norm = self.attack.norm
        self.eps_max = parse_eps(eps_max, "eps_max")
        if self.eps_max <= 0:
            raise ConfigError(f"eps_max must be > 0, got {eps_max!r}")
        if int(bisection_steps) < 0:
            raise ConfigError(f"bisection_steps must be >= 0, got {bisection_steps}")
        if tolerance < 0:
            raise ConfigError(f"tolerance must be >= 0, got {tolerance}")
        self.bisection_steps = int(bisection_steps)
        self.tolerance = float(tolerance)
        self.grid = self._make_grid(grid, int(coarse_steps), float(growth))

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
        active = correct.nonzero().squeeze(1)
        previous = 0.0
        for eps in self.grid:
            if active.numel() == 0:
                break
            adv = self.attack(model, images[active], labels[active], eps=eps, generator=generator)
            calls += 1
            fooled = ~self._correct(model, adv, hard[active])
            broken = active[fooled]
            min_eps[broken] = eps
            lower[broken] = previous
            adversarial[broken] = adv[fooled]
            lower[active[~fooled]] = eps
            active = active[~fooled]
            previous = eps

        # Bisection: one call per round, every bracketed image with its own budget.
        for _ in range(self.bisection_steps):
            open_ = torch.isfinite(min_eps) & (min_eps > 0) & (min_eps - lower > self.tolerance)
            index = open_.nonzero().squeeze(1)
            if index.numel() == 0:
                break
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
                logits = model(images)
        else:
            logits = model(images)
        check_finite_logits(logits)
        if given_labels is not None:
            check_attack_labels(given_labels, images.shape[0], logits.shape[-1])
        return logits.argmax(dim=1) == labels
