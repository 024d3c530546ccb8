"""robustart: train image classifiers with PyTorch Lightning and measure their robustness.

Subpackages by concept: :mod:`robustart.data`, :mod:`robustart.models`, :mod:`robustart.tasks`,
:mod:`robustart.attacks`, :mod:`robustart.corruptions`, :mod:`robustart.evaluation`,
:mod:`robustart.callbacks`. Images everywhere are float tensors in [0, 1], NCHW; normalisation
happens inside the model.
"""

__version__ = "0.1.0"
