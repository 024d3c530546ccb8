"""ImageNet-P / CIFAR-10-P stability metrics: flip probability, flip rate, top-5 distance.

A perturbation sequence is a clean image followed by gradually perturbed frames (Hendrycks &
Dietterich, 2019). Frames are paired as in the reference:

* noise perturbations (:data:`NOISE_PERTURBATIONS`) compare every frame with frame 0,
* all others compare consecutive frames.

Per sequence, a metric is averaged over its frame pairs; the dataset value is the mean over
sequences. Flip rate FR and normalised top-5 distance T5D divide by the same quantity of a
baseline model that the user names, computed on the same sequences; mFR and mT5D average these
ratios over perturbations and are returned as percentages, like mCE.

The top-5 distance of frames A and B: order the classes by A's scores, let ``σ(i)`` be the
(1-based) rank in B of A's ``i``-th class, then ``d = Σ_{i=1..5} |(i − 1) − min(σ(i) − 1, 5)|``.
It is 0 when B keeps A's top 5 in order.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torchmetrics import Metric

from robustart.errors import ConfigError, EmptyInputError, InputRangeError
from robustart.utils import check_finite_logits

#: Perturbations whose frames are compared with frame 0 (the rest: consecutive frames).
NOISE_PERTURBATIONS: frozenset[str] = frozenset({"gaussian_noise", "shot_noise", "speckle_noise"})


def compares_with_first_frame(perturbation: str) -> bool:
    """Whether ``perturbation`` pairs every frame with frame 0 (the noise perturbations).

    A difficulty suffix as in CIFAR-10-P file names is ignored.

    Example:
        >>> compares_with_first_frame("shot_noise_2"), compares_with_first_frame("rotate")
        (True, False)
    """
    base, _, suffix = perturbation.rpartition("_")
    if base and suffix.isdigit():
        perturbation = base
    return perturbation in NOISE_PERTURBATIONS


def frame_pairs(num_frames: int, noise: bool) -> tuple[Tensor, Tensor]:
    """Indices ``(reference, current)`` of the compared frames.

    Example:
        >>> frame_pairs(4, noise=True)
        (tensor([0, 0, 0]), tensor([1, 2, 3]))
        >>> frame_pairs(4, noise=False)
        (tensor([0, 1, 2]), tensor([1, 2, 3]))
    """
    if num_frames < 2:
        raise InputRangeError(f"a perturbation sequence needs at least 2 frames, got {num_frames}")
    current = torch.arange(1, num_frames)
    reference = torch.zeros_like(current) if noise else current - 1
    return reference, current


def _check_sequences(values: Tensor, ndim: int, what: str) -> None:
    if not isinstance(values, Tensor) or values.ndim != ndim:
        shape = "(N, F)" if ndim == 2 else "(N, F, K)"
        got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise InputRangeError(f"{what} must be a tensor of shape {shape}, got {got}")


def sequence_flip_probabilities(predictions: Tensor, noise: bool) -> Tensor:
    """Per-sequence flip probability.

    Args:
        predictions: Top-1 predictions (N sequences, F frames), integer.
        noise: Compare with frame 0 (noise perturbations) instead of the previous frame.

    Returns:
        (N,) float: fraction of frame pairs whose top-1 prediction differs.
    """
    _check_sequences(predictions, 2, "predictions")
    reference, current = frame_pairs(predictions.shape[1], noise)
    reference, current = reference.to(predictions.device), current.to(predictions.device)
    return (predictions[:, current] != predictions[:, reference]).float().mean(dim=1)


def flip_probability(predictions: Tensor, noise: bool) -> float:
    """Flip probability FP: mean over sequences of :func:`sequence_flip_probabilities`.

    Example:
        >>> flip_probability(torch.tensor([[0, 1, 1, 0]]), noise=False)  # flips: 1, 0, 1
        0.6666666865348816
    """
    return sequence_flip_probabilities(predictions, noise).mean().item()


def top5_distance(scores_a: Tensor, scores_b: Tensor) -> Tensor:
    """Top-5 distance between the class rankings of paired score vectors.

    Args:
        scores_a: Logits (or probabilities) of the reference frames, (M, K).
        scores_b: Same for the compared frames, (M, K).

    Returns:
        (M,) float distances in [0, 15] (with K >= 6). With K < 5 only the top K are compared.
        Ties are broken by class index, as a stable sort does.
    """
    if scores_a.shape != scores_b.shape or scores_a.ndim != 2:
        raise InputRangeError(
            "scores_a and scores_b must both have shape (M, K), got "
            f"{tuple(scores_a.shape)} and {tuple(scores_b.shape)}"
        )
    num_classes = scores_a.shape[1]
    top = min(5, num_classes)
    order_a = torch.argsort(-scores_a, dim=1, stable=True)
    order_b = torch.argsort(-scores_b, dim=1, stable=True)
    positions = torch.arange(num_classes, device=scores_a.device).expand_as(order_b)
    rank_b = torch.empty_like(order_b).scatter_(1, order_b, positions)  # 0-based rank in B
    sigma = rank_b.gather(1, order_a[:, :top]).clamp(max=5)
    expected = torch.arange(top, device=scores_a.device)
    return (sigma - expected).abs().sum(dim=1).float()


def sequence_top5_distances(logits: Tensor, noise: bool) -> Tensor:
    """Per-sequence mean top-5 distance over the frame pairs.

    Args:
        logits: Scores (N sequences, F frames, K classes).
        noise: Compare with frame 0 instead of the previous frame.

    Returns:
        (N,) float.
    """
    _check_sequences(logits, 3, "logits")
    check_finite_logits(logits, "the logits given to the top-5 distance")
    n, f, k = logits.shape
    reference, current = frame_pairs(f, noise)
    a = logits[:, reference.to(logits.device)].reshape(-1, k)
    b = logits[:, current.to(logits.device)].reshape(-1, k)
    return top5_distance(a, b).view(n, f - 1).mean(dim=1)


def mean_top5_distance(logits: Tensor, noise: bool) -> float:
    """Mean over sequences of :func:`sequence_top5_distances`."""
    return sequence_top5_distances(logits, noise).mean().item()


def normalize_by_baseline(
    values: Mapping[str, float], baseline: Mapping[str, float]
) -> dict[str, float]:
    """Per-perturbation ratio ``values[p] / baseline[p]`` (flip rate FR, or T5D).

    Raises:
        ConfigError: if the baseline lacks a perturbation or its value is 0.
    """
    if not values:
        raise ConfigError("no perturbation values given")
    missing = [p for p in values if p not in baseline]
    if missing:
        raise ConfigError(
            f"the baseline has no value for {', '.join(missing)}: evaluate the baseline model on "
            "the same perturbation sequences first"
        )
    zero = [p for p in values if baseline[p] <= 0]
    if zero:
        raise ConfigError(f"the baseline's value is 0 for {', '.join(zero)}: cannot normalise")
    return {p: float(v) / float(baseline[p]) for p, v in values.items()}


def mean_flip_rate(flip_probabilities: Mapping[str, float], baseline: Mapping[str, float]) -> float:
    """mFR (percent): mean over perturbations of ``FP(model) / FP(baseline)``."""
    ratios = normalize_by_baseline(flip_probabilities, baseline)
    return 100.0 * sum(ratios.values()) / len(ratios)


def mean_top5_distance_rate(
    top5_distances: Mapping[str, float], baseline: Mapping[str, float]
) -> float:
    """mT5D (percent): mean over perturbations of ``T5D(model) / T5D(baseline)``."""
    ratios = normalize_by_baseline(top5_distances, baseline)
    return 100.0 * sum(ratios.values()) / len(ratios)


class _SequenceMean(Metric):
    """Mean over sequences of a per-sequence value; sums are reduced across DDP ranks."""

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, noise: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.noise = noise
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _per_sequence(self, values: Tensor) -> Tensor:
        raise NotImplementedError

    def update(self, values: Tensor) -> None:
        per_sequence = self._per_sequence(values)
        self.total += per_sequence.double().sum()
        self.count += per_sequence.numel()

    def compute(self) -> Tensor:
        if self.count == 0:
            raise EmptyInputError(
                f"{type(self).__name__}.compute() called before any update(): no sequences "
                "were scored"
            )
        return (self.total / self.count).float()


class FlipProbability(_SequenceMean):
    """Flip probability accumulated over batches of sequences (and DDP ranks).

    Args:
        noise: Compare every frame with frame 0 (noise perturbations).

    ``update`` takes predictions (N, F) or logits (N, F, K) (their argmax is used).

    Example:
        >>> metric = FlipProbability(noise=False)
        >>> metric.update(torch.tensor([[0, 1, 1], [2, 2, 2]]))
        >>> metric.compute()
        tensor(0.2500)
    """

    def _per_sequence(self, values: Tensor) -> Tensor:
        if values.ndim == 3:
            check_finite_logits(values, "the logits given to the flip probability")
            values = values.argmax(dim=-1)
        return sequence_flip_probabilities(values, self.noise)


class Top5Distance(_SequenceMean):
    """Mean top-5 distance accumulated over batches of sequences; ``update(logits (N, F, K))``."""

    def _per_sequence(self, values: Tensor) -> Tensor:
        return sequence_top5_distances(values, self.noise)
