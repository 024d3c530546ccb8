"""Per-sample losses that attacks maximise.

Each loss maps logits (N, K) and labels to a per-sample loss (N,). Labels are class indices
(N,) or soft label distributions (N, K) (Mixup/CutMix batches in adversarial training); losses
that need one class use the most probable one. Attacks maximise the sum, so each sample's
gradient does not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from robustart.errors import InputRangeError
from robustart.registry import Registry

AttackLoss = Callable[[Tensor, Tensor], Tensor]

#: Registry of attack losses: ``(logits (N, K), labels (N,)) -> loss (N,)``.
ATTACK_LOSSES: Registry[AttackLoss] = Registry("attack loss")


def class_indices(labels: Tensor) -> Tensor:
    """(N,) class indices from labels or soft label distributions (N, K)."""
    return labels.argmax(dim=1) if labels.ndim == 2 else labels


def top_other_classes(logits: Tensor, labels: Tensor, count: int) -> Tensor:
    """The ``count`` classes with the highest logits other than the true one, best first: the
    target classes of the targeted attacks (APGD-T, FAB-T).

    Args:
        logits: Clean logits (N, K).
        labels: True classes (N,) (or soft labels (N, K)).
        count: Number of targets; at most K − 1 are returned.

    Returns:
        Target classes (N, min(count, K − 1)), int64.

    Example:
        >>> top_other_classes(torch.tensor([[0.1, 3.0, 2.0, 5.0]]), torch.tensor([3]), 2)
        tensor([[1, 2]])
    """
    num_classes = logits.shape[1]
    order = logits.argsort(dim=1, descending=True)
    true = class_indices(labels)[:, None]
    others = order[order != true].view(order.shape[0], num_classes - 1)
    return others[:, : min(count, num_classes - 1)]


@ATTACK_LOSSES.register("ce")
def cross_entropy_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of the true class (Madry et al.'s PGD loss); soft labels give the
    cross-entropy to the label distribution."""
    return F.cross_entropy(logits, labels, reduction="none")


@ATTACK_LOSSES.register("margin")
def margin_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Carlini-Wagner margin ``max_{i≠y} z_i − z_y``: positive once the sample is misclassified."""
    labels = class_indices(labels)
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return others.amax(dim=1) - true


@ATTACK_LOSSES.register("dlr")
def dlr_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Difference of logits ratio (Croce & Hein, 2020):
    ``−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3)`` with π sorting the logits in decreasing order.

    Invariant to shifting and rescaling the logits; needs at least 3 classes.
    """
    _check_classes(logits, 3, "dlr")
    labels = class_indices(labels)
    sorted_logits = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, labels[:, None]).squeeze(1)
    is_top = sorted_logits[:, 0] == true
    best_other = torch.where(is_top, sorted_logits[:, 1], sorted_logits[:, 0])
    scale = sorted_logits[:, 0] - sorted_logits[:, 2] + 1e-12
    return -(true - best_other) / scale


def targeted_dlr_loss(logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
    """Targeted DLR (APGD-T): ``−(z_y − z_t) / (z_π1 − (z_π3 + z_π4) / 2)``; needs ≥ 4 classes.

    Args:
        logits: (N, K).
        labels: True classes (N,) (or soft labels).
        targets: Target classes (N,).
    """
    _check_classes(logits, 4, "targeted dlr")
    labels = class_indices(labels)
    sorted_logits = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, labels[:, None]).squeeze(1)
    target = logits.gather(1, targets[:, None]).squeeze(1)
    scale = sorted_logits[:, 0] - 0.5 * (sorted_logits[:, 2] + sorted_logits[:, 3]) + 1e-12
    return -(true - target) / scale


@ATTACK_LOSSES.register("kl")
def kl_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """``KL(p ‖ softmax(logits))`` to a reference distribution ``p`` given as soft labels (N, K)
    (TRADES' inner maximisation uses the clean prediction as ``p``)."""
    if labels.ndim != 2:
        raise InputRangeError(
            "the kl attack loss needs soft labels (N, K), e.g. clean probabilities; evaluate "
            "with loss ce (or dlr, cw) on class labels"
        )
    log_q = F.log_softmax(logits, dim=1)
    return F.kl_div(log_q, labels, reduction="none").sum(dim=1)


def _check_classes(logits: Tensor, minimum: int, what: str) -> None:
    if logits.shape[1] < minimum:
        from robustart.errors import ConfigError

        raise ConfigError(
            f"the {what} loss needs at least {minimum} classes, the model has {logits.shape[1]}"
        )


def misclassified(logits: Tensor, labels: Tensor) -> Tensor:
    """Boolean (N,): the top-1 prediction differs from the (most probable) label."""
    return logits.argmax(dim=1) != class_indices(labels)


def check_logits(logits: Tensor) -> None:
    """Refuse model outputs that look like probabilities (attacks need logits)."""
    from robustart.errors import InputRangeError
    from robustart.utils import check_logits_shape

    check_logits_shape(logits, len(logits) if isinstance(logits, Tensor) else 0)
    with torch.no_grad():
        looks_like_probs = (
            logits.shape[1] > 1
            and bool(((logits >= 0) & (logits <= 1)).all())
            and bool(torch.allclose(logits.sum(dim=1), torch.ones_like(logits[:, 0]), atol=1e-4))
        )
    if looks_like_probs:
        raise InputRangeError(
            "the model's outputs are probabilities (non-negative rows summing to 1), but attacks "
            "need logits: remove the final softmax from the model. Attacking softmax outputs "
            "saturates gradients and overstates robustness."
        )
