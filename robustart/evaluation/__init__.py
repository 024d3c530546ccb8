"""Robustness evaluation: suites of attacks and corruptions, their runner and reports."""

from robustart.evaluation.report import RobustnessReport
from robustart.evaluation.runner import (
    CachedChunks,
    chunk_ids_for_rank,
    evaluate_robustness,
    iterate_chunks,
)
from robustart.evaluation.suite import (
    DEFAULT_ATTACKS,
    RobustnessSuite,
    load_suite,
    suite_names,
    suites_dir,
)
from robustart.evaluation.transfer import TransferResult, evaluate_transfer, transfer_matrix

__all__ = [
    "DEFAULT_ATTACKS",
    "CachedChunks",
    "RobustnessReport",
    "RobustnessSuite",
    "TransferResult",
    "chunk_ids_for_rank",
    "evaluate_robustness",
    "evaluate_transfer",
    "iterate_chunks",
    "load_suite",
    "suite_names",
    "suites_dir",
    "transfer_matrix",
]
