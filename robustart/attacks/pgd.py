"""Projected gradient ascent (Madry et al., 2018) and its special cases FGSM and MI-FGSM."""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from robustart.attacks.base import (
    ATTACKS,
    Attack,
    Model,
    check_budget,
    check_flag,
    check_integer,
    check_number,
)
from robustart.attacks.losses import misclassified
from robustart.attacks.threat import clip_to_box, per_sample
from robustart.attacks.tracking import BestTracker, SubsetTracker, cascade
from robustart.errors import ConfigError, RobustartWarning


@ATTACKS.register("pgd")
class PGD(Attack):
    """Projected gradient ascent on the loss inside an Lp ball.

    Each restart draws a random start in the ball (``random_start``), then takes ``steps``
    steepest-ascent steps, projecting onto the ball and the [0, 1] box after each. Restarts run
    only on samples that are still classified correctly. For L1 the steps are sparse (see
    :class:`~robustart.attacks.threat.L1Threat`).

    Args:
        eps: Budget ε.
        norm: ``"linf"``, ``"l2"`` or ``"l1"``.
        steps: Number of gradient steps k.
        step_size: Absolute step α. ``None`` uses ``rel_step_size · ε``.
        rel_step_size: Step as a fraction of ε when ``step_size`` is None; ``None`` means
            ``2.5 / steps`` (Madry et al.), i.e. 2/255 for 10 steps at 8/255.
        random_start: ``True``/``"uniform"``: start from a uniform random point in the ball;
            ``"normal"``: from ``x + 0.001·N(0, 1)`` (TRADES); ``False``: from the image.
        restarts: Number of random restarts; the per-sample strongest point is kept.
        track_best: Return the strongest iterate of each sample (evaluation). ``False`` returns
            the last iterate, as adversarial training does.
        early_stop: Stop once every sample is fooled (needs ``track_best``; the result is the
            same, only faster).
        **kwargs: ``loss``, ``mode``, ``precision`` of :class:`~robustart.attacks.base.Attack`.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
        >>> images, labels = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
        >>> attack = PGD(eps="8/255", steps=10)
        >>> adv = attack(model, images, labels)
        >>> (adv - images).abs().amax() <= 8 / 255 + 1e-6
        tensor(True)
    """

    name = "pgd"
    norms = ("linf", "l2", "l1")

    def __init__(
        self,
        eps: float | str = 8 / 255,
        norm: str = "linf",
        steps: int = 10,
        step_size: float | str | None = None,
        rel_step_size: float | None = None,
        random_start: bool | str = True,
        restarts: int = 1,
        track_best: bool = True,
        early_stop: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(eps=eps, norm=norm, **kwargs)
        self.steps = check_integer(self.name, "steps", steps)
        self.restarts = check_integer(self.name, "restarts", restarts)
        self.step_size = (
            None
            if step_size is None
            else check_budget(  # an L∞ step above 1 is in pixel units (2, not 2/255)
                self.name,
                self.norm,
                check_number(self.name, "step_size", step_size, low=0.0, low_open=True),
                "step_size",
            )
        )
        self.rel_step_size = (
            2.5 / self.steps
            if rel_step_size is None
            else check_number(self.name, "rel_step_size", rel_step_size, low=0.0, low_open=True)
        )
        if isinstance(random_start, str) and random_start in ("uniform", "normal"):
            self.random_start: str | bool = random_start
        else:
            start = check_flag(
                self.name, "random_start", random_start, "true, false, 'uniform' or 'normal'"
            )
            self.random_start = "uniform" if start else False
        self.track_best = check_flag(self.name, "track_best", track_best)
        self.early_stop = check_flag(self.name, "early_stop", early_stop) and self.track_best
        self.warn_if_short_of_budget()

    def reach(self, eps: float | None = None) -> float:
        """How far the ``steps`` steps can move the perturbation in total, as a multiple of
        the budget ``eps`` (default: the attack's ε): ``steps · α / ε``, ``inf`` for ε = 0."""
        eps = self.eps if eps is None else float(eps)
        if self.step_size is None:
            return self.steps * self.rel_step_size
        return self.steps * self.step_size / eps if eps > 0 else math.inf

    def warn_if_short_of_budget(self, eps: float | None = None) -> None:
        """Warn when ``steps · α < ε`` (ε: ``eps``, default the attack's): the iterates cannot
        cross the ball, so the attack is weaker than its budget says (a robust accuracy that
        overstates robustness, or adversarial training against a smaller ε). Sweeps over
        several budgets call this for each."""
        eps = self.eps if eps is None else float(eps)
        if self.norm == "l1" or math.isinf(eps) or self.reach(eps) >= 1 - 1e-6:
            return
        step = self.step_size if self.step_size is not None else self.rel_step_size * eps
        warnings.warn(
            f"{self.name}: {self.steps} step(s) of {step:.4g} move the perturbation at most "
            f"{self.steps * step:.4g}, less than eps={eps:.4g}, so the attack cannot reach "
            "the edge of its budget; raise step_size or steps (Madry et al.: step_size = "
            "2.5·eps/steps, the default when step_size is null)",
            RobustartWarning,
            stacklevel=3,
        )

    @property
    def config(self) -> dict:
        return {
            **super().config,
            "steps": self.steps,
            "restarts": self.restarts,
            "step_size": self.step_size
            if self.step_size is not None
            else f"{self.rel_step_size:g}*eps",
            "random_start": self.random_start,
        }

    def perturb(
        self,
        model: Model,
        images: Tensor,
        labels: Tensor,
        eps: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        if self.restarts == 1 and not self.track_best:
            return self._run(model, images, labels, eps, generator, tracker=None)
        tracker = BestTracker(images)
        for restart, active in cascade(range(self.restarts), tracker.pending):
            sub = tracker.subset(active)
            last = restart == self.restarts - 1
            final = self._run(
                model, images[active], labels[active], eps[active], generator, sub, last
            )
            if not self.track_best:  # score the last iterate of this restart
                with torch.no_grad():
                    logits = self.forward(model, final)
                sub.update(
                    final,
                    self.loss_fn(logits, labels[active]),
                    misclassified(logits, labels[active]),
                )
        return tracker.images

    def _run(
        self,
        model: Model,
        images: Tensor,
        labels: Tensor,
        eps: Tensor,
        generator: torch.Generator | None,
        tracker: SubsetTracker | None,
        last_restart: bool = True,
    ) -> Tensor:
        """One restart: random start then ``steps`` projected steps. Returns the last iterate.

        With best-point tracking, every iterate but the last is scored by the forward pass that
        computes its gradient. The last iterate needs a forward pass of its own; on the last
        restart it is skipped and the last iterate goes to the samples that no earlier iterate
        fooled (:meth:`~robustart.attacks.tracking.BestTracker.offer_unscored`): the robust
        accuracy is the same, and PGD-k costs exactly k forward and backward passes.
        """
        step = per_sample(
            eps * self.rel_step_size if self.step_size is None else self.step_size, images
        )
        delta = self.initial_delta(images, eps, generator)
        track = tracker is not None and self.track_best
        state: dict = {}
        for _ in range(self.steps):
            loss, logits, grad = self.loss_and_grad(model, images + delta, labels)
            if track:
                fooled = misclassified(logits, labels)
                tracker.update(images + delta, loss, fooled)
                if self.early_stop and bool(tracker.all_fooled()):
                    return images + delta
            grad = self.threat.mask_box(grad, images + delta)
            delta = delta + self.threat.step(self.ascent_direction(grad, state), step)
            delta = clip_to_box(images, self.threat.project(delta, eps))
        adversarial = images + delta
        if track and last_restart:
            tracker.offer_unscored(adversarial)
        elif track:
            with torch.no_grad():
                logits = self.forward(model, adversarial)
            tracker.update(adversarial, self.loss_fn(logits, labels), misclassified(logits, labels))
        return adversarial

    def initial_delta(
        self, images: Tensor, eps: Tensor, generator: torch.Generator | None
    ) -> Tensor:
        """The starting perturbation of one restart (inside the ball and the box)."""
        if self.random_start == "uniform":
            delta = self.threat.random_init(images, eps, generator)
        elif self.random_start == "normal":
            noise = torch.randn(
                images.shape, generator=generator, device=images.device, dtype=images.dtype
            )
            delta = self.threat.project(0.001 * noise, eps)
        else:
            return torch.zeros_like(images)
        return clip_to_box(images, delta)

    def ascent_direction(self, grad: Tensor, state: dict) -> Tensor:
        """The direction handed to the threat model's steepest step (the gradient for PGD;
        ``state`` persists across the steps of one restart, e.g. for momentum)."""
        return grad


@ATTACKS.register("fgsm")
class FGSM(PGD):
    """Fast gradient sign method (Goodfellow et al., 2015): one step of size ε, no random start.

    For ``norm="l2"`` this is the fast gradient method (one normalised-gradient step of
    length ε).
    """

    norms = ("linf", "l2")

    name = "fgsm"

    def __init__(self, eps: float | str = 8 / 255, norm: str = "linf", **kwargs) -> None:
        for fixed in ("steps", "step_size", "rel_step_size", "random_start", "restarts"):
            if fixed in kwargs:
                raise ConfigError(f"FGSM has no setting {fixed!r}; use the 'pgd' attack instead")
        super().__init__(
            eps=eps, norm=norm, steps=1, rel_step_size=1.0, random_start=False, restarts=1, **kwargs
        )

    @property
    def label(self) -> str:
        return f"fgsm_{self.norm}"


@ATTACKS.register("mifgsm")
class MIFGSM(PGD):
    """Momentum iterative FGSM (Dong et al., 2018): steps follow the sign of an accumulated,
    L1-normalised gradient ``g ← μ·g + ∇ / ‖∇‖₁``; step ε / steps, no random start.

    Args:
        eps: Budget ε.
        norm: ``"linf"`` or ``"l2"``.
        steps: Iterations.
        decay: Momentum decay μ (1.0 in the paper).
        **kwargs: Other :class:`PGD` settings (``restarts``, ``track_best``, ``loss``, ...).
    """

    name = "mifgsm"
    norms = ("linf", "l2")

    def __init__(
        self,
        eps: float | str = 8 / 255,
        norm: str = "linf",
        steps: int = 10,
        decay: float = 1.0,
        **kwargs,
    ) -> None:
        steps = check_integer(self.name, "steps", steps)
        kwargs.setdefault("random_start", False)
        kwargs.setdefault("rel_step_size", 1.0 / steps)
        super().__init__(eps=eps, norm=norm, steps=steps, **kwargs)
        self.decay = check_number(self.name, "decay", decay, low=0.0)

    @property
    def config(self) -> dict:
        return {**super().config, "decay": self.decay}

    def ascent_direction(self, grad: Tensor, state: dict) -> Tensor:
        normalised = grad / grad.flatten(1).abs().sum(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        momentum = state.get("momentum")
        state["momentum"] = normalised if momentum is None else self.decay * momentum + normalised
        return state["momentum"]
