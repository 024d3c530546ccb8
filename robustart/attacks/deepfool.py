"""DeepFool (Moosavi-Dezfooli et al., CVPR 2016): a minimal-distortion attack that walks to the
nearest decision boundary of the classifier's local linearisation."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustart.attacks.base import (
    ATTACKS,
    MinimalDistortionAttack,
    Model,
    check_integer,
    check_number,
)
from robustart.attacks.losses import class_indices
from robustart.attacks.threat import per_sample
from robustart.attacks.tracking import ClosestTracker, cascade
from robustart.errors import ConfigError

#: Guards divisions by a gradient norm that can be zero.
_TINY = 1e-12
#: Every step goes this much (in the attack's norm) beyond the linearised boundary, as in the
#: authors' implementation: with the overshoot on the accumulated perturbation alone, the
#: iterates can converge onto the boundary from the correct side and never cross it.
PUSH = 1e-4


@ATTACKS.register("deepfool")
class DeepFool(MinimalDistortionAttack):
    """DeepFool, multi-class version (Algorithm 2 of the paper), for L2 and L∞.

    At each iteration every still-correct image ``x_i`` is linearised around the candidate
    classes: for each class ``k`` among the ``num_classes`` with the highest clean logits
    (the true class ``y`` excluded), ``f'_k = f_k(x_i) − f_y(x_i)`` and
    ``w'_k = ∇f_k(x_i) − ∇f_y(x_i)``. The class with the nearest linearised boundary,
    ``l = argmin_k |f'_k| / ‖w'_k‖_q`` (``q`` the dual norm: 2 for L2, 1 for L∞), gives the
    step onto that hyperplane::

        L2:  r_i = (|f'_l| / ‖w'_l‖₂ + 10⁻⁴) · w'_l / ‖w'_l‖₂
        L∞:  r_i = (|f'_l| / ‖w'_l‖₁ + 10⁻⁴) · sign(w'_l)

    (the 10⁻⁴ push, as in the authors' code, makes each step cross the linearised boundary).
    Steps accumulate, ``r = Σ r_i``, and the iterate is ``x + (1 + overshoot) · r`` clipped to
    [0, 1] (the accumulated ``r`` is clipped with it). An image stops as soon as it is
    misclassified, after at most ``steps`` iterations. The gradients of one iteration take
    ``num_classes − 1`` backward passes over the batch of still-active images (one per
    candidate rank), so images must not interact in the model: BatchNorm in eval mode
    (``mode: eval``, the default).

    The result is each image's DeepFool perturbation. Images DeepFool does not break within
    ``steps``, and images whose perturbation exceeds ε, are returned clean (the attack failed
    at that budget), so one run at ε = ∞ (the default) gives the minimal distortions and the
    whole accuracy-vs-ε curve. Images the model already misclassifies are returned clean.

    Args:
        eps: Budget in the attack's norm; ``"inf"`` (default) for unbounded minimal
            distortion.
        norm: ``l2`` (default) or ``linf``.
        steps: Maximum iterations (50, as the reference implementation).
        overshoot: The accumulated perturbation is scaled by ``1 + overshoot`` (0.02) so that
            it crosses the boundary instead of landing on it.
        num_classes: Candidate classes: the ``num_classes`` highest clean logits, the true
            class among them (10, as the paper's ImageNet experiments; all classes when the
            model has fewer).
        **kwargs: ``mode`` and ``precision`` of :class:`~robustart.attacks.base.Attack`.
    """

    name = "deepfool"
    norms = ("linf", "l2")

    def __init__(
        self,
        eps: float | str = "inf",
        norm: str = "l2",
        steps: int = 50,
        overshoot: float = 0.02,
        num_classes: int = 10,
        **kwargs,
    ) -> None:
        if "loss" in kwargs:
            raise ConfigError(
                "deepfool linearises the logit differences f_k − f_y and takes no loss; drop 'loss'"
            )
        super().__init__(eps=eps, norm=norm, **kwargs)
        self.steps = check_integer(self.name, "steps", steps)
        self.overshoot = check_number(self.name, "overshoot", overshoot, low=0.0)
        self.num_classes = check_integer(self.name, "num_classes", num_classes, minimum=2)

    @property
    def config(self) -> dict:
        config = {k: v for k, v in super().config.items() if k != "loss"}
        return {
            **config,
            "steps": self.steps,
            "overshoot": self.overshoot,
            "num_classes": self.num_classes,
        }

    def perturb(
        self,
        model: Model,
        images: Tensor,
        labels: Tensor,
        eps: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        labels = class_indices(labels)
        scale = 1.0 + self.overshoot
        with torch.no_grad():
            clean_logits = self.forward(model, images)
        k = min(self.num_classes, clean_logits.shape[1])
        if k < 2:
            raise ConfigError("deepfool needs a model with at least 2 classes")
        # (N, k) candidate classes; for a correctly classified image the first is its label
        candidates = clean_logits.topk(k, dim=1).indices
        active = (candidates[:, 0] == labels) & (eps > 0)
        fooled = torch.zeros_like(active)
        total = torch.zeros_like(images)  # the accumulated r (before the overshoot)
        adversarial = images.clone()

        for _, index in cascade(range(self.steps), lambda: active):
            x = adversarial[index].requires_grad_(True)
            logits = self.forward(model, x)
            wrong = logits.detach().argmax(dim=1) != labels[index]
            fooled[index[wrong]] = True
            active[index[wrong]] = False
            step, moved = self._step(x, logits, candidates[index], ~wrong)
            active[index[~moved & ~wrong]] = False  # zero gradients: DeepFool cannot move
            with torch.no_grad():
                keep = index[moved]
                total[keep] += step[moved]
                start = images[keep]
                adversarial[keep] = (start + scale * total[keep]).clamp(0.0, 1.0)
                total[keep] = (adversarial[keep] - start) / scale
        index = active.nonzero().squeeze(1)
        if index.numel() > 0:  # the last iterate has not been checked yet
            with torch.no_grad():
                wrong = self.forward(model, adversarial[index]).argmax(dim=1) != labels[index]
            fooled[index[wrong]] = True

        closest = ClosestTracker(images)
        closest.update(adversarial, self.threat.norm(adversarial - images), fooled)
        return closest.within(eps, images)

    def _step(
        self, x: Tensor, logits: Tensor, candidates: Tensor, correct: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One DeepFool step for the images ``x`` (M, C, H, W) with ``logits`` (M, K).

        Args:
            x: The current iterates, requiring gradients.
            logits: Their logits, still attached to the graph of ``x``.
            candidates: (M, k) candidate classes, the label first.
            correct: (M,) bool, images still classified correctly (the others get no step).

        Returns:
            The step r_i (M, C, H, W) onto the nearest linearised boundary, and (M,) bool: a
            finite step exists (some candidate has a nonzero gradient difference).
        """
        label_logit = logits.gather(1, candidates[:, :1])  # (M, 1)
        differences = logits.gather(1, candidates[:, 1:]) - label_logit  # (M, k − 1): f'_k < 0
        weight = correct.to(differences.dtype)
        best_distance = torch.full((x.shape[0],), math.inf, device=x.device)
        best_direction = torch.zeros_like(x)
        dual = 2.0 if self.norm == "l2" else 1.0
        for rank in range(differences.shape[1]):
            (direction,) = torch.autograd.grad(
                (differences[:, rank] * weight).sum(),
                x,
                retain_graph=rank < differences.shape[1] - 1,
            )
            value = differences[:, rank].detach().abs()
            dual_norm = direction.flatten(1).norm(p=dual, dim=1)
            distance = torch.where(dual_norm > _TINY, value / dual_norm.clamp_min(_TINY), math.inf)
            better = distance < best_distance
            best_distance = torch.where(better, distance, best_distance)
            best_direction = torch.where(better.view(-1, 1, 1, 1), direction, best_direction)
        moved = correct & torch.isfinite(best_distance)
        length = torch.where(moved, best_distance + PUSH, 0.0)  # the step's norm
        unit = self.threat.step(best_direction, 1.0)  # w'/‖w'‖₂ (L2) or sign(w') (L∞)
        return unit * per_sample(length, x), moved
