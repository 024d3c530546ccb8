"""Robustness evaluation: suites of attacks and corruptions, their runner and reports."""

from robustart.evaluation.loop import (
    CachedChunks,
    chunk_ids_for_rank,
    iterate_chunks,
    iterate_logits,
    model_device,
)
from robustart.evaluation.report import RobustnessReport
from robustart.evaluation.runner import evaluate_robustness
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
    "iterate_logits",
    "load_suite",
    "model_device",
    "suite_names",
    "suites_dir",
    "transfer_matrix",
]
