"""Lightning callbacks: robustness evaluation at epoch ends and at validate/test, exactly
resumable checkpoints, the divergence guard and closing W&B runs."""

from robustart.callbacks.checkpoint import RunCheckpoint
from robustart.callbacks.divergence import DivergenceGuard
from robustart.callbacks.loggers import FinishLoggers
from robustart.callbacks.overfitting import CatastrophicOverfittingGuard
from robustart.callbacks.robustness import DEFAULT_CORRUPTIONS, RobustnessEvaluation

__all__ = [
    "DEFAULT_CORRUPTIONS",
    "CatastrophicOverfittingGuard",
    "DivergenceGuard",
    "FinishLoggers",
    "RobustnessEvaluation",
    "RunCheckpoint",
]
