"""AugMix (Hendrycks et al., 2020): mixed augmentation chains plus a Jensen–Shannon
consistency loss between a clean image and its AugMix views.

The views are made per image in the data loader (:class:`AugMix`, a datamodule
``augment_policy``): with ``views: 3`` (the paper's setting) each training item is a stack
``(clean, augmix_1, augmix_2)`` of shape (3, C, H, W), so batches are (N, 3, C, H, W).
:class:`~robustart.tasks.ClassificationTask` recognises such batches, runs all views through
the network in one forward pass (BatchNorm sees them together, as in the reference code), takes
the cross-entropy on the clean view and adds ``consistency_weight ·`` :func:`jensen_shannon`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms import v2

from robustart.augment.checks import check_concentration, check_int_range
from robustart.augment.policy import AUGMENT_POLICIES, AugmentPolicy
from robustart.errors import ConfigError
from robustart.utils import check_flag

#: Mixture probabilities are clamped here before the logarithm (the reference code's value).
MIXTURE_FLOOR = 1e-7


@AUGMENT_POLICIES.register("augmix")
class AugMix(AugmentPolicy):
    """AugMix views of each image.

    Each AugMix view mixes ``width`` chains of ``depth`` random operations (1–3 when
    ``depth: -1``) with Dirichlet(α) weights, then blends the mixture with the image with a
    Beta(α, α) weight. ``all_ops: false`` (the default, as in the paper) excludes operations
    that overlap the ImageNet-C / CIFAR-C test corruptions (colour, contrast, brightness,
    sharpness), which keeps corruption benchmarks honest.

    YAML: ``augment_policy: {name: augmix, severity: 3, width: 3, depth: -1, alpha: 1.0}``.

    Args:
        severity: Operation strength, 1–10 (3 in the CIFAR and 1 in the ImageNet reference).
        width: Chains mixed per view.
        depth: Operations per chain; -1 draws 1–3 per chain.
        alpha: Dirichlet and Beta concentration.
        all_ops: Also use the operations that overlap the test corruptions.
        views: 1: the training image is one AugMix view (no consistency loss); V ≥ 2: the
            clean image and V − 1 AugMix views stacked as (V, C, H, W), trained with the
            Jensen–Shannon consistency loss (3 in the paper).
    """

    name = "augmix"

    def __init__(
        self,
        severity: int = 3,
        width: int = 3,
        depth: int = -1,
        alpha: float = 1.0,
        all_ops: bool = False,
        views: int = 3,
    ) -> None:
        check_int_range(self.name, "severity", severity, 1, 10)
        check_int_range(self.name, "width", width, 1)
        if check_int_range(self.name, "depth", depth, -1) == 0:
            raise ConfigError(f"{self.name}: depth must be -1 (random 1-3) or >= 1, got 0")
        check_concentration(self.name, "alpha", alpha, "for milder mixing lower width or depth")
        self.views = check_int_range(self.name, "views", views, 1)
        self.transform = v2.AugMix(
            severity=severity,
            mixture_width=width,
            chain_depth=depth,
            alpha=alpha,
            # a string ("false") would be truthy, and the operations that overlap the test
            # corruptions would silently join training
            all_ops=check_flag(self.name, "all_ops", all_ops),
        )

    def apply(self, image: Tensor) -> Tensor:
        """(C, H, W) in [0, 1] → one AugMix view (C, H, W), or (V, C, H, W) = (clean, views)."""
        if self.views == 1:
            return self.transform(image)
        return torch.stack([image, *(self.transform(image) for _ in range(self.views - 1))])


def jensen_shannon(logits: Tensor) -> Tensor:
    """Jensen–Shannon divergence among the predictions of V views, averaged over images.

    ``JS(p_1, …, p_V) = (1/V) Σ_v KL(p_v ‖ M)`` with ``M`` the mean of the ``p_v``; in nats,
    between 0 (all views predict alike) and ``ln V``.

    Args:
        logits: (V, N, K) logits, views first.

    Returns:
        A scalar ≥ 0 (up to the clamp of ``M`` at ``MIXTURE_FLOOR``).
    """
    probs = logits.float().softmax(dim=-1)
    log_mixture = probs.mean(dim=0).clamp(MIXTURE_FLOOR, 1).log()
    kl = [F.kl_div(log_mixture, p, reduction="batchmean") for p in probs]
    return torch.stack(kl).mean()
