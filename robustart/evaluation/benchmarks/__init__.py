"""The on-disk benchmark families of ``robustart shift``, one module each on one base.

================================  ===========================================================
:mod:`.base`                      :class:`Benchmark`, :class:`ModelData`,
                                  :class:`ShiftSettings`, :class:`Table`, :data:`BENCHMARKS`
:mod:`.natural_shift`             labelled shift test sets: accuracy, ECE
                                  (``cifar10.1``, ``imagenet-a``, ``-r``, ``-sketch``, ``-v2``)
:mod:`.corruption_files`          pre-generated corruptions: accuracy per corruption ×
                                  severity, mCE (``cifar10-c``, ``cifar100-c``, ``imagenet-c``)
:mod:`.ood`                       out-of-distribution detection: AUROC, AUPR (``imagenet-o``)
:mod:`.perturbation`              perturbation sequences: flip probability, top-5 distance
                                  (``cifar10-p``, ``imagenet-p``)
:mod:`.system_noise`              decoders × resizers × JPEG over image files
                                  (``imagenet-s``, ``imagenet-s-jpeg``); CIFAR resize variants
                                  (``cifar10-s``, ``cifar100-s``)
================================  ===========================================================

Every evaluation gets its logits from :func:`robustart.evaluation.loop.iterate_logits`. A
benchmark's name is also its dataset's name in :data:`robustart.data.SHIFT_DATASETS`; lookups
accept any spelling (``CIFAR10_C`` finds ``cifar10-c``).

Example:
    >>> from robustart.evaluation.benchmarks import get_benchmark
    >>> get_benchmark("CIFAR10_C").title
    'CIFAR-10-C'
"""

from robustart.evaluation.benchmarks.base import (
    ALEXNET,
    BENCHMARKS,
    CIFAR10_MODELS,
    CIFAR100_MODELS,
    IMAGENET_MODELS,
    Benchmark,
    ModelData,
    ShiftSettings,
    Table,
    get_benchmark,
)
from robustart.evaluation.benchmarks.corruption_files import (
    CorruptionBenchmark,
    evaluate_corruption_files,
)
from robustart.evaluation.benchmarks.natural_shift import (
    ClassificationBenchmark,
    evaluate_classification,
)
from robustart.evaluation.benchmarks.ood import OODBenchmark, anomaly_scores, evaluate_ood
from robustart.evaluation.benchmarks.perturbation import (
    PerturbationBenchmark,
    evaluate_perturbation_sequences,
)
from robustart.evaluation.benchmarks.system_noise import (
    CifarSystemNoiseBenchmark,
    FolderSystemNoiseBenchmark,
    SystemNoiseResult,
    aggregate_accuracies,
    evaluate_cifar_system_noise,
    evaluate_system_noise,
)

__all__ = [
    "ALEXNET",
    "BENCHMARKS",
    "CIFAR10_MODELS",
    "CIFAR100_MODELS",
    "IMAGENET_MODELS",
    "Benchmark",
    "CifarSystemNoiseBenchmark",
    "ClassificationBenchmark",
    "CorruptionBenchmark",
    "FolderSystemNoiseBenchmark",
    "ModelData",
    "OODBenchmark",
    "PerturbationBenchmark",
    "ShiftSettings",
    "SystemNoiseResult",
    "Table",
    "aggregate_accuracies",
    "anomaly_scores",
    "evaluate_cifar_system_noise",
    "evaluate_classification",
    "evaluate_corruption_files",
    "evaluate_ood",
    "evaluate_perturbation_sequences",
    "evaluate_system_noise",
    "get_benchmark",
]
