"""Threat models: the norm-specific pieces every attack shares.

A :class:`ThreatModel` knows how to measure a perturbation, project it back into its ε-ball,
take a steepest-ascent step and draw a random start. Budgets ``eps`` may be a Python float or a
per-sample tensor of shape (N,), which lets one batch carry several budgets (minimal-ε search).

All perturbations ``delta`` have the images' shape (N, C, H, W). Box constraints (images stay in
[0, 1]) are applied separately with :func:`clip_to_box`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from robustart.registry import Registry

#: Registry of threat models, keyed by norm name ("linf", "l2", "l1").
THREAT_MODELS: Registry[type[ThreatModel]] = Registry("norm")

#: Guards divisions by a norm that can be zero.
_TINY = 1e-12


def per_sample(value: float | Tensor, like: Tensor) -> Tensor:
    """Broadcast a scalar or (N,) tensor to shape (N, 1, 1, 1) matching ``like``."""
    if isinstance(value, Tensor):
        return value.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.ndim - 1)))
    return torch.full(
        (like.shape[0],) + (1,) * (like.ndim - 1),
        float(value),
        device=like.device,
        dtype=like.dtype,
    )


def clip_to_box(images: Tensor, delta: Tensor) -> Tensor:
    """Shrink ``delta`` so that ``images + delta`` lies in [0, 1]."""
    return (images + delta).clamp_(0.0, 1.0) - images


class ThreatModel(ABC):
    """An Lp ball: measure, project, step and sample perturbations of shape (N, C, H, W)."""

    name: str

    @abstractmethod
    def norm(self, delta: Tensor) -> Tensor:
        """Per-sample norm of ``delta``, shape (N,)."""

    @abstractmethod
    def project(self, delta: Tensor, eps: float | Tensor) -> Tensor:
        """Project ``delta`` onto the ball of radius ``eps`` (scalar or (N,))."""

    @abstractmethod
    def step(self, grad: Tensor, step_size: float | Tensor) -> Tensor:
        """The steepest-ascent step of length ``step_size`` in this norm, given the gradient."""

    @abstractmethod
    def random_init(
        self, like: Tensor, eps: float | Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """A random perturbation inside the ball, drawn independently per sample."""

    def mask_box(self, grad: Tensor, adversarial: Tensor) -> Tensor:
        """Zero gradient coordinates that would push a pixel already at 0 or 1 further out.

        Harmless for L∞ and L2 (clipping undoes such moves); the L1 threat model uses it so
        that its sparse steps are not wasted on saturated pixels.
        """
        return grad


@THREAT_MODELS.register("linf")
class LinfThreat(ThreatModel):
    """L∞ ball: every pixel moves by at most ε."""

    name = "linf"

    def norm(self, delta: Tensor) -> Tensor:
        return delta.flatten(1).abs().amax(dim=1)

    def project(self, delta: Tensor, eps: float | Tensor) -> Tensor:
        bound = per_sample(eps, delta)
        return torch.maximum(torch.minimum(delta, bound), -bound)

    def step(self, grad: Tensor, step_size: float | Tensor) -> Tensor:
        return grad.sign() * per_sample(step_size, grad)

    def random_init(
        self, like: Tensor, eps: float | Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        u = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        return (2 * u - 1) * per_sample(eps, like)


@THREAT_MODELS.register("l2")
class L2Threat(ThreatModel):
    """L2 ball: the perturbation's Euclidean norm over all pixels is at most ε."""

    name = "l2"

    def norm(self, delta: Tensor) -> Tensor:
        return delta.flatten(1).norm(p=2, dim=1)

    def project(self, delta: Tensor, eps: float | Tensor) -> Tensor:
        norms = per_sample(self.norm(delta), delta)
        factor = torch.clamp(per_sample(eps, delta) / (norms + _TINY), max=1.0)
        return delta * factor

    def step(self, grad: Tensor, step_size: float | Tensor) -> Tensor:
        norms = per_sample(self.norm(grad), grad)
        return grad / (norms + _TINY) * per_sample(step_size, grad)

    def random_init(
        self, like: Tensor, eps: float | Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        # Uniform in the ball: a Gaussian direction and a radius eps * U^(1/d).
        direction = torch.randn(
            like.shape, generator=generator, device=like.device, dtype=like.dtype
        )
        direction = direction / (per_sample(self.norm(direction), like) + _TINY)
        dim = like[0].numel()
        u = torch.rand(like.shape[0], generator=generator, device=like.device, dtype=like.dtype)
        radius = per_sample(eps, like) * per_sample(u ** (1.0 / dim), like)
        return direction * radius


@THREAT_MODELS.register("l1")
class L1Threat(ThreatModel):
    """L1 ball: the sum of absolute pixel changes is at most ε.

    Steps are sparse (Tramèr & Boneh's SLIDE): only the ``1 − sparsity`` fraction of
    coordinates with the largest gradient magnitude move, by equal amounts summing to the step
    size. Projection onto the ball is exact (Duchi et al., 2008); the [0, 1] box is enforced
    afterwards by clipping, which only shrinks the L1 norm.
    """

    name = "l1"
    #: Fraction of coordinates left unchanged by a step (SLIDE's percentile q).
    sparsity = 0.95

    def norm(self, delta: Tensor) -> Tensor:
        return delta.flatten(1).abs().sum(dim=1)

    def project(self, delta: Tensor, eps: float | Tensor) -> Tensor:
        flat = delta.flatten(1)
        radius = per_sample(eps, delta).flatten(1)  # (N, 1)
        magnitude = flat.abs()
        outside = magnitude.sum(dim=1, keepdim=True) > radius
        if not bool(outside.any()):
            return delta
        # threshold θ per sample such that Σ max(|v| − θ, 0) = ε
        sorted_mag, _ = magnitude.sort(dim=1, descending=True)
        cumulative = sorted_mag.cumsum(dim=1)
        ranks = torch.arange(1, flat.shape[1] + 1, device=delta.device, dtype=delta.dtype)
        feasible = sorted_mag * ranks > cumulative - radius
        rho = feasible.to(delta.dtype).mul(ranks).argmax(dim=1, keepdim=True)  # last True
        theta = (cumulative.gather(1, rho) - radius) / (rho + 1).to(delta.dtype)
        shrunk = flat.sign() * (magnitude - theta.clamp_min(0)).clamp_min(0)
        return torch.where(outside, shrunk, flat).view_as(delta)

    def step(self, grad: Tensor, step_size: float | Tensor) -> Tensor:
        flat = grad.flatten(1)
        k = max(1, round((1 - self.sparsity) * flat.shape[1]))
        top = flat.abs().topk(k, dim=1).indices
        direction = torch.zeros_like(flat).scatter_(1, top, flat.gather(1, top).sign())
        direction = direction / direction.abs().sum(dim=1, keepdim=True).clamp_min(_TINY)
        return direction.view_as(grad) * per_sample(step_size, grad)

    def random_init(
        self, like: Tensor, eps: float | Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        # A Laplace direction on the L1 sphere and a radius eps * U^(1/d).
        u = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        laplace = -torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs().clamp(max=0.4999))
        direction = laplace / (per_sample(self.norm(laplace), like) + _TINY)
        r = torch.rand(like.shape[0], generator=generator, device=like.device, dtype=like.dtype)
        radius = per_sample(eps, like) * per_sample(r ** (1.0 / like[0].numel()), like)
        return direction * radius

    def mask_box(self, grad: Tensor, adversarial: Tensor) -> Tensor:
        blocked = ((adversarial <= 0) & (grad < 0)) | ((adversarial >= 1) & (grad > 0))
        return grad.masked_fill(blocked, 0.0)


def get_threat_model(norm: str) -> ThreatModel:
    """Instantiate the threat model registered as ``norm`` ("linf", "l2", "l1")."""
    return THREAT_MODELS.get(norm)()
