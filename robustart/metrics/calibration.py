"""Expected calibration error (ECE), e.g. per corruption and severity.

ECE with ``M`` equal-width confidence bins ``B_m = ((m−1)/M, m/M]`` (Guo et al., 2017)::

    ECE = Σ_m |B_m|/N · |accuracy(B_m) − mean confidence(B_m)|

where the confidence of a prediction is its top-1 softmax probability. This equals torchmetrics'
``MulticlassCalibrationError(n_bins=15, norm="l1")`` except for confidences lying exactly on a
bin edge (torchmetrics puts an edge in the upper bin and 1.0 in a bin of its own).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from robustart.errors import ConfigError, EmptyInputError, InputRangeError
from robustart.utils import check_finite_logits, check_labels


def _check_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}")
    return n_bins


def confidence_and_correct(scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Top-1 confidence and correctness from logits or probabilities.

    Args:
        scores: (N, K) logits, or probabilities (rows in [0, 1] summing to 1).
        labels: (N,) integer labels.

    Returns:
        ``(confidence (N,) in [0, 1], correct (N,) bool)``.

    Raises:
        InputRangeError: wrong shapes, or labels that are not class indices in [0, K).
        NonFiniteError: NaN or infinite scores (a calibration error of a broken model).
    """
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise InputRangeError(
            f"scores must be (N, K) and labels (N,), got {tuple(scores.shape)} and "
            f"{tuple(labels.shape)}"
        )
    check_finite_logits(scores, "the scores given to the calibration error")
    check_labels(
        labels, scores.shape[0], scores.shape[1], "the labels given to the calibration error"
    )
    scores = scores.detach().float()
    is_probability = (
        scores.numel() > 0
        and bool(((scores >= 0) & (scores <= 1)).all())
        and torch.allclose(scores.sum(1), torch.ones(len(scores), device=scores.device), atol=1e-4)
    )
    probabilities = scores if is_probability else scores.softmax(dim=1)
    confidence, prediction = probabilities.max(dim=1)
    return confidence, prediction == labels


def calibration_bins(
    confidence: Tensor, correct: Tensor, n_bins: int = 15
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-bin sample count, confidence sum and correct count (all float64, shape (n_bins,))."""
    _check_bins(n_bins)
    confidence = confidence.detach().double().flatten()
    correct = correct.detach().double().flatten()
    if confidence.shape != correct.shape:
        raise InputRangeError("confidence and correct must have the same number of elements")
    check_finite_logits(confidence, "the confidences given to the calibration error")
    if confidence.numel() and (confidence.min() < 0 or confidence.max() > 1):
        raise InputRangeError("confidences must lie in [0, 1]")
    # bin m holds ((m-1)/M, m/M]; confidence 0 joins the first bin
    index = (torch.ceil(confidence * n_bins).long() - 1).clamp(0, n_bins - 1)
    zeros = torch.zeros(n_bins, dtype=torch.float64, device=confidence.device)
    count = zeros.scatter_add(0, index, torch.ones_like(confidence))
    conf_sum = zeros.scatter_add(0, index, confidence)
    correct_sum = zeros.scatter_add(0, index, correct)
    return count, conf_sum, correct_sum


def _ece_from_bins(count: Tensor, conf_sum: Tensor, correct_sum: Tensor) -> Tensor:
    total = count.sum()
    if total == 0:
        raise EmptyInputError(
            "expected calibration error of an empty set of predictions: no images were scored"
        )
    return ((conf_sum - correct_sum).abs().sum() / total).float()


def expected_calibration_error(confidence: Tensor, correct: Tensor, n_bins: int = 15) -> float:
    """ECE from top-1 confidences and correctness.

    Example:
        >>> conf = torch.tensor([0.95, 0.95, 0.65, 0.65, 0.25])
        >>> hit = torch.tensor([1, 0, 1, 1, 0])
        >>> round(expected_calibration_error(conf, hit, n_bins=10), 6)
        0.37
    """
    return _ece_from_bins(*calibration_bins(confidence, correct, n_bins)).item()


def expected_calibration_error_from_scores(
    scores: Tensor, labels: Tensor, n_bins: int = 15
) -> float:
    """ECE from (N, K) logits or probabilities and (N,) labels."""
    return expected_calibration_error(*confidence_and_correct(scores, labels), n_bins=n_bins)


class CalibrationError(Metric):
    """ECE accumulated over batches; per-bin sums are reduced across DDP ranks.

    Keep one per corruption and severity in an ``nn.ModuleDict`` (keys without ".").

    Args:
        n_bins: Number of equal-width confidence bins (15 as in torchmetrics' default use).

    Example:
        >>> metric = CalibrationError(n_bins=15)
        >>> metric.update(torch.randn(8, 10), torch.randint(0, 10, (8,)))
        >>> float(metric.compute()) >= 0
        True
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, n_bins: int = 15, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_bins = _check_bins(n_bins)
        for name in ("count", "confidence_sum", "correct_sum"):
            self.add_state(name, torch.zeros(n_bins, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: Tensor, labels: Tensor) -> None:
        """Add a batch of (N, K) logits or probabilities and (N,) labels."""
        count, conf_sum, correct_sum = calibration_bins(
            *confidence_and_correct(scores, labels), n_bins=self.n_bins
        )
        self.count += count.to(self.count.device)
        self.confidence_sum += conf_sum.to(self.count.device)
        self.correct_sum += correct_sum.to(self.count.device)

    def compute(self) -> Tensor:
        return _ece_from_bins(self.count, self.confidence_sum, self.correct_sum)
