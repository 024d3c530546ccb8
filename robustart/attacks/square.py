"""Square attack (Andriushchenko et al., 2020): a score-based attack that needs no gradients.

It proposes random square-shaped changes and keeps those that lower the margin
``z_y − max_{i≠y} z_i``; each proposal costs one forward pass (query) per image still robust.
Being gradient-free, it checks white-box results against gradient masking. Windows are drawn
independently for every image, in one batched operation per iteration.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustart.attacks.base import ATTACKS, Attack, Model, check_integer, check_number
from robustart.attacks.losses import margin_loss
from robustart.attacks.threat import per_sample
from robustart.attacks.tracking import BestTracker, cascade
from robustart.errors import ConfigError, InputRangeError

#: (fraction of 10,000 queries after which, divisor of p_init) of the paper's schedule.
_P_SCHEDULE = (
    (0.001, 1),
    (0.005, 2),
    (0.02, 4),
    (0.05, 8),
    (0.1, 16),
    (0.2, 32),
    (0.4, 64),
    (0.6, 128),
    (0.8, 256),
)


def square_fraction(p_init: float, iteration: int, queries: int) -> float:
    """Fraction p of the image covered by the square at ``iteration`` (halved at the paper's
    checkpoints, which are defined for 10,000 queries and rescaled to ``queries``).

    Example:
        >>> square_fraction(0.8, 0, 5000), square_fraction(0.8, 100, 5000)
        (0.8, 0.2)
    """
    progress = iteration / queries
    divisor = next((div for until, div in _P_SCHEDULE if progress <= until), 512)
    return p_init / divisor


def _window_mask(n: int, height: int, width: int, size: int, generator, device) -> Tensor:
    """Boolean (N, 1, H, W) masks of one random ``size``×``size`` window per image."""
    top = torch.randint(0, height - size + 1, (n, 1, 1, 1), generator=generator, device=device)
    left = torch.randint(0, width - size + 1, (n, 1, 1, 1), generator=generator, device=device)
    rows = torch.arange(height, device=device).view(1, 1, -1, 1)
    cols = torch.arange(width, device=device).view(1, 1, 1, -1)
    return (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)


def _random_signs(shape: tuple[int, ...], generator, device) -> Tensor:
    return torch.randint(0, 2, shape, generator=generator, device=device).float() * 2 - 1


def _meta_pattern(size: int, device) -> Tensor:
    """The paper's L2 "meta" pattern: two opposite-signed halves of nested, 1/k²-weighted
    rectangles, normalised to unit L2 norm. Shape (size, size)."""

    def rectangles(h: int, w: int) -> Tensor:
        pattern = torch.zeros(h, w, device=device)
        ch, cw = h // 2, w // 2
        for k in range(max(ch, cw) + 1):
            pattern[max(ch - k, 0) : min(ch + k + 1, h), max(cw - k, 0) : min(cw + k + 1, w)] += (
                1.0 / (k + 1) ** 2
            )
        return pattern / pattern.norm().clamp_min(1e-12)

    half = size // 2
    pattern = torch.cat([rectangles(half, size), -rectangles(size - half, size)], dim=0)
    return pattern / pattern.norm().clamp_min(1e-12)


@ATTACKS.register("square")
class Square(Attack):
    """Square attack, L∞ or L2, with a query budget per image.

    Args:
        eps: Budget ε.
        norm: ``"linf"`` or ``"l2"``.
        queries: Forward passes per image (5,000 in AutoAttack).
        p_init: Initial fraction of the image covered by a square (0.8).
        restarts: Independent restarts on the images still robust.
        **kwargs: ``mode`` and ``precision`` of :class:`~robustart.attacks.base.Attack`.
    """

    name = "square"

    def __init__(
        self,
        eps: float | str = 8 / 255,
        norm: str = "linf",
        queries: int = 5000,
        p_init: float = 0.8,
        restarts: int = 1,
        **kwargs,
    ) -> None:
        if kwargs.get("loss", "margin") != "margin":
            raise ConfigError("the square attack uses the margin loss; drop 'loss'")
        kwargs["loss"] = "margin"
        super().__init__(eps=eps, norm=norm, **kwargs)
        self.queries = check_integer(self.name, "queries", queries)
        self.p_init = check_number(self.name, "p_init", p_init, low=0.0, high=1.0, low_open=True)
        self.restarts = check_integer(self.name, "restarts", restarts)

    @property
    def config(self) -> dict:
        return {
            **super().config,
            "queries": self.queries,
            "p_init": self.p_init,
            "restarts": self.restarts,
        }

    def _margin(self, model: Model, images: Tensor, labels: Tensor) -> Tensor:
        with torch.no_grad():
            return margin_loss(self.forward(model, images), labels).neg()

    def perturb(
        self,
        model: Model,
        images: Tensor,
        labels: Tensor,
        eps: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        if min(images.shape[-2:]) < 2:
            # its squares are at most (side - 1) pixels: on a 1-pixel side every proposal is
            # empty, and the attack would report the clean accuracy as robust
            raise InputRangeError(
                f"attack 'square' needs images of at least 2×2 pixels, got "
                f"{images.shape[-2]}×{images.shape[-1]}; use a gradient attack (pgd, apgd_ce)"
            )
        tracker = BestTracker(images)
        margin = self._margin(model, images, labels)
        tracker.update(images, -margin, margin < 0)
        for _, active in cascade(range(self.restarts), tracker.pending):
            best, fooled = self._run(model, images[active], labels[active], eps[active], generator)
            tracker.update(best, torch.zeros(len(active), device=images.device), fooled, active)
        return tracker.images

    def _run(
        self, model: Model, x: Tensor, y: Tensor, eps: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        n, c, _h, w = x.shape
        device = x.device
        radius = per_sample(eps, x)
        if self.norm == "linf":  # vertical stripes of ±ε
            best = (x + radius * _random_signs((n, c, 1, w), generator, device)).clamp(0, 1)
        else:
            best = self._l2_init(x, radius, generator)
        margin = self._margin(model, best, y)
        for i in range(self.queries - 1):
            active = (margin >= 0).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            p = square_fraction(self.p_init, i, self.queries)
            xa, ba, ra = x[active], best[active], radius[active]
            if self.norm == "linf":
                candidate = self._linf_proposal(xa, ba, ra, p, generator)
            else:
                candidate = self._l2_proposal(xa, ba, ra, p, generator)
            new_margin = self._margin(model, candidate, y[active])
            better = new_margin < margin[active]
            best[active[better]] = candidate[better]
            margin[active] = torch.minimum(new_margin, margin[active])
        return best, margin < 0

    @staticmethod
    def _size(p: float, h: int, w: int, minimum: int = 1) -> int:
        return min(max(round(math.sqrt(p * h * w)), minimum), h - 1, w - 1)

    def _linf_proposal(
        self, x: Tensor, best: Tensor, radius: Tensor, p: float, generator
    ) -> Tensor:
        n, c, h, w = x.shape
        mask = _window_mask(n, h, w, self._size(p, h, w), generator, x.device)
        signs = _random_signs((n, c, 1, 1), generator, x.device)
        candidate = torch.where(mask, (x + radius * signs).clamp(0, 1), best)
        unchanged = (candidate - best).flatten(1).abs().sum(dim=1) < 1e-7
        if bool(unchanged.any()):  # the window already held these signs: flip them
            flipped = torch.where(mask, (x - radius * signs).clamp(0, 1), best)
            candidate[unchanged] = flipped[unchanged]
        return candidate

    def _l2_init(self, x: Tensor, radius: Tensor, generator) -> Tensor:
        """Tiles of meta patterns with random signs per tile and channel, scaled to norm ε."""
        n, c, h, w = x.shape
        tile = max(h // 5, 1)
        pattern = _meta_pattern(tile, x.device)
        delta = torch.zeros_like(x)
        top0, left0 = (h - tile * (h // tile)) // 2, (w - tile * (w // tile)) // 2
        for r in range(h // tile):
            for col in range(w // tile):
                signs = _random_signs((n, c, 1, 1), generator, x.device)
                top, left = top0 + r * tile, left0 + col * tile
                delta[:, :, top : top + tile, left : left + tile] += pattern * signs
        return (x + self.threat.step(delta, radius)).clamp(0, 1)  # rescaled to norm ε

    def _l2_proposal(self, x: Tensor, best: Tensor, radius: Tensor, p: float, generator) -> Tensor:
        """Move the perturbation mass of a random window (plus a fresh meta pattern) into it,
        emptying a second window, so the total L2 norm stays at ε."""
        n, c, h, w = x.shape
        size = self._size(p, h, w, minimum=3)
        size += 1 - size % 2  # odd, as in the paper
        size = min(size, h - 1, w - 1)
        delta = best - x
        first = _window_mask(n, h, w, size, generator, x.device)
        second = _window_mask(n, h, w, size, generator, x.device)
        both = first | second
        norm_first = (delta * first).square().sum(dim=(2, 3), keepdim=True).sqrt()
        norm_both = (delta * both).square().sum(dim=(2, 3), keepdim=True).sqrt()
        norm_total = per_sample(self.threat.norm(delta), delta)
        pattern = _meta_pattern(size, x.device)
        if bool(torch.rand(1, generator=generator, device=x.device) > 0.5):
            pattern = pattern.t()
        fresh = torch.zeros_like(x)
        signs = _random_signs((n, c, 1, 1), generator, x.device)
        # place the pattern inside each image's first window
        rows = first.any(dim=3, keepdim=True).float().cumsum(dim=2) - 1
        cols = first.any(dim=2, keepdim=True).float().cumsum(dim=3) - 1
        r = rows.clamp(0, size - 1).long().expand(n, 1, h, w)
        k = cols.clamp(0, size - 1).long().expand(n, 1, h, w)
        fresh = pattern[r, k] * first * signs
        moved = fresh + delta * first / (norm_first + 1e-12)
        moved_norm = (moved * first).square().sum(dim=(2, 3), keepdim=True).sqrt()
        budget = (
            (radius.square() - norm_total.square()).clamp_min(0) / c + norm_both.square()
        ).sqrt()
        new_delta = torch.where(both, torch.zeros_like(delta), delta)
        new_delta = torch.where(first, moved / (moved_norm + 1e-12) * budget, new_delta)
        return (x + self.threat.step(new_delta, radius)).clamp(0, 1)
