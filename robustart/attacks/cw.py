"""Carlini & Wagner's L2 attack (2017): a minimal-distortion attack."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from robustart.attacks.base import (
    ATTACKS,
    MinimalDistortionAttack,
    Model,
    check_flag,
    check_integer,
    check_number,
)
from robustart.attacks.losses import class_indices
from robustart.attacks.tracking import ClosestTracker


@ATTACKS.register("cw")
class CarliniWagnerL2(MinimalDistortionAttack):
    """C&W-L2: minimise ``‖δ‖₂² + c · max(z_y − max_{i≠y} z_i, −κ)`` over ``x + δ`` in
    tanh space (so the box holds), with Adam, and a per-sample binary search over ``c``.

    The result is each image's smallest successful perturbation found. With a finite ``eps``,
    points whose perturbation exceeds ε are returned clean (the attack failed at that
    budget), so one run at ε = ∞ gives the whole accuracy-vs-ε curve through the distances.

    Args:
        eps: L2 budget; ``"inf"`` (default) for unbounded minimal distortion.
        steps: Adam iterations per binary-search step (1,000 in the paper).
        binary_steps: Binary-search steps over the constant c (9).
        initial_const: Initial c (0.01, as in Su et al.).
        lr: Adam learning rate (0.01).
        kappa: Confidence margin κ (0).
        abort_early: Stop a search step when the objective stops improving.
        **kwargs: ``mode`` and ``precision`` of :class:`~robustart.attacks.base.Attack`.
    """

    name = "cw"
    norms = ("l2",)

    def __init__(
        self,
        eps: float | str = "inf",
        norm: str = "l2",
        steps: int = 1000,
        binary_steps: int = 9,
        initial_const: float = 0.01,
        lr: float = 0.01,
        kappa: float = 0.0,
        abort_early: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(eps=eps, norm=norm, **kwargs)
        self.steps = check_integer(self.name, "steps", steps)
        self.binary_steps = check_integer(self.name, "binary_steps", binary_steps)
        self.initial_const = check_number(
            self.name, "initial_const", initial_const, low=0.0, low_open=True
        )
        self.lr = check_number(self.name, "lr", lr, low=0.0, low_open=True)
        # κ < 0 stops the margin term before the boundary: no image is ever broken
        self.kappa = check_number(self.name, "kappa", kappa, low=0.0)
        self.abort_early = check_flag(self.name, "abort_early", abort_early)

    @property
    def config(self) -> dict:
        return {
            **super().config,
            "steps": self.steps,
            "binary_steps": self.binary_steps,
            "initial_const": self.initial_const,
            "lr": self.lr,
            "kappa": self.kappa,
        }

    @property
    def label(self) -> str:
        return f"cw{self.steps}x{self.binary_steps}_l2"

    def perturb(
        self,
        model: Model,
        images: Tensor,
        labels: Tensor,
        eps: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        labels = class_indices(labels)
        n = images.shape[0]
        device = images.device
        # the whole batch (one forward of ~1000): a shape error then names the batch size
        one_hot = F.one_hot(labels, self.forward(model, images).shape[1]).bool()
        closest = ClosestTracker(images)
        const = torch.full((n,), self.initial_const, device=device)
        lower = torch.zeros(n, device=device)
        upper = torch.full((n,), math.inf, device=device)
        w_clean = torch.atanh((images * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))

        for _ in range(self.binary_steps):
            w = w_clean.clone().requires_grad_(True)
            optimizer = torch.optim.Adam([w], lr=self.lr)
            succeeded = torch.zeros(n, dtype=torch.bool, device=device)
            previous = math.inf
            for step in range(self.steps):
                adversarial = (torch.tanh(w) + 1) / 2
                logits = self.forward(model, adversarial)
                true = logits.masked_select(one_hot)
                other = logits.masked_fill(one_hot, -math.inf).amax(dim=1)
                margin = (true - other).clamp_min(-self.kappa)
                dist = (adversarial - images).flatten(1).square().sum(dim=1)
                objective = (dist + const * margin).sum()
                optimizer.zero_grad()
                objective.backward()
                optimizer.step()
                with torch.no_grad():
                    fooled = logits.argmax(dim=1) != labels
                    closest.update(adversarial.detach(), dist.sqrt(), fooled)
                    succeeded |= fooled
                if self.abort_early and step % max(self.steps // 10, 1) == 0:
                    if objective.item() > previous * 0.9999:
                        break
                    previous = objective.item()
            # binary search on c: smaller after a success, larger after a failure
            upper = torch.where(succeeded, torch.minimum(upper, const), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, const))
            const = torch.where(torch.isinf(upper), const * 10, (lower + upper) / 2)
        return closest.within(eps, images)
