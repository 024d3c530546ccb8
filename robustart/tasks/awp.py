"""Adversarial weight perturbation (AWP; Wu, Xia & Wang, NeurIPS 2020).

Adversarial training perturbs the inputs; AWP perturbs the weights too (a "double
perturbation"), which flattens the weight loss landscape and narrows the robust generalisation
gap. After the adversarial examples are crafted, one step of gradient ascent on the training loss
gives a layer-wise perturbation ``v`` of relative size γ::

    v_l = γ · ‖w_l‖ · g_l / ‖g_l‖,     g_l = ∇_{w_l} loss(w; x', y)

for every weight tensor ``w_l`` of a convolution or linear layer (parameters named ``weight``
with two or more dimensions; biases and normalisation layers are not perturbed). The training
loss is then taken at ``w + v``, its gradient computed there, the weights restored to ``w``
exactly, and the optimiser steps from ``w`` with that gradient.

:class:`AdversarialWeightPerturbation` holds the perturbation of one batch; the task
(:class:`~robustart.tasks.AdversarialTrainingTask`, ``awp_gamma``) decides when it applies.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from robustart.errors import ConfigError

#: Guards the division by a layer's gradient norm, which can be zero.
_TINY = 1e-20


def perturbed_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters AWP perturbs: trainable ``weight`` tensors with ``ndim > 1`` (the
    kernels of convolutions and linear layers), in ``named_parameters`` order."""
    return [
        (name, p)
        for name, p in model.named_parameters()
        if p.requires_grad and p.ndim > 1 and name.rsplit(".", 1)[-1] == "weight"
    ]


@contextlib.contextmanager
def preserved_buffers(model: nn.Module) -> Iterator[None]:
    """Restore every buffer of ``model`` (BatchNorm running statistics and counters) on exit,
    so that an extra forward pass in train mode leaves no trace."""
    saved = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


class AdversarialWeightPerturbation:
    """One-step, layer-wise adversarial weight perturbation of relative size ``gamma``.

    Usage for one batch: :meth:`perturbation` from the ascent loss at ``w``, :meth:`apply` it,
    take the training loss and its gradient at ``w + v``, then :meth:`restore` ``w`` (bitwise:
    the weights are copied back, not ``v`` subtracted) before the optimiser step.

    Args:
        gamma: Relative size γ > 0 of each layer's perturbation, ``‖v_l‖ = γ‖w_l‖``
            (5e-3 in the paper's CIFAR-10 experiments).
    """

    def __init__(self, gamma: float) -> None:
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
            raise ConfigError(f"awp_gamma must be a number, got {gamma!r}")
        if not (math.isfinite(gamma) and gamma > 0):
            raise ConfigError(f"awp_gamma must be a finite number > 0, got {gamma!r}")
        self.gamma = float(gamma)
        self._saved: list[tuple[nn.Parameter, Tensor]] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(gamma={self.gamma:g})"

    @property
    def applied(self) -> bool:
        """Whether a perturbation is applied and not yet restored."""
        return bool(self._saved)

    def perturbation(
        self, loss: Tensor, parameters: list[nn.Parameter], loss_scale: Tensor | float = 1.0
    ) -> list[Tensor] | None:
        """The perturbation ``v_l = γ · ‖w_l‖ · g_l / ‖g_l‖`` ascending ``loss``.

        The gradient comes from :func:`torch.autograd.grad`: nothing is accumulated in the
        parameters' ``.grad``, and the graph of ``loss`` is freed.

        Args:
            loss: Scalar training loss at the current weights, attached to their graph.
            parameters: The weights to perturb (see :func:`perturbed_parameters`).
            loss_scale: Factor applied to ``loss`` before differentiating (the AMP gradient
                scale, so that fp16 gradients do not underflow); each layer's gradient is
                normalised, so it does not change ``v``.

        Returns:
            One fp32 tensor per parameter, with its shape (zero for a parameter the loss does
            not depend on), or ``None`` if some gradient is not finite (an AMP overflow): skip
            the perturbation for this batch.
        """
        grads = torch.autograd.grad(loss * loss_scale, parameters, allow_unused=True)
        perturbation = []
        for weight, grad in zip(parameters, grads, strict=True):
            if grad is None:
                perturbation.append(torch.zeros_like(weight, dtype=torch.float32))
                continue
            grad = grad.detach().float()
            grad_norm = grad.norm()
            if not bool(torch.isfinite(grad_norm)):
                return None
            size = self.gamma * weight.detach().float().norm() / (grad_norm + _TINY)
            perturbation.append(grad * size)
        return perturbation

    def apply(self, parameters: list[nn.Parameter], perturbation: list[Tensor]) -> None:
        """Save the weights and add ``perturbation`` to them in place."""
        if self._saved:
            raise RuntimeError("an adversarial weight perturbation is already applied")
        self._saved = [(weight, weight.detach().clone()) for weight in parameters]
        with torch.no_grad():
            for weight, v in zip(parameters, perturbation, strict=True):
                weight.add_(v.to(weight.dtype))

    def restore(self) -> None:
        """Copy the saved weights back (bitwise); a no-op when nothing is applied."""
        with torch.no_grad():
            for weight, value in self._saved:
                weight.copy_(value)
        self._saved = []
