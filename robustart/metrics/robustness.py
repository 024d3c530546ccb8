"""Robustness metrics as torchmetrics ``Metric``s (their states sum correctly under DDP).

Definitions, over a fixed set of N images (RobustBench, ARES-Bench, RobustART):

* robust accuracy of a test: #{correct under the test} / N (over all points);
* AR (RobustART): #{clean correct ∧ correct under the test} / #{clean correct};
* attack success rate: #{clean correct ∧ wrong under the test} / #{clean correct} = 1 − AR;
* WCAR (worst-case robust accuracy): #{correct under every test of a group} / N, where a
  group is e.g. all attacks with the same norm and ε;
* distortion: L∞ and L2 norms of the perturbations of successful points (mean and median).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric


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
        self.groups = {name: list(members) for name, members in (groups or {}).items()}
        for members in self.groups.values():
            unknown = set(members) - set(self.keys)
            if unknown:
                raise ValueError(f"group members {sorted(unknown)} are not tests")
        k, g = len(self.keys), len(self.groups)
        self.add_state("correct", torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state(
            "clean_and_correct", torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("group_correct", torch.zeros(g, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, correct: Mapping[str, Tensor]) -> None:
        """Add a batch: ``{key: correct (N,) bool}`` for every key."""
        stacked = torch.stack([correct[k].bool() for k in self.keys])  # (K, N)
        clean = stacked[0]
        self.correct += stacked.sum(dim=1).double()
        self.clean_and_correct += (stacked & clean).sum(dim=1).double()
        for i, members in enumerate(self.groups.values()):
            idx = [self.keys.index(m) for m in members]
            self.group_correct[i] += stacked[idx].all(dim=0).sum().double()
        self.total += clean.numel()

    def compute(self) -> dict[str, dict[str, float]]:
        total = max(float(self.total), 1.0)
        clean_correct = max(float(self.correct[0]), 1.0)
        accuracy = {k: float(c) / total for k, c in zip(self.keys, self.correct)}
        ar = {k: float(c) / clean_correct for k, c in zip(self.keys, self.clean_and_correct)}
        return {
            "accuracy": accuracy,
            "ar": ar,
            "success_rate": {k: 1.0 - v for k, v in ar.items()},
            "wcar": {n: float(c) / total for n, c in zip(self.groups, self.group_correct)},
            "count": {"images": float(self.total), "clean_correct": float(self.correct[0])},
        }


class PerturbationNorms(Metric):
    """L∞ and L2 norms of successful perturbations, per test (mean and median)."""

    full_state_update = False

    def __init__(self, keys: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.keys = list(keys)
        for key in range(len(self.keys)):
            self.add_state(f"linf_{key}", [], dist_reduce_fx="cat")
            self.add_state(f"l2_{key}", [], dist_reduce_fx="cat")

    def update(self, key: str, perturbation: Tensor, success: Tensor) -> None:
        """Record the norms of ``perturbation`` (N, C, H, W) where ``success`` (N,) holds."""
        i = self.keys.index(key)
        delta = perturbation[success].flatten(1).float()
        getattr(self, f"linf_{i}").append(delta.abs().amax(dim=1) if len(delta) else delta[:, 0])
        getattr(self, f"l2_{i}").append(delta.norm(dim=1) if len(delta) else delta[:, 0])

    def compute(self) -> dict[str, dict[str, float | None]]:
        out = {}
        for i, key in enumerate(self.keys):
            stats: dict[str, float | None] = {}
            for norm in ("linf", "l2"):
                values = getattr(self, f"{norm}_{i}")
                values = torch.cat(values) if isinstance(values, list) and values else values
                if isinstance(values, list) or values.numel() == 0:
                    stats[f"{norm}_mean"] = stats[f"{norm}_median"] = None
                else:
                    stats[f"{norm}_mean"] = float(values.mean())
                    stats[f"{norm}_median"] = float(values.median())
            out[key] = stats
        return out


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
        total = max(float(self.total), 1.0)
        return {
            "zero_fraction": float(self.zero) / total,
            "nonfinite_fraction": float(self.nonfinite) / total,
        }
