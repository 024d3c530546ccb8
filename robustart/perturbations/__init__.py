"""ImageNet-P / CIFAR-10-P perturbation sequences generated on the images' device.

Example:
    >>> from robustart.perturbations import perturb, is_noise_sequence
    >>> perturb(torch.rand(2, 3, 32, 32), "rotate").shape  # (N, 31, C, H, W)
    torch.Size([2, 31, 3, 32, 32])
    >>> is_noise_sequence("gaussian_noise")
    True
"""

from robustart.perturbations import blur, geometric, noise, weather  # noqa: F401  (registers)
from robustart.perturbations.base import (
    BENCHMARK_PERTURBATIONS,
    EXTRA_PERTURBATIONS,
    PERTURBATIONS,
    Perturbation,
    create_perturbation,
    is_noise_sequence,
    perturb,
)

__all__ = [
    "BENCHMARK_PERTURBATIONS",
    "EXTRA_PERTURBATIONS",
    "PERTURBATIONS",
    "Perturbation",
    "create_perturbation",
    "is_noise_sequence",
    "perturb",
]
