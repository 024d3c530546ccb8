"""Robustness metrics as torchmetrics ``Metric``s (their states sum correctly under DDP).

Definitions, over a fixed set of N images (RobustBench, ARES-Bench, RobustART):

* robust accuracy of a test: #{correct under the test} / N (over all points);
* AR (RobustART): #{clean correct ∧ correct under the test} / #{clean correct} (NaN, i.e.
  undefined, when no image is clean-correct);
* attack success rate: #{clean correct ∧ wrong under the test} / #{clean correct} = 1 − AR;
* WCAR (worst-case robust accuracy): #{correct under every test of a group} / N, where a
  group is e.g. all attacks with the same norm and ε;
* distortion: L∞ and L2 norms of the perturbations of successful points (mean and median);
* minimal ε: per image, the smallest budget at which an attack succeeds (from a minimal-ε
  search), summarised by its mean and median over the broken images and the fraction of images
  left unbroken.

:func:`distortion_statistics` is the one computation of distortion statistics; both
:class:`PerturbationNorms` and the minimal-ε search
(:class:`~robustart.evaluation.minimal.MinimalEpsilonResult`) report through it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from robustart.attacks.threat import get_threat_model
from robustart.errors import ConfigError, EmptyInputError, InputRangeError, NonFiniteError
from robustart.utils import as_tensor_argument

#: Norms of :class:`PerturbationNorms` and of :func:`perturbation_norms` by default.
DISTORTION_NORMS = ("linf", "l2")


def perturbation_norms(
    perturbations: Tensor, norms: Sequence[str] = DISTORTION_NORMS
) -> dict[str, Tensor]:
    """Per-image norms of perturbations, with the threat models' own norms.

    Args:
        perturbations: ``adversarial − images``, (N, C, H, W) (values in [−1, 1]).
        norms: Threat-model names (``"linf"``, ``"l2"``, ``"l1"``).

    Returns:
        ``{norm: (N,)}`` in the dtype of ``perturbations``.

    Raises:
        NonFiniteError: a perturbation holds NaN or ±inf (an attack or model gave non-finite
            images; a norm of them is no distortion).

    Example:
        >>> delta = torch.tensor([[[[0.3, -0.4]]]])
        >>> {k: round(float(v), 4) for k, v in perturbation_norms(delta).items()}
        {'linf': 0.4, 'l2': 0.5}
    """
    perturbations = as_tensor_argument(perturbations, "perturbations")
    if not bool(torch.isfinite(perturbations).all()):
        bad = int((~torch.isfinite(perturbations.flatten(1))).any(dim=1).sum())
        raise NonFiniteError(
            f"perturbation_norms: {bad} of {len(perturbations)} perturbations hold NaN or "
            "infinite values; check the attack's output and the model (no distortion is "
            "reported for non-finite images)"
        )
    return {norm: get_threat_model(norm).norm(perturbations) for norm in norms}


@dataclass
class DistortionStatistics:
    """Mean and median perturbation size of successful attacks, per norm.

    Attributes:
        count: Number of successful points the statistics are over.
        mean: ``{norm: mean}``; ``None`` when there is no successful point.
        median: ``{norm: median}`` (for an even count the lower of the two middle values);
            ``None`` when there is no successful point.
    """

    count: int
    mean: dict[str, float | None]
    median: dict[str, float | None]

    def to_dict(self, with_count: bool = True) -> dict[str, Any]:
        """Flat dictionary ``{count, <norm>_mean, <norm>_median}`` (``count`` only
        ``with_count``)."""
        out: dict[str, Any] = {"count": self.count} if with_count else {}
        for norm in self.mean:
            out[f"{norm}_mean"] = self.mean[norm]
            out[f"{norm}_median"] = self.median[norm]
        return out


def distortion_statistics(
    sizes: Mapping[str, Tensor], success: Tensor | None = None
) -> DistortionStatistics:
    """Mean and median perturbation size over the successful images.

    The statistics are computed in the dtype of ``sizes`` (callers choose the precision).

    Args:
        sizes: ``{norm: (N,)}`` per-image perturbation sizes, ≥ 0 (see
            :func:`perturbation_norms`, or a minimal-ε search's budgets).
        success: (N,) bool, the images to take the statistics over; ``None`` for all.

    Returns:
        :class:`DistortionStatistics` with one entry per norm of ``sizes``.

    Raises:
        ConfigError: ``sizes`` or ``success`` are not (N,) tensors of the same N.

    Example:
        >>> stats = distortion_statistics(
        ...     {"l2": torch.tensor([0.1, 0.2, 0.6, 9.0])},
        ...     success=torch.tensor([True, True, True, False]),
        ... )
        >>> stats.count, round(stats.mean["l2"], 3), round(stats.median["l2"], 3)
        (3, 0.3, 0.2)
    """
    sizes = {norm: as_tensor_argument(value, f"sizes[{norm!r}]") for norm, value in sizes.items()}
    if success is not None:
        success = as_tensor_argument(success, "success")
    shapes = {tuple(value.shape) for value in sizes.values()}
    if len(shapes) > 1 or any(len(shape) != 1 for shape in shapes):
        raise ConfigError(f"sizes must be (N,) tensors of one N, got shapes {sorted(shapes)}")
    if success is not None and shapes and tuple(success.shape) not in shapes:
        raise ConfigError(f"success must have shape {shapes.pop()}, got {tuple(success.shape)}")
    mean: dict[str, float | None] = {}
    median: dict[str, float | None] = {}
    count = 0
    for norm, values in sizes.items():
        chosen = values if success is None else values[success.to(values.device).bool()]
        count = chosen.numel()
        # float64 over the sorted values: the same on one process and on any number of them,
        # whatever order the DDP gather puts the images in
        mean[norm] = float(chosen.double().sort().values.mean()) if count else None
        median[norm] = float(chosen.median()) if count else None
    return DistortionStatistics(count, mean, median)


def minimal_eps_statistics(min_eps: Tensor) -> dict[str, float | None]:
    """Summary of per-image minimal budgets from a minimal-ε search.

    Args:
        min_eps: (N,) minimal budgets: 0 for images the model misclassifies without attack,
            ``inf`` for images not broken within the search's ``eps_max``, else in
            (0, ``eps_max``]. N ≥ 1.

    Returns:
        ``{"mean", "median"}``: the mean and (lower) median minimal ε over the broken images
        (finite, positive budgets), computed in float64, ``None`` if none is broken;
        ``"unbroken"``: the fraction in [0, 1] of all N images not broken within ``eps_max``;
        ``"median_all"``: the (lower) median over all N images, misclassified ones (0) and
        unbroken ones (``inf``) included: the smallest budget at which robust accuracy is at
        most 50 %, ``inf`` when half or more of the images survive ``eps_max``. This is the
        one to rank models by: the median over the broken images alone falls when a more
        robust model leaves only its weakest images to be broken.

    Raises:
        ConfigError: ``min_eps`` is not (N,) with N >= 1, or holds NaN or negative budgets
            (a broken search: they are never dropped silently).

    Example:
        >>> stats = minimal_eps_statistics(torch.tensor([0.0, 0.1, 0.2, 0.6, float("inf")]))
        >>> {name: round(value, 3) for name, value in stats.items()}
        {'mean': 0.3, 'median': 0.2, 'unbroken': 0.2, 'median_all': 0.2}
    """
    min_eps = as_tensor_argument(min_eps, "min_eps")
    if min_eps.ndim != 1 or min_eps.numel() == 0:
        raise ConfigError(f"min_eps must have shape (N,) with N >= 1, got {tuple(min_eps.shape)}")
    invalid = torch.isnan(min_eps) | (min_eps < 0)
    if invalid.any():
        raise ConfigError(
            f"{int(invalid.sum())} of {min_eps.numel()} minimal budgets are NaN or negative "
            f"(e.g. {float(min_eps[invalid][0]):.4g}): a minimal-ε budget is 0 (misclassified "
            "clean), inf (not broken within eps_max) or in (0, eps_max]. The minimal-ε search "
            "is broken; no statistics are reported."
        )
    broken = torch.isfinite(min_eps) & (min_eps > 0)
    stats = distortion_statistics({"eps": min_eps.double()}, broken)
    unbroken = torch.isinf(min_eps).sum().item() / min_eps.numel()
    median_all = float(min_eps.double().sort().values[(min_eps.numel() - 1) // 2])
    return {
        "mean": stats.mean["eps"],
        "median": stats.median["eps"],
        "unbroken": unbroken,
        "median_all": median_all,
    }


class RobustnessCounts(Metric):
    """Correct counts of several tests on the same images.

    Args:
        keys: The tests, in order; the first must be the clean test.
        groups: Worst-case groups ``{name: [keys]}`` for WCAR.

    Example:
        >>> metric = RobustnessCounts(["clean", "pgd"])
        >>> metric.update({"clean": torch.tensor([True, True, False]),
        ...                "pgd": torch.tensor([True, False, False])})
        >>> {k: round(v, 3) for k, v in metric.compute()["ar"].items()}
        {'clean': 1.0, 'pgd': 0.5}
    """

    full_state_update = False

    def __init__(
        self, keys: Sequence[str], groups: Mapping[str, Sequence[str]] | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.keys = list(keys)
        clean = [k for k in self.keys if k == "clean" or k.endswith("/clean")]
        if not self.keys or clean[:1] != self.keys[:1] or len(clean) > 1:
            raise ConfigError(
                f"RobustnessCounts needs the clean test first, once (a key named clean or "
                f".../clean): got {self.keys}. The attack-robustness ratios (AR) divide by the "
                "first test's accuracy"
            )
        self.groups = {name: list(members) for name, members in (groups or {}).items()}
        for name, members in self.groups.items():
            unknown = set(members) - set(self.keys)
            if unknown:
                raise ConfigError(f"group {name!r}: members {sorted(unknown)} are not tests")
            if not members:
                raise ConfigError(
                    f"worst-case group {name!r} has no tests: its accuracy would be 100 %. "
                    "List the attacks it takes the worst of"
                )
        k, g = len(self.keys), len(self.groups)
        self.add_state("correct", torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state(
            "clean_and_correct", torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("group_correct", torch.zeros(g, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, correct: Mapping[str, Tensor]) -> None:
        """Add a batch: ``{key: correct (N,) bool}`` for every key.

        Raises:
            ConfigError: a key is missing.
            InputRangeError: a value is not a bool (N,) tensor of the same N as the others
                (e.g. predictions instead of ``predictions == labels``).
        """
        missing = [k for k in self.keys if k not in correct]
        if missing:
            raise ConfigError(
                f"RobustnessCounts.update() lacks the tests {missing}; pass a correct mask for "
                f"every test: {self.keys}"
            )
        for key in self.keys:
            value = correct[key]
            if not isinstance(value, Tensor) or value.dtype != torch.bool:
                got = value.dtype if isinstance(value, Tensor) else type(value).__name__
                raise InputRangeError(
                    f"the correct mask of {key!r} must be a bool tensor (predictions == labels), "
                    f"got {got}; pass per-image correctness, not predictions or labels"
                )
        shapes = {k: tuple(correct[k].shape) for k in self.keys}
        if len(set(shapes.values())) > 1 or len(shapes[self.keys[0]]) != 1:
            raise InputRangeError(
                f"the correct masks must all have shape (N,) for the same N images, got {shapes}"
            )
        stacked = torch.stack([correct[k] for k in self.keys])  # (K, N)
        clean = stacked[0]
        self.correct += stacked.sum(dim=1).double()
        self.clean_and_correct += (stacked & clean).sum(dim=1).double()
        for i, members in enumerate(self.groups.values()):
            idx = [self.keys.index(m) for m in members]
            self.group_correct[i] += stacked[idx].all(dim=0).sum().double()
        self.total += clean.numel()

    def compute(self) -> dict[str, dict[str, float]]:
        """Accuracy, AR, attack success rate and WCAR of every test, and the image counts.

        Raises:
            EmptyInputError: no image was counted (no update, or only empty batches, on every
                process).
        """
        if float(self.total) == 0:
            raise EmptyInputError(
                "RobustnessCounts.compute() over zero images: nothing was evaluated, so no "
                "accuracy is reported. Check the dataset split and num_images."
            )
        total = float(self.total)
        clean_correct = float(self.correct[0])
        accuracy = {k: float(c) / total for k, c in zip(self.keys, self.correct)}
        # AR is a fraction of the clean-correct images: with none it is undefined (NaN), not 0.
        ar = {
            k: float(c) / clean_correct if clean_correct else math.nan
            for k, c in zip(self.keys, self.clean_and_correct)
        }
        return {
            "accuracy": accuracy,
            "ar": ar,
            "success_rate": {k: 1.0 - v for k, v in ar.items()},
            "wcar": {n: float(c) / total for n, c in zip(self.groups, self.group_correct)},
            "count": {"images": float(self.total), "clean_correct": float(self.correct[0])},
        }


class PerturbationNorms(Metric):
    """L∞ and L2 norms of successful perturbations, per test (mean and median).

    The per-image norms are gathered (concatenated) over DDP processes and summarised by
    :func:`distortion_statistics` in float32.

    Args:
        keys: The attack tests, e.g. ``robust/pgd10_linf/eps=8_255``.
    """

    full_state_update = False

    def __init__(self, keys: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.keys = list(keys)
        for key in range(len(self.keys)):
            for norm in DISTORTION_NORMS:
                self.add_state(f"{norm}_{key}", [], dist_reduce_fx="cat")

    def update(self, key: str, perturbation: Tensor, success: Tensor) -> None:
        """Record the norms of ``perturbation`` (N, C, H, W) where ``success`` (N,) holds.

        Raises:
            ConfigError: an unknown ``key``.
            InputRangeError: ``success`` is not a bool (N,) mask (a 0/1 integer tensor would
                select images by index), or ``perturbation`` is not (N, C, H, W).
        """
        if key not in self.keys:
            raise ConfigError(f"PerturbationNorms: unknown test {key!r}; the tests are {self.keys}")
        i = self.keys.index(key)
        if not isinstance(success, Tensor) or success.dtype != torch.bool:
            got = success.dtype if isinstance(success, Tensor) else type(success).__name__
            raise InputRangeError(
                f"the success mask of {key!r} must be a bool tensor, got {got}: an integer "
                "tensor would select images by index. Pass e.g. adversarial_predictions != labels"
            )
        if perturbation.ndim != 4 or success.shape != perturbation.shape[:1]:
            raise InputRangeError(
                f"PerturbationNorms.update takes perturbations (N, C, H, W) and a mask (N,), "
                f"got {tuple(perturbation.shape)} and {tuple(success.shape)}"
            )
        for norm, values in perturbation_norms(perturbation[success].float()).items():
            getattr(self, f"{norm}_{i}").append(values)

    def compute(self) -> dict[str, dict[str, float | None]]:
        """``{key: {"linf_mean", "linf_median", "l2_mean", "l2_median"}}`` (``None`` for a
        test without successful points)."""
        return {
            key: distortion_statistics(
                {norm: _gathered(getattr(self, f"{norm}_{i}")) for norm in DISTORTION_NORMS}
            ).to_dict(with_count=False)
            for i, key in enumerate(self.keys)
        }


class MinimalEpsilons(Metric):
    """Per-image minimal budgets of several minimal-ε searches, gathered over DDP processes.

    Every image's budget is stored with the id of its chunk; :meth:`compute` puts the images
    back in chunk order (a stable sort keeps the order inside a chunk), so the statistics are
    the same on one process and on any number of them.

    Args:
        labels: The searches, e.g. ``pgd10_linf``.

    Example:
        >>> metric = MinimalEpsilons(["pgd10_linf"])
        >>> metric.update("pgd10_linf", torch.tensor([0.0, 0.1, float("inf")]), chunk_id=0)
        >>> metric.update("pgd10_linf", torch.tensor([0.3]), chunk_id=1)
        >>> {k: round(v, 3) for k, v in metric.compute()["pgd10_linf"].items()}
        {'mean': 0.2, 'median': 0.1, 'unbroken': 0.25, 'median_all': 0.1}
    """

    full_state_update = False

    def __init__(self, labels: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.labels = list(labels)
        for i in range(len(self.labels)):
            self.add_state(f"min_eps_{i}", [], dist_reduce_fx="cat")
            self.add_state(f"chunk_{i}", [], dist_reduce_fx="cat")

    def update(self, label: str, min_eps: Tensor, chunk_id: int) -> None:
        """Record the minimal budgets (N,) of the images of chunk ``chunk_id``."""
        i = self.labels.index(label)
        getattr(self, f"min_eps_{i}").append(min_eps.float())
        chunks = torch.full(min_eps.shape, chunk_id, dtype=torch.int64, device=min_eps.device)
        getattr(self, f"chunk_{i}").append(chunks)

    def values(self, label: str) -> Tensor:
        """All minimal budgets of the search ``label`` (N,), in chunk order."""
        i = self.labels.index(label)
        min_eps = _gathered(getattr(self, f"min_eps_{i}"))
        order = _gathered(getattr(self, f"chunk_{i}")).sort(stable=True).indices
        return min_eps[order]

    def compute(self) -> dict[str, dict[str, float | None]]:
        """``{label: minimal_eps_statistics}`` (see :func:`minimal_eps_statistics`)."""
        return {label: minimal_eps_statistics(self.values(label)) for label in self.labels}


def _gathered(state: list[Tensor] | Tensor) -> Tensor:
    """A ``cat`` state as one tensor: a list before synchronisation, a tensor after."""
    if isinstance(state, Tensor):
        return state
    return torch.cat(state) if state else torch.zeros(0)


class GradientHealth(Metric):
    """How many images have an all-zero or a non-finite input gradient of the CE loss.

    Both are red flags for an evaluation: attacks that follow the CE gradient cannot move such
    images (saturated softmax, gradient masking, non-differentiable pre-processing).
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("zero", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("nonfinite", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, grad: Tensor) -> None:
        """Add input gradients (N, C, H, W)."""
        flat = grad.flatten(1)
        finite = torch.isfinite(flat).all(dim=1)
        self.nonfinite += (~finite).sum().double()
        self.zero += (finite & (flat == 0).all(dim=1)).sum().double()
        self.total += flat.shape[0]

    def compute(self) -> dict[str, float]:
        """Fractions of images with an all-zero and with a non-finite input gradient.

        Raises:
            EmptyInputError: no gradient was added (on any process).
        """
        if float(self.total) == 0:
            raise EmptyInputError(
                "GradientHealth.compute() over zero images: no input gradient was added, so no "
                "gradient check is reported. Call update() with the gradients first."
            )
        total = float(self.total)
        return {
            "zero_fraction": float(self.zero) / total,
            "nonfinite_fraction": float(self.nonfinite) / total,
        }
