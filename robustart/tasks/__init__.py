"""Training recipes as LightningModules, all on :class:`ClassificationTask`."""

from robustart.tasks.adversarial import AdversarialTrainingTask
from robustart.tasks.classification import ClassificationTask

__all__ = ["AdversarialTrainingTask", "ClassificationTask"]
