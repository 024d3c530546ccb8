"""Auto-PGD (Croce & Hein, 2020): APGD-CE, APGD-DLR and the targeted APGD-T.

APGD needs no step-size tuning: every sample starts with step η = 2ε, moves with momentum
0.75, and halves its step at checkpoints when progress stalls, restarting from its best point.
Checkpoints follow the paper: the first after 22 % of the iterations, then intervals that shrink
by 3 % of the iterations down to 6 %. A checkpoint halves the step of a sample if

1. its loss rose in fewer than ρ = 75 % of the steps since the previous checkpoint, or
2. its step was not halved at the previous checkpoint and its best loss has not improved since.

Each sample's strongest point is kept (a misclassified point beats any other). Only points
still classified correctly are attacked, and restarts run on those that remain.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustart.attacks.base import (
    ATTACKS,
    Attack,
    Model,
    check_flag,
    check_integer,
    check_number,
)
from robustart.attacks.losses import misclassified, targeted_dlr_loss, top_other_classes
from robustart.attacks.threat import clip_to_box, per_sample
from robustart.attacks.tracking import BestTracker, SubsetTracker, cascade
from robustart.errors import ConfigError


def checkpoint_intervals(steps: int) -> list[int]:
    """Iterations between APGD's step-size checkpoints: 22 % of ``steps`` first, then shrinking
    by 3 % down to 6 %, until ``steps`` is covered.

    Example:
        >>> checkpoint_intervals(100)[:5]
        [22, 19, 16, 13, 10]
    """
    first = max(int(0.22 * steps), 1)
    shrink, minimum = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    intervals, total, k = [], 0, first
    while total < steps:
        intervals.append(k)
        total += k
        k = max(k - shrink, minimum)
    return intervals


@ATTACKS.register("apgd")
class APGD(Attack):
    """Auto-PGD with the cross-entropy (``loss="ce"``) or DLR (``loss="dlr"``) loss.

    Args:
        eps: Budget ε.
        norm: ``"linf"`` or ``"l2"``.
        steps: Iterations (100 in AutoAttack).
        restarts: Random restarts (on the points still robust).
        loss: ``"ce"`` (APGD-CE) or ``"dlr"`` (APGD-DLR); any registered attack loss works.
        momentum: Momentum α of the update (0.75).
        rho: Oscillation threshold ρ of checkpoint condition 1 (0.75).
        initial_step: Initial step as a multiple of ε (2).
        random_start: Start from a uniform random point in the ball.
        **kwargs: ``mode`` and ``precision`` of :class:`~robustart.attacks.base.Attack`.
    """

    name = "apgd"

    def __init__(
        self,
        eps: float | str = 8 / 255,
        norm: str = "linf",
        steps: int = 100,
        restarts: int = 1,
        loss: str = "ce",
        momentum: float = 0.75,
        rho: float = 0.75,
        initial_step: float = 2.0,
        random_start: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(eps=eps, norm=norm, loss=loss, **kwargs)
        self.steps = check_integer(self.name, "steps", steps)
        self.restarts = check_integer(self.name, "restarts", restarts)
        self.momentum = check_number(
            self.name, "momentum", momentum, low=0.0, high=1.0, low_open=True
        )
        self.rho = check_number(self.name, "rho", rho, low=0.0, high=1.0, low_open=True)
        self.initial_step = check_number(
            self.name, "initial_step", initial_step, low=0.0, low_open=True
        )
        self.random_start = check_flag(self.name, "random_start", random_start)

    @property
    def config(self) -> dict:
        return {
            **super().config,
            "steps": self.steps,
            "restarts": self.restarts,
            "momentum": self.momentum,
            "rho": self.rho,
        }

    @property
    def label_stem(self) -> str:
        return f"apgd_{self.loss_name}"

    def perturb(
        self,
        model: Model,
        images: Tensor,
        labels: Tensor,
        eps: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        tracker = BestTracker(images)
        with torch.no_grad():
            logits = self.forward(model, images)
        tracker.update(images, self.loss_fn(logits, labels), misclassified(logits, labels))
        runs = self.losses(logits, labels) * self.restarts  # every loss, once per restart
        for loss_fn, active in cascade(runs, tracker.pending):
            self.run(
                model,
                images[active],
                labels[active],
                eps[active],
                generator,
                tracker.subset(active),
                _restrict(loss_fn, active),
            )
        return tracker.images

    def losses(self, clean_logits: Tensor, labels: Tensor) -> list:
        """The losses to run in turn, as ``(logits, labels) -> (N,)`` functions over the whole
        batch (APGD-T returns one per target class)."""
        return [self.loss_fn]

    def run(
        self,
        model: Model,
        x: Tensor,
        y: Tensor,
        eps: Tensor,
        generator: torch.Generator | None,
        tracker: SubsetTracker,
        loss_fn,
    ) -> None:
        """One APGD run on a batch; offers every iterate to ``tracker``."""
        n = x.shape[0]
        step = per_sample(self.initial_step * eps, x)

        def project(candidate: Tensor) -> Tensor:
            return x + clip_to_box(x, self.threat.project(candidate - x, eps))

        def evaluate(point: Tensor, need_grad: bool = True) -> tuple[Tensor, Tensor | None]:
            """Loss (n,) and its input gradient at ``point``; offers ``point`` to the tracker.
            The last iterate needs no gradient, which saves one backward pass."""
            point = point.detach().requires_grad_(need_grad)
            with torch.set_grad_enabled(need_grad):
                logits = self.forward(model, point)
                loss = loss_fn(logits, y)
            grad = torch.autograd.grad(loss.sum(), point)[0].detach() if need_grad else None
            tracker.update(point.detach(), loss.detach(), misclassified(logits.detach(), y))
            return loss.detach(), grad

        if self.random_start:
            adv = x + clip_to_box(x, self.threat.random_init(x, eps, generator))
        else:
            adv = x.clone()
        loss, grad = evaluate(adv)
        best_loss, best_point, best_grad = loss.clone(), adv.clone(), grad.clone()
        previous = adv.clone()
        intervals = iter(checkpoint_intervals(self.steps))
        interval, since_check = next(intervals), 0
        increases = torch.zeros(n, device=x.device)
        best_at_check = best_loss.clone()
        halved_at_check = torch.zeros(n, dtype=torch.bool, device=x.device)

        for i in range(self.steps):
            a = 1.0 if i == 0 else self.momentum
            z = project(adv + self.threat.step(grad, step))
            new = project(adv + a * (z - adv) + (1 - a) * (adv - previous))
            previous, adv = adv, new
            if i == self.steps - 1:  # the last iterate is only scored
                evaluate(adv, need_grad=False)
                return
            new_loss, grad = evaluate(adv)
            increases += (new_loss > loss).float()
            loss = new_loss
            improved = loss > best_loss
            best_loss = torch.where(improved, loss, best_loss)
            improved_x = per_sample(improved, x).bool()
            best_point = torch.where(improved_x, adv, best_point)
            best_grad = torch.where(improved_x, grad, best_grad)
            since_check += 1
            if since_check == interval and i < self.steps - 1:
                oscillating = increases < self.rho * interval
                stalled = ~halved_at_check & (best_loss <= best_at_check)
                halve = oscillating | stalled
                halve_x = per_sample(halve, x).bool()
                step = torch.where(halve_x, step / 2, step)
                adv = torch.where(halve_x, best_point, adv)
                grad = torch.where(halve_x, best_grad, grad)
                halved_at_check, best_at_check = halve, best_loss.clone()
                increases.zero_()
                since_check = 0
                interval = next(intervals, interval)
                if bool(tracker.all_fooled()):
                    return


@ATTACKS.register("apgd_t")
class APGDTargeted(APGD):
    """APGD-T: APGD with the targeted DLR loss, run in turn towards each of the
    ``num_targets`` classes with the highest clean logits other than the true class (9 in
    AutoAttack). A sample counts as broken when it is misclassified as any class.

    Args:
        num_targets: Most target classes tried: every other class of a model with at most
            ``num_targets`` + 1 classes (the setting is recorded as given).
        **kwargs: :class:`APGD` settings (``loss`` is fixed to targeted DLR).
    """

    name = "apgd_t"

    def __init__(
        self, eps: float | str = 8 / 255, norm: str = "linf", num_targets: int = 9, **kwargs
    ) -> None:
        if "loss" in kwargs:
            raise ConfigError("apgd_t always uses the targeted DLR loss; drop 'loss'")
        super().__init__(eps=eps, norm=norm, loss="dlr", **kwargs)
        self.num_targets = check_integer(self.name, "num_targets", num_targets)
        self.loss_name = "dlr_targeted"

    @property
    def config(self) -> dict:
        return {**super().config, "num_targets": self.num_targets}

    @property
    def label_stem(self) -> str:
        return "apgd_t"

    def losses(self, clean_logits: Tensor, labels: Tensor) -> list:
        num_classes = clean_logits.shape[1]
        if num_classes < 4:
            raise ConfigError(f"apgd_t needs at least 4 classes, the model has {num_classes}")
        targets = top_other_classes(clean_logits, labels, self.num_targets)
        return [_targeted(targets[:, k]) for k in range(targets.shape[1])]


def _targeted(targets: Tensor):
    def loss(logits: Tensor, labels: Tensor, index: Tensor | None = None) -> Tensor:
        chosen = targets if index is None else targets[index]
        return targeted_dlr_loss(logits, labels, chosen)

    loss.per_sample_targets = True  # type: ignore[attr-defined]
    return loss


def _restrict(loss_fn, index: Tensor):
    """Bind a per-sample-target loss to the samples ``index`` (plain losses pass through)."""
    if getattr(loss_fn, "per_sample_targets", False):
        return lambda logits, labels: loss_fn(logits, labels, index)
    return loss_fn
