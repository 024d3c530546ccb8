"""Training recipes as LightningModules, all on :class:`ClassificationTask`."""

from robustart.tasks.adversarial import AdversarialTrainingTask
from robustart.tasks.awp import AdversarialWeightPerturbation
from robustart.tasks.classification import ClassificationTask
from robustart.tasks.free_at import FreeAdversarialTrainingTask
from robustart.tasks.objectives import (
    AT_OBJECTIVES,
    MART,
    TRADES,
    ATObjective,
    FastAdversarialTraining,
    PGDAdversarialTraining,
    build_objective,
)

__all__ = [
    "AT_OBJECTIVES",
    "MART",
    "TRADES",
    "ATObjective",
    "AdversarialTrainingTask",
    "AdversarialWeightPerturbation",
    "ClassificationTask",
    "FastAdversarialTraining",
    "FreeAdversarialTrainingTask",
    "PGDAdversarialTraining",
    "build_objective",
]
