"""Out-of-distribution detection scores (ImageNet-O): AUPR and AUROC.

As in the ImageNet-O reference evaluation (Hendrycks et al., 2021), out-of-distribution images
are the *positive* class and the anomaly score is the negative maximum softmax probability
(``−max softmax``): a confident prediction is a low anomaly score. AUPR is the average precision
``Σ_k (R_k − R_{k−1}) · P_k`` over the distinct score thresholds (highest first), the definition
of scikit-learn's ``average_precision_score``. AUROC counts tied scores as one half. Both are
torchmetrics' exact (threshold-free) ``binary_average_precision`` and ``binary_auroc``, which
return float32 (within 1e-7 of the sums in float64).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc, binary_average_precision

from robustart.errors import ConfigError, EmptyInputError, InputRangeError, NonFiniteError
from robustart.utils import as_tensor_argument, check_finite_logits, looks_like_probabilities


def max_softmax_anomaly_score(logits: Tensor) -> Tensor:
    """``−max softmax`` per row of (N, K) logits: (N,) in [−1, −1/K]; higher = more anomalous.

    Rows that are already probabilities (:func:`~robustart.utils.looks_like_probabilities`)
    are taken as they are, not put through a second softmax.

    Raises:
        InputRangeError: logits not of shape (N, K).
        NonFiniteError: NaN or infinite logits (their softmax is meaningless).
    """
    logits = as_tensor_argument(logits, "logits")
    if logits.ndim != 2:
        raise InputRangeError(f"logits must have shape (N, K), got {tuple(logits.shape)}")
    check_finite_logits(logits, "the logits given to the OOD anomaly score")
    is_probability = looks_like_probabilities(logits)
    scores = logits.detach().float()
    return -(scores if is_probability else scores.softmax(dim=1)).max(dim=1).values


def _one_score_per_image(scores: Tensor, what: str) -> Tensor:
    """``scores`` as a flat float64 vector; (N, K) logits (one row per image) are refused."""
    scores = torch.as_tensor(scores).detach()
    if scores.ndim > 1 and max(scores.shape[1:]) > 1:
        raise InputRangeError(
            f"the {what} scores have shape {tuple(scores.shape)}: OOD detection takes one "
            "anomaly score per image, shape (N,); turn logits into scores first (e.g. "
            "max_softmax_anomaly_score(logits))"
        )
    return scores.double().flatten().cpu()


def _scores_and_labels(in_scores: Tensor, out_scores: Tensor) -> tuple[Tensor, Tensor]:
    in_scores = _one_score_per_image(in_scores, "in-distribution")
    out_scores = _one_score_per_image(out_scores, "out-of-distribution")
    if in_scores.numel() == 0 or out_scores.numel() == 0:
        raise EmptyInputError(
            "OOD detection needs scores of both in-distribution and out-of-distribution images, "
            f"got {in_scores.numel()} and {out_scores.numel()}"
        )
    _check_finite_scores(in_scores, "in-distribution")
    _check_finite_scores(out_scores, "out-of-distribution")
    scores = torch.cat([out_scores, in_scores])
    positive = torch.zeros(len(scores), dtype=torch.bool)
    positive[: len(out_scores)] = True
    return scores, positive


def _check_finite_scores(scores: Tensor, what: str) -> None:
    bad = int((~torch.isfinite(torch.as_tensor(scores))).sum())
    if bad:
        raise NonFiniteError(
            f"{bad} of {torch.as_tensor(scores).numel()} {what} anomaly scores are NaN or "
            "infinite: the model (or the scoring function) is numerically broken, so no AUROC "
            "or AUPR is reported. Evaluate an earlier, finite checkpoint."
        )


def _as_probabilities(scores: Tensor) -> Tensor:
    """The scores' dense ranks scaled into [0, 1]: the same order and ties.

    torchmetrics takes scores outside [0, 1] for logits and applies a sigmoid, which in floating
    point merges large distinct scores into ties (σ(40) = σ(50) = 1.0); ranks keep both.
    """
    _, rank = torch.unique(scores, sorted=True, return_inverse=True)
    return rank.double() / max(int(rank.max()), 1) if len(rank) else scores


def _scores_and_positive(scores: Tensor, positive: Tensor, what: str) -> tuple[Tensor, Tensor]:
    """Flat float64 scores and bool labels of the same length, checked finite."""
    scores = torch.as_tensor(scores).detach().double().flatten().cpu()
    positive = torch.as_tensor(positive).detach().flatten().cpu()
    if scores.shape != positive.shape:
        raise InputRangeError(
            f"{what}: {scores.numel()} scores but {positive.numel()} labels; give one label per "
            "score"
        )
    if not bool(((positive == 0) | (positive == 1)).all()):
        raise InputRangeError(f"{what}: the labels must be 0/1 or bool (positive or not)")
    _check_finite_scores(scores, what)
    return scores, positive.bool()


def average_precision(scores: Tensor, positive: Tensor) -> float:
    """Average precision of ``scores`` for the binary labels ``positive`` (area under PR).

    Args:
        scores: (N,) scores; higher means "more positive".
        positive: (N,) bool labels; at least one positive.

    Example:
        >>> ap = average_precision(torch.tensor([0.9, 0.8, 0.7, 0.6]),
        ...                        torch.tensor([True, False, True, False]))
        >>> round(ap, 6)  # 5/6, in torchmetrics' float32
        0.833333
    """
    scores = as_tensor_argument(scores, "scores")
    positive = as_tensor_argument(positive, "positive")
    scores, positive = _scores_and_positive(scores, positive, "average-precision")
    if int(positive.sum()) == 0:
        raise ConfigError("average precision needs at least one positive example")
    return float(binary_average_precision(_as_probabilities(scores), positive.long()))


def auroc(scores: Tensor, positive: Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count ½.

    Example:
        >>> auroc(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([True, False, True, False]))
        0.75
    """
    scores = as_tensor_argument(scores, "scores")
    positive = as_tensor_argument(positive, "positive")
    scores, positive = _scores_and_positive(scores, positive, "AUROC")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ConfigError("AUROC needs at least one positive and one negative example")
    return float(binary_auroc(_as_probabilities(scores), positive.long()))


def ood_detection_scores(in_scores: Tensor, out_scores: Tensor) -> dict[str, float]:
    """AUPR and AUROC with out-of-distribution images as the positive class.

    Args:
        in_scores: Anomaly scores (e.g. :func:`max_softmax_anomaly_score`) of in-distribution
            images, (N_in,).
        out_scores: Anomaly scores of out-of-distribution images, (N_out,).

    Returns:
        ``{"aupr": ..., "auroc": ...}`` as fractions.
    """
    in_scores = as_tensor_argument(in_scores, "in_scores")
    out_scores = as_tensor_argument(out_scores, "out_scores")
    scores, positive = _scores_and_labels(in_scores, out_scores)
    return {"aupr": average_precision(scores, positive), "auroc": auroc(scores, positive)}
