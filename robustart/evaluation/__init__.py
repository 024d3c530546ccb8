"""Robustness evaluation: suites of attacks and corruptions, their runner and reports."""

from robustart.evaluation.report import RobustnessReport
from robustart.evaluation.runner import (
    CachedChunks,
    chunk_ids_for_rank,
    evaluate_robustness,
    iterate_chunks,
)
from robustart.evaluation.suite import DEFAULT_ATTACKS, RobustnessSuite

__all__ = [
    "DEFAULT_ATTACKS",
    "CachedChunks",
    "RobustnessReport",
    "RobustnessSuite",
    "chunk_ids_for_rank",
    "evaluate_robustness",
    "iterate_chunks",
]
