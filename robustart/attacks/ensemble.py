"""AutoAttack-style ensembles: several attacks in sequence, each on the points still robust."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from robustart.attacks.base import ATTACKS, Attack, Model, create_attack
from robustart.attacks.losses import misclassified
from robustart.attacks.tracking import BestTracker, cascade
from robustart.errors import ConfigError

#: AutoAttack "standard" (Croce & Hein, 2020) in the published order: APGD-CE (100
#: iterations), APGD-T (100 iterations, 9 target classes), FAB-T (100 iterations, 9 target
#: classes, α_max 0.1, η 1.05, β 0.9), Square (5,000 queries). An FAB-T iteration costs about
#: 1.5 APGD-T iterations (a forward pass to test the new point, then a forward and backward
#: pass at the point it moves on from); on a robust digits ResNet-20 (CPU) FAB-T made the
#: whole ensemble 1.66× slower (BENCHMARKS.md, ``benchmarks/bench_autoattack.py``).
VERSIONS: dict[str, list[dict[str, Any]]] = {
    "standard": [
        {"name": "apgd", "loss": "ce", "steps": 100, "restarts": 1},
        {"name": "apgd_t", "steps": 100, "restarts": 1, "num_targets": 9},
        {
            "name": "fab_t",
            "steps": 100,
            "restarts": 1,
            "num_targets": 9,
            "alpha_max": 0.1,
            "eta": 1.05,
            "beta": 0.9,
        },
        {"name": "square", "queries": 5000, "p_init": 0.8},
    ],
    "fast": [  # a cheaper check for epoch ends
        {"name": "apgd", "loss": "ce", "steps": 20},
        {"name": "apgd_t", "steps": 20, "num_targets": 3},
    ],
}


@ATTACKS.register("autoattack")
class AutoAttack(Attack):
    """Run attacks in sequence; each later one attacks only the points that are still robust,
    so the result is the per-sample worst case over the ensemble.

    Args:
        eps: Budget ε shared by all members.
        norm: ``"linf"`` or ``"l2"``.
        version: ``"standard"`` (APGD-CE → APGD-T → FAB-T → Square) or ``"fast"``;
            ignored when ``attacks`` is given.
        attacks: Custom members as ``[{name: ..., <settings>}]`` (``eps`` and ``norm`` are
            set by the ensemble).
        **kwargs: ``mode`` and ``precision``, passed to every member (FAB-T, and so the
            standard version, refuses ``precision="amp"``: FAB overflows in half precision).
    """

    name = "autoattack"

    def __init__(
        self,
        eps: float | str = 8 / 255,
        norm: str = "linf",
        version: str = "standard",
        attacks: list[dict[str, Any]] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(eps=eps, norm=norm, **kwargs)
        if attacks is None:
            if version not in VERSIONS:
                raise ConfigError(
                    f"unknown autoattack version {version!r}; known: {', '.join(VERSIONS)}"
                )
            attacks = VERSIONS[version]
        else:
            version = "custom"
        if not attacks:
            raise ConfigError("an autoattack ensemble needs at least one attack")
        self.version = version
        self.members: list[Attack] = []
        for spec in copy.deepcopy(attacks):
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise ConfigError(
                    f"each member of an autoattack ensemble must be a mapping with a 'name', "
                    f"got {spec!r}"
                )
            if "eps" in spec or "norm" in spec:
                raise ConfigError(
                    f"ensemble members share the ensemble's eps and norm; remove them from {spec}"
                )
            name = spec.pop("name")
            self.members.append(create_attack(name, eps=eps, norm=norm, **spec, **kwargs))

    @property
    def config(self) -> dict:
        return {
            **super().config,
            "version": self.version,
            "members": [m.config for m in self.members],
        }

    @property
    def label(self) -> str:
        return f"autoattack_{self.version}_{self.norm}"

    def perturb(
        self,
        model: Model,
        images: Tensor,
        labels: Tensor,
        eps: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        tracker = BestTracker(images)
        with torch.no_grad():
            logits = self.forward(model, images)
        tracker.update(
            images, torch.zeros(len(images), device=images.device), misclassified(logits, labels)
        )
        for member, active in cascade(self.members, tracker.pending):
            adversarial = member.perturb(
                model, images[active], labels[active], eps[active], generator
            )
            with torch.no_grad():
                fooled = misclassified(self.forward(model, adversarial), labels[active])
            tracker.update(
                adversarial, torch.zeros(len(active), device=images.device), fooled, active
            )
        return tracker.images
