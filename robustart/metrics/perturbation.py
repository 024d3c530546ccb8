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
It is 0 when B keeps A's top 5 in order, and at most :data:`MAX_TOP5_DISTANCE`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from robustart.errors import ConfigError, EmptyInputError, InputRangeError
from robustart.metrics.checks import check_integer_tensor, check_number
from robustart.utils import as_tensor_argument, check_finite_logits

#: Perturbations whose frames are compared with frame 0 (the rest: consecutive frames).
NOISE_PERTURBATIONS: frozenset[str] = frozenset({"gaussian_noise", "shot_noise", "speckle_noise"})

#: Largest top-5 distance of one frame pair: A's top 5 all ranked beyond B's top 5 (5+4+3+2+1).
MAX_TOP5_DISTANCE = 15.0


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


def _sequence_mean(per_sequence: Tensor, what: str) -> float:
    """Mean of per-sequence values; refuses zero sequences (a mean of nothing is NaN)."""
    if per_sequence.numel() == 0:
        raise EmptyInputError(f"the {what} of zero sequences is undefined: nothing to score")
    return per_sequence.mean().item()


def sequence_flip_probabilities(predictions: Tensor, noise: bool) -> Tensor:
    """Per-sequence flip probability.

    Args:
        predictions: Top-1 predictions (N sequences, F frames), integer.
        noise: Compare with frame 0 (noise perturbations) instead of the previous frame.

    Returns:
        (N,) float: fraction of frame pairs whose top-1 prediction differs.

    Raises:
        InputRangeError: ``predictions`` are not an integer (N, F) tensor with F >= 2 (float
            scores or probabilities would compare as all different).
    """
    predictions = as_tensor_argument(predictions, "predictions")
    _check_sequences(predictions, 2, "predictions")
    check_integer_tensor(
        predictions,
        "predictions",
        "; pass top-1 class indices (logits.argmax(-1)), or logits (N, F, K) to FlipProbability",
    )
    reference, current = frame_pairs(predictions.shape[1], noise)
    reference, current = reference.to(predictions.device), current.to(predictions.device)
    return (predictions[:, current] != predictions[:, reference]).float().mean(dim=1)


def flip_probability(predictions: Tensor, noise: bool) -> float:
    """Flip probability FP: mean over sequences of :func:`sequence_flip_probabilities`.

    Example:
        >>> flip_probability(torch.tensor([[0, 1, 1, 0]]), noise=False)  # flips: 1, 0, 1
        0.6666666865348816
    """
    predictions = as_tensor_argument(predictions, "predictions")
    return _sequence_mean(sequence_flip_probabilities(predictions, noise), "flip probability")


def top5_distance(scores_a: Tensor, scores_b: Tensor) -> Tensor:
    """Top-5 distance between the class rankings of paired score vectors.

    Args:
        scores_a: Logits (or probabilities) of the reference frames, (M, K).
        scores_b: Same for the compared frames, (M, K).

    Returns:
        (M,) float distances in [0, 15] (with K >= 6). Ties are broken by class index, as a
        stable sort does.

    Raises:
        InputRangeError: the shapes differ or are not (M, K), or K < 5 (the top 5 of fewer
            classes is not defined).
        NonFiniteError: NaN or infinite scores (their ranking is arbitrary: NaN rows read as
            perfectly stable).
    """
    scores_a = as_tensor_argument(scores_a, "scores_a")
    scores_b = as_tensor_argument(scores_b, "scores_b")
    scores_a, scores_b = torch.as_tensor(scores_a), torch.as_tensor(scores_b)
    if scores_a.shape != scores_b.shape or scores_a.ndim != 2:
        raise InputRangeError(
            "scores_a and scores_b must both have shape (M, K), got "
            f"{tuple(scores_a.shape)} and {tuple(scores_b.shape)}"
        )
    check_finite_logits(scores_a, "the scores given to the top-5 distance")
    check_finite_logits(scores_b, "the scores given to the top-5 distance")
    num_classes = scores_a.shape[1]
    if num_classes < 5:
        raise InputRangeError(
            f"the top-5 distance needs scores over at least 5 classes, got {num_classes}; use "
            "the flip probability for a model with fewer classes"
        )
    top = 5
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
    logits = as_tensor_argument(logits, "logits")
    _check_sequences(logits, 3, "logits")
    check_finite_logits(logits, "the logits given to the top-5 distance")
    n, f, k = logits.shape
    reference, current = frame_pairs(f, noise)
    a = logits[:, reference.to(logits.device)].reshape(-1, k)
    b = logits[:, current.to(logits.device)].reshape(-1, k)
    return top5_distance(a, b).view(n, f - 1).mean(dim=1)


