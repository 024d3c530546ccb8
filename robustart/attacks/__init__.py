"""Adversarial attacks in [0, 1] image space, keyed by name in :data:`ATTACKS`.

Example:
    >>> from robustart.attacks import create_attack
    >>> pgd = create_attack("pgd", eps="8/255", norm="linf", steps=10)
"""

from robustart.attacks.apgd import APGD, APGDTargeted
from robustart.attacks.base import ATTACKS, Attack, MinimalDistortionAttack, create_attack
from robustart.attacks.cw import CarliniWagnerL2
from robustart.attacks.deepfool import DeepFool
from robustart.attacks.ensemble import AutoAttack
from robustart.attacks.fab import FABTargeted
from robustart.attacks.hyperplane import hyperplane_projection
from robustart.attacks.losses import ATTACK_LOSSES
from robustart.attacks.pgd import FGSM, MIFGSM, PGD
from robustart.attacks.square import Square
from robustart.attacks.threat import THREAT_MODELS, ThreatModel, clip_to_box, get_threat_model
from robustart.attacks.tracking import BestTracker, ClosestTracker, cascade

__all__ = [
    "APGD",
    "ATTACKS",
    "ATTACK_LOSSES",
    "FGSM",
    "MIFGSM",
    "PGD",
    "THREAT_MODELS",
    "APGDTargeted",
    "Attack",
    "AutoAttack",
    "BestTracker",
    "CarliniWagnerL2",
    "ClosestTracker",
    "DeepFool",
    "FABTargeted",
    "MinimalDistortionAttack",
    "Square",
    "ThreatModel",
    "cascade",
    "clip_to_box",
    "create_attack",
    "get_threat_model",
    "hyperplane_projection",
]
