"""Lightning callbacks: robustness evaluation at epoch ends and at validate/test."""

from robustart.callbacks.overfitting import CatastrophicOverfittingGuard
from robustart.callbacks.robustness import DEFAULT_CORRUPTIONS, RobustnessEvaluation

__all__ = ["DEFAULT_CORRUPTIONS", "CatastrophicOverfittingGuard", "RobustnessEvaluation"]
