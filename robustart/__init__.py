"""robustart: train image classifiers with PyTorch Lightning and measure their robustness.

Subpackages by concept: :mod:`robustart.data`, :mod:`robustart.models`, :mod:`robustart.tasks`,
:mod:`robustart.attacks`, :mod:`robustart.corruptions`, :mod:`robustart.evaluation`,
:mod:`robustart.callbacks`. Images everywhere are float tensors in [0, 1], NCHW; normalisation
happens inside the model.
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``robustart.benchmark`` (see :func:`robustart.evaluation.benchmark.benchmark`), imported
    on first use so that ``import robustart`` stays light."""
    if name == "benchmark":
        from robustart.evaluation.benchmark import benchmark

        return benchmark
    raise AttributeError(f"module 'robustart' has no attribute {name!r}")
