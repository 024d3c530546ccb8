"""FAB-T, the targeted Fast Adaptive Boundary attack (Croce & Hein, ICML 2020).

FAB looks for the adversarial point closest to the image, in L∞ or L2. Towards a target class
t it linearises the logit difference ``g(x) = z_t(x) − z_y(x)`` at the current point ``x_k``
(one gradient per iteration) and projects both ``x_k`` and the clean image ``x_orig`` onto the
hyperplane ``{z : g(x_k) + ⟨∇g(x_k), z − x_k⟩ = 0}`` with minimal-norm steps ``δ_k`` and
``δ_orig`` that keep the images in [0, 1] (:mod:`robustart.attacks.hyperplane`). The next point
is a step biased towards the clean image,

    x_{k+1} = clip((1 − α)(x_k + η δ_k) + α (x_orig + η δ_orig)),
    α = min(‖δ_k‖ / (‖δ_k‖ + ‖δ_orig‖), α_max),

with the overshoot η. Once ``x_{k+1}`` is misclassified it is recorded if it is the closest
such point so far, and the attack steps back towards the image,
``x_{k+1} ← (1 − β) x_orig + β x_{k+1}``, to look for a closer one.

As in AutoAttack, FAB-T runs in turn towards the ``num_targets`` classes with the highest clean
logits other than the true class, each with ``restarts`` runs of ``steps`` iterations, and only
on the points not yet broken within ε. The first run of a target starts from the image, later
ones from a uniform random point in the ball of radius ``min(‖best‖, ε) / 2``, ``‖best‖``
being the closest adversarial point found so far. FAB minimises the distortion; with a budget
ε, the smallest adversarial perturbation found per image is returned if its norm is at most ε,
the clean image otherwise (the same convention as :class:`~robustart.attacks.cw.CarliniWagnerL2`).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from robustart.attacks.base import (
    ATTACKS,
    Attack,
    Model,
    check_integer,
    check_number,
    device_type,
)
from robustart.attacks.hyperplane import hyperplane_projection
from robustart.attacks.losses import class_indices, top_other_classes
from robustart.attacks.threat import clip_to_box, per_sample
from robustart.attacks.tracking import ClosestTracker, cascade
from robustart.errors import ConfigError


@ATTACKS.register("fab_t")
class FABTargeted(Attack):
    """FAB-T: the targeted, minimal-distortion Fast Adaptive Boundary attack, L∞ or L2.

    Always runs in fp32 (half precision overflows FAB's projections), also inside an ensemble
    that runs in mixed precision.

    Args:
        eps: Budget ε; adversarial points found farther away are returned clean.
        norm: ``"linf"`` or ``"l2"``.
        steps: Iterations per run (100 in AutoAttack).
        restarts: Runs per target class; all but the first start from a random point.
        num_targets: Most target classes tried, by decreasing clean logit (9 in AutoAttack):
            every other class of a model with at most ``num_targets`` + 1 classes (the
            setting is recorded as given).
        alpha_max: Largest bias α of a step towards the clean image (0.1).
        eta: Overshoot η of the projections (1.05).
        beta: Backward step β towards the clean image after a success (0.9).
        **kwargs: ``mode`` of :class:`~robustart.attacks.base.Attack`.

    Example:
        >>> attack = FABTargeted(eps="8/255", steps=100)
        >>> attack.label
        'fab_t100_linf'
    """

    name = "fab_t"
    norms = ("linf", "l2")

    def __init__(
        self,
        eps: float | str = 8 / 255,
        norm: str = "linf",
        steps: int = 100,
        restarts: int = 1,
        num_targets: int = 9,
        alpha_max: float = 0.1,
        eta: float = 1.05,
        beta: float = 0.9,
        **kwargs,
    ) -> None:
        if "loss" in kwargs:
            raise ConfigError(
                "fab_t follows the targeted logit margin and takes no loss; drop 'loss'"
            )
        if kwargs.get("precision", "fp32") != "fp32":
            raise ConfigError("fab_t always runs in fp32 (half precision overflows FAB)")
        super().__init__(eps=eps, norm=norm, loss="margin", **kwargs)
        self.steps = check_integer(self.name, "steps", steps)
        self.restarts = check_integer(self.name, "restarts", restarts)
        self.num_targets = check_integer(self.name, "num_targets", num_targets)
        self.alpha_max = check_number(self.name, "alpha_max", alpha_max, low=0.0, high=1.0)
        self.eta = check_number(self.name, "eta", eta, low=1.0)
        self.beta = check_number(self.name, "beta", beta, low=0.0, high=1.0)
        self.loss_name = "margin_targeted"

    @property
    def config(self) -> dict:
        return {
            **super().config,
            "steps": self.steps,
            "restarts": self.restarts,
            "num_targets": self.num_targets,
            "alpha_max": self.alpha_max,
            "eta": self.eta,
            "beta": self.beta,
        }

    @property
    def label_stem(self) -> str:
        return "fab_t"

    def perturb(
        self,
        model: Model,
        images: Tensor,
        labels: Tensor,
        eps: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        with torch.autocast(device_type(model), enabled=False):
            return self._perturb(model, images.float(), class_indices(labels), eps, generator)

    def _perturb(
        self,
        model: Model,
        images: Tensor,
        labels: Tensor,
        eps: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        with torch.no_grad():
            logits = self.forward(model, images)
        if logits.shape[1] < 2:
            raise ConfigError(f"fab_t needs at least 2 classes, the model has {logits.shape[1]}")
        targets = top_other_classes(logits, labels, self.num_targets)
        # misclassified images are their own closest adversarial point
        closest = ClosestTracker(images, torch.where(logits.argmax(dim=1) != labels, 0.0, math.inf))
        runs = itertools.product(range(targets.shape[1]), range(self.restarts))
        for (k, restart), active in cascade(
            runs,
            lambda: (closest.distance > eps) & (eps > 0),  # not broken within ε
        ):
            radius = torch.minimum(closest.distance[active], eps[active]) / 2 if restart else None
            found = self.run(
                model, images[active], labels[active], targets[active, k], radius, generator
            )
            closest.update(found.images, found.distance, torch.isfinite(found.distance), active)
        return closest.within(eps, images)

    def run(
        self,
        model: Model,
        images: Tensor,
        labels: Tensor,
        targets: Tensor,
        radius: Tensor | None,
        generator: torch.Generator | None,
    ) -> ClosestTracker:
        """One run of ``steps`` FAB iterations towards ``targets``.

        Args:
            model: Maps images to logits (N, K).
            images: Clean images (n, C, H, W) in [0, 1].
            labels: True classes (n,).
            targets: Target classes (n,).
            radius: Radius (n,) of the ball of random starting points; ``None`` starts from
                the clean images.
            generator: Random generator for the starting point.

        Returns:
            The closest misclassified point found per image (n, C, H, W) in [0, 1] (the clean
            image where none was found) and its distance to the image (n,) (``inf`` where
            none was found), as a :class:`~robustart.attacks.tracking.ClosestTracker`.
        """
        if radius is None:
            x = images.clone()
        else:
            x = images + clip_to_box(images, self.threat.random_init(images, radius, generator))
        found = ClosestTracker(images)

        def record(point: Tensor, logits: Tensor) -> Tensor:
            """Keep the closest misclassified points; return the misclassified mask."""
            fooled = logits.argmax(dim=1) != labels
            found.update(point, self.threat.norm(point - images), fooled)
            return fooled

        logits, margin, normal = self._linearise(model, x, labels, targets)
        if radius is not None:
            record(x, logits)
        lower, upper = -images, 1 - images
        for step in range(self.steps):
            delta = hyperplane_projection(normal, -margin, -x, 1 - x, self.norm)
            offset = -margin - (normal * (images - x)).flatten(1).sum(dim=1)
            delta_orig = hyperplane_projection(normal, offset, lower, upper, self.norm)
            size, size_orig = self.threat.norm(delta), self.threat.norm(delta_orig)
            alpha = (size / (size + size_orig).clamp_min(1e-12)).clamp(max=self.alpha_max)
            alpha = per_sample(alpha, x)
            x = (1 - alpha) * (x + self.eta * delta) + alpha * (images + self.eta * delta_orig)
            x = x.clamp(0.0, 1.0)
            with torch.no_grad():
                fooled = record(x, self.forward(model, x))
            if step == self.steps - 1:
                break
            # after a success, step back towards the image to look for a closer point
            backward = (1 - self.beta) * images + self.beta * x
            x = torch.where(per_sample(fooled, x).bool(), backward, x)
            _, margin, normal = self._linearise(model, x, labels, targets)
        return found

    def _linearise(
        self, model: Model, x: Tensor, labels: Tensor, targets: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Logits (n, K), the margin ``z_t − z_y`` (n,) and its input gradient (n, C, H, W) at
        ``x``: one forward and one backward pass."""
        x = x.detach().requires_grad_(True)
        logits = self.forward(model, x)
        margin = (logits.gather(1, targets[:, None]) - logits.gather(1, labels[:, None])).squeeze(1)
        (normal,) = torch.autograd.grad(margin.sum(), x)
        return logits.detach(), margin.detach(), normal.detach()
