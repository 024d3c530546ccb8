"""Robustness evaluation, one home per concept.

* :mod:`~robustart.evaluation.loop`: the one loop yielding a model's logits over a dataset
  (device, eval mode, inference, progress, DDP chunks),
* :mod:`~robustart.evaluation.suite`, :mod:`~robustart.evaluation.runner`,
  :mod:`~robustart.evaluation.report`: suites of attacks, corruptions and minimal-ε searches,
  run on a fixed subset (the epoch-end callback and ``benchmark``), and their reports,
* :mod:`~robustart.evaluation.minimal`: the per-image minimal-ε search,
* :mod:`~robustart.evaluation.benchmarks`: the on-disk benchmark families (corruption files,
  perturbation sequences, natural shift and calibration, OOD, system noise), one per file,
* :mod:`~robustart.evaluation.transfer`: transfer-attack matrices,
* :mod:`~robustart.evaluation.certification`: certified ℓ2 robustness by randomized smoothing
  (Cohen et al., 2019; the benchmark suite item ``certification``),
* :mod:`~robustart.evaluation.benchmark` (with :mod:`~robustart.evaluation.items` and
  :mod:`~robustart.evaluation.results`): ``robustart.benchmark``, any models through one suite,
  stored per item and resumable,
* :mod:`~robustart.evaluation.study`: ``robustart study``, models tagged by family and
  technique through one suite, read as a study (leaderboard, Pareto frontiers, scaling law,
  transfer matrix).
"""

from robustart.evaluation.benchmark import BenchmarkResult, benchmark, load_benchmark_suite
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
    "BenchmarkResult",
    "CachedChunks",
    "RobustnessReport",
    "RobustnessSuite",
    "TransferResult",
    "benchmark",
    "chunk_ids_for_rank",
    "evaluate_robustness",
    "evaluate_transfer",
    "iterate_chunks",
    "iterate_logits",
    "load_benchmark_suite",
    "load_suite",
    "model_device",
    "suite_names",
    "suites_dir",
    "transfer_matrix",
]