def mean_top5_distance(logits: Tensor, noise: bool) -> float:
    """Mean over sequences of :func:`sequence_top5_distances`."""
    return _sequence_mean(sequence_top5_distances(logits, noise), "top-5 distance")


def normalize_by_baseline(
    values: Mapping[str, float],
    baseline: Mapping[str, float],
    high: float | None = None,
    what: str = "value",
) -> dict[str, float]:
    """Per-perturbation ratio ``values[p] / baseline[p]`` (flip rate FR, or T5D).

    Args:
        values: ``{perturbation: value}`` of the model, finite and >= 0.
        baseline: ``{perturbation: value}`` of the baseline model, finite and > 0.
        high: Largest valid value (1 for flip probabilities, :data:`MAX_TOP5_DISTANCE` for
            top-5 distances); ``None``: no upper bound.
        what: Name of the values in error messages.

    Raises:
        ConfigError: if the baseline lacks a perturbation, a value is NaN, infinite or out of
            range, or a baseline value is 0.
    """
    if not values:
        raise ConfigError(f"no perturbation {what}s given")
    missing = [p for p in values if p not in baseline]
    if missing:
        raise ConfigError(
            f"the baseline has no value for {', '.join(missing)}: evaluate the baseline model on "
            "the same perturbation sequences first"
        )
    ratios = {}
    for p, v in values.items():
        value = check_number(v, f"the {what} of {p}", high=high)
        reference = check_number(baseline[p], f"the baseline's {what} of {p}", high=high)
        if reference == 0:
            raise ConfigError(
                f"the baseline's {what} of {p} is 0: cannot normalise by it; choose another "
                "baseline model"
            )
        ratios[p] = value / reference
    return ratios


def mean_flip_rate(
    flip_probabilities: Mapping[str, float],
    baseline: Mapping[str, float],
    perturbations: Sequence[str] | None = None,
) -> float:
    """mFR (percent): mean over perturbations of ``FP(model) / FP(baseline)``.

    Raises:
        ConfigError: a flip probability is not a finite fraction in [0, 1], a baseline value is
            missing or 0 (see :func:`normalize_by_baseline`), or the model lacks one of the
            baseline's perturbations.
    """
    values = _averaged(flip_probabilities, baseline, perturbations, "mFR")
    ratios = normalize_by_baseline(values, baseline, 1.0, "flip probability")
    return 100.0 * sum(ratios.values()) / len(ratios)


def mean_top5_distance_rate(
    top5_distances: Mapping[str, float],
    baseline: Mapping[str, float],
    perturbations: Sequence[str] | None = None,
) -> float:
    """mT5D (percent): mean over perturbations of ``T5D(model) / T5D(baseline)``.

    Raises:
        ConfigError: a top-5 distance is not finite in [0, :data:`MAX_TOP5_DISTANCE`], a
            baseline value is missing or 0 (see :func:`normalize_by_baseline`), or the model
            lacks one of the baseline's perturbations.
    """
    values = _averaged(top5_distances, baseline, perturbations, "mT5D")
    ratios = normalize_by_baseline(values, baseline, MAX_TOP5_DISTANCE, "top-5 distance")
    return 100.0 * sum(ratios.values()) / len(ratios)


def _averaged(
    values: Mapping[str, float],
    baseline: Mapping[str, float],
    perturbations: Sequence[str] | None,
    what: str,
) -> dict[str, float]:
    """The values a mean rate averages: every perturbation of the baseline, or the named
    ``perturbations``. A mean over fewer would be reported as the benchmark's (an mFR of one of
    ten perturbations); mCE refuses a subset likewise unless it is named."""
    if perturbations is not None:
        if isinstance(perturbations, str) or not perturbations:
            raise ConfigError(f"{what}: perturbations must be a non-empty list of names")
        if len(set(perturbations)) != len(perturbations):
            raise ConfigError(f"{what}: perturbations listed more than once would weigh double")
        chosen = list(perturbations)
    else:
        chosen = list(baseline)
    missing = [p for p in chosen if p not in values]
    if values and missing:
        whose = "the named" if perturbations is not None else "the baseline's"
        raise ConfigError(
            f"{what} averages over {whose} {len(chosen)} perturbations, but the model has no "
            f"value for {', '.join(sorted(missing))}: evaluate them, or pass "
            "`perturbations=` to average a named subset explicitly"
        )
    if perturbations is None:
        return dict(values)  # a model value without a baseline one is refused when normalised
    return {p: values[p] for p in chosen}


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
