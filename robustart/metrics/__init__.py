"""Metrics of robustness evaluations (torchmetrics ``Metric``s and hand-checkable functions)."""

from robustart.metrics.robustness import GradientHealth, PerturbationNorms, RobustnessCounts

__all__ = ["GradientHealth", "PerturbationNorms", "RobustnessCounts"]
