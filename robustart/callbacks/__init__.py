"""Lightning callbacks: robustness evaluation at epoch ends and at validate/test, exactly
resumable checkpoints, and the divergence guard."""

from robustart.callbacks.checkpoint import RunCheckpoint
from robustart.callbacks.divergence import DivergenceGuard
from robustart.callbacks.overfitting import CatastrophicOverfittingGuard
from robustart.callbacks.robustness import DEFAULT_CORRUPTIONS, RobustnessEvaluation

__all__ = [
    "DEFAULT_CORRUPTIONS",
    "CatastrophicOverfittingGuard",
    "DivergenceGuard",
    "RobustnessEvaluation",
    "RunCheckpoint",
]
