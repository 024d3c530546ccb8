"""Adversarial attacks in [0, 1] image space, keyed by name in :data:`ATTACKS`.

Example:
    >>> from robustart.attacks import create_attack
    >>> pgd = create_attack("pgd", eps="8/255", norm="linf", steps=10)
"""

from robustart.attacks.base import ATTACKS, Attack, create_attack
from robustart.attacks.losses import ATTACK_LOSSES
from robustart.attacks.pgd import FGSM, PGD
from robustart.attacks.threat import THREAT_MODELS, ThreatModel, clip_to_box, get_threat_model

__all__ = [
    "ATTACKS",
    "ATTACK_LOSSES",
    "FGSM",
    "PGD",
    "THREAT_MODELS",
    "Attack",
    "ThreatModel",
    "clip_to_box",
    "create_attack",
    "get_threat_model",
]
