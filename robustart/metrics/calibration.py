"""Expected calibration error (ECE), e.g. per corruption and severity, with torchmetrics.

ECE with ``M`` equal-width confidence bins (Guo et al., 2017)::

    ECE = Σ_m |B_m|/N · |accuracy(B_m) − mean confidence(B_m)|

where the confidence of a prediction is its top-1 softmax probability. The computation is
torchmetrics' (``binary_calibration_error`` on top-1 confidence and correctness, which is what
``MulticlassCalibrationError(n_bins=M, norm="l1")`` computes from probabilities).

Bin-edge convention (torchmetrics'): ``B_m = [(m−1)/M, m/M)`` and a bin of its own for a
confidence of exactly 1. Guo et al. write ``((m−1)/M, m/M]``, which robustart used before; the
two differ only for confidences exactly on an edge (e.g. 0.5 with M = 2, or 1.0).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.classification import BinaryCalibrationError
from torchmetrics.functional.classification import binary_calibration_error
from torchmetrics.utilities import dim_zero_cat

from robustart.errors import ConfigError, EmptyInputError, InputRangeError
from robustart.utils import (
    as_tensor_argument,
    check_finite_logits,
    check_labels,
    looks_like_probabilities,
)


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
    scores = as_tensor_argument(scores, "scores")
    labels = as_tensor_argument(labels, "labels")
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise InputRangeError(
            f"scores must be (N, K) and labels (N,), got {tuple(scores.shape)} and "
            f"{tuple(labels.shape)}"
        )
    check_finite_logits(scores, "the scores given to the calibration error")
    check_labels(
        labels, scores.shape[0], scores.shape[1], "the labels given to the calibration error"
    )
    is_probability = looks_like_probabilities(scores)  # in the scores' own precision
    scores = scores.detach().float()
    probabilities = scores if is_probability else scores.softmax(dim=1)
    confidence, prediction = probabilities.max(dim=1)
    return confidence, prediction == labels


def calibration_bins(
    confidence: Tensor, correct: Tensor, n_bins: int = 15
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-bin sample count, confidence sum and correct count, e.g. for a reliability diagram.

    The bins are torchmetrics': ``[(m−1)/M, m/M)`` for m = 1..M, and a last bin for a
    confidence of exactly 1 (see the module docstring).

    Args:
        confidence: (N,) top-1 confidences in [0, 1].
        correct: (N,) whether each top-1 prediction is right (bool or 0/1).
        n_bins: M.

    Returns:
        Three float64 tensors of shape (M + 1,).
    """
    confidence = as_tensor_argument(confidence, "confidence")
    correct = as_tensor_argument(correct, "correct")
    confidence, correct = _checked(confidence, correct, n_bins)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64, device=confidence.device)
    index = torch.bucketize(confidence, edges, right=True) - 1
    zeros = torch.zeros(n_bins + 1, dtype=torch.float64, device=confidence.device)
    count = zeros.scatter_add(0, index, torch.ones_like(confidence))
    return count, zeros.scatter_add(0, index, confidence), zeros.scatter_add(0, index, correct)


def _checked(confidence: Tensor, correct: Tensor, n_bins: int) -> tuple[Tensor, Tensor]:
    """Flat float64 confidences and correctness, checked (finite, in [0, 1], same size)."""
    _check_bins(n_bins)
    confidence = confidence.detach().double().flatten()
    correct = correct.detach().double().flatten()
    if confidence.shape != correct.shape:
        raise InputRangeError("confidence and correct must have the same number of elements")
    check_finite_logits(confidence, "the confidences given to the calibration error")
    if confidence.numel() and (confidence.min() < 0 or confidence.max() > 1):
        raise InputRangeError("confidences must lie in [0, 1]")
    if not bool(((correct == 0) | (correct == 1)).all()):
        raise InputRangeError(
            "correct must hold 0/1 or bool (was the top-1 prediction right?), got other values"
        )
    return confidence, correct


def _ece(confidence: Tensor, correct: Tensor, n_bins: int) -> Tensor:
    """torchmetrics' L1 calibration error of checked float64 ``confidence`` and ``correct``."""
    if confidence.numel() == 0:
        raise EmptyInputError(
            "expected calibration error of an empty set of predictions: no images were scored"
        )
    return binary_calibration_error(confidence, correct.long(), n_bins=n_bins, norm="l1").float()


def expected_calibration_error(confidence: Tensor, correct: Tensor, n_bins: int = 15) -> float:
    """ECE from top-1 confidences and correctness.

    Example:
        >>> conf = torch.tensor([0.95, 0.95, 0.65, 0.65, 0.25])
        >>> hit = torch.tensor([1, 0, 1, 1, 0])
        >>> round(expected_calibration_error(conf, hit, n_bins=10), 6)
        0.37
    """
    confidence = as_tensor_argument(confidence, "confidence")
    correct = as_tensor_argument(correct, "correct")
    return _ece(*_checked(confidence, correct, n_bins), n_bins).item()


def expected_calibration_error_from_scores(
    scores: Tensor, labels: Tensor, n_bins: int = 15
) -> float:
    """ECE from (N, K) logits or probabilities and (N,) labels."""
    return expected_calibration_error(*confidence_and_correct(scores, labels), n_bins=n_bins)


class CalibrationError(BinaryCalibrationError):
    """ECE accumulated over batches: torchmetrics' ``BinaryCalibrationError`` on the top-1
    confidence and correctness of (N, K) logits or probabilities (which are kept, and gathered
    across DDP ranks at compute).

    Keep one per corruption and severity in an ``nn.ModuleDict`` (keys without ".").

    Args:
        n_bins: Number of equal-width confidence bins (15 as in torchmetrics' default use).

    Example:
        >>> metric = CalibrationError(n_bins=15)
        >>> metric.update(torch.randn(8, 10), torch.randint(0, 10, (8,)))
        >>> float(metric.compute()) >= 0
        True
    """

    def __init__(self, n_bins: int = 15, **kwargs) -> None:
        super().__init__(n_bins=_check_bins(n_bins), norm="l1", validate_args=False, **kwargs)

    def update(self, scores: Tensor, labels: Tensor) -> None:
        """Add a batch of (N, K) logits or probabilities and (N,) labels."""
        confidence, correct = confidence_and_correct(scores, labels)
        confidence, correct = _checked(confidence, correct, self.n_bins)
        super().update(confidence, correct.long())

    def compute(self) -> Tensor:
        if isinstance(self.confidences, list) and not self.confidences:
            return _ece(torch.zeros(0), torch.zeros(0), self.n_bins)  # raises EmptyInputError
        confidences, accuracies = dim_zero_cat(self.confidences), dim_zero_cat(self.accuracies)
        return _ece(confidences.double(), accuracies.double(), self.n_bins)
