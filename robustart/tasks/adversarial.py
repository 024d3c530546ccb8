"""Adversarial training: PGD-AT (Madry et al., 2018), TRADES, MART and FGSM-RS "fast" AT as
objectives of one task (see :mod:`robustart.tasks.objectives`)."""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor

from robustart.attacks import PGD
from robustart.tasks.classification import ClassificationTask
from robustart.tasks.objectives import ATObjective, build_objective


class AdversarialTrainingTask(ClassificationTask):
    """Adversarial training with a pluggable objective (PGD-AT by default).

    Each training batch is replaced by adversarial examples crafted on the same device as the
    model, in fp32, against the current weights, and the objective's loss is minimised.
    Parameter gradients of the crafting steps are never accumulated.

    Objectives (``objective``), with their published crafting defaults, used for every attack
    setting left at ``null``:

    * ``pgd_at`` (default; Madry et al.): cross-entropy on PGD-CE examples; 10 steps of 2/255,
      uniform random start, BatchNorm in train mode.
    * ``trades`` (Zhang et al.): ``CE(f(x), y) + β·KL(f(x) ‖ f(x'))``, ``x'`` maximising the KL;
      10 steps of 2/255, start ``x + 0.001·N(0, 1)``, BatchNorm in eval mode; ``beta: 6``.
    * ``mart`` (Wang et al.): boosted CE on PGD-CE examples ``+ β·KL(f(x) ‖ f(x'))·(1 − f_y(x))``;
      crafting as TRADES; ``beta: 6``. Needs hard labels (no Mixup/CutMix/label smoothing).
    * ``fgsm_rs`` (Wong et al., "fast" AT): one step of 1.25·ε from a uniform random start,
      BatchNorm in train mode; use with ``lr_schedule: cyclic`` and the
      ``CatastrophicOverfittingGuard`` callback.

    Args:
        objective: ``pgd_at`` (Madry et al.), ``trades`` (Zhang et al.), ``mart`` (Wang et
            al.) or ``fgsm_rs`` (Wong et al.'s fast AT); or a mapping with the name and the
            objective's own settings: ``{name: trades, beta: 6.0}``, ``{name: mart, beta: 6.0}``
            (β ≥ 0 weighs the KL term; 6 as published).
        norm: Threat model, ``linf`` or ``l2``.
        eps: Budget ε (float or fraction string, e.g. ``"8/255"``).
        step_size: Attack step α (float or fraction); ``null``: the objective's default
            (2/255 for pgd_at/trades/mart, 1.25·ε for fgsm_rs).
        steps: Attack iterations while training; ``null``: the objective's default (10; 1 for
            fgsm_rs, which takes no other value).
        random_start: Start of the attack: ``true``/``uniform`` (uniform in the ε-ball),
            ``normal`` (``x + 0.001·N(0, 1)``, TRADES/MART) or ``false``; ``null``: the
            objective's default.
        bn_mode: BatchNorm/dropout mode while crafting: ``train`` (Madry et al., fast AT) or
            ``eval`` (TRADES, MART, MadryLab's robustness library); ``null``: the objective's
            default.
        adv_weight: pgd_at and fgsm_rs only: weight of the adversarial loss; ``1`` trains on
            adversarial examples only, ``0.5`` averages clean and adversarial losses (as
            RobustART's ImageNet recipe).
        **kwargs: Everything :class:`ClassificationTask` accepts (model, optimiser, ...).

    Logged besides the base metrics: ``train/acc`` is the accuracy on the adversarial examples;
    ``train/acc_clean`` the accuracy on the clean batch (trades, mart, and pgd_at/fgsm_rs with
    ``adv_weight < 1``); the loss terms ``train/loss_adv`` (pgd_at, fgsm_rs: adversarial CE;
    mart: boosted CE), ``train/loss_natural`` (trades) and ``train/loss_robust`` (trades: KL;
    mart: weighted KL).
    """

    def __init__(
        self,
        objective: str | dict[str, Any] = "pgd_at",
        norm: Literal["linf", "l2"] = "linf",
        eps: float | str = "8/255",
        step_size: float | str | None = None,
        steps: int | None = None,
        random_start: bool | Literal["uniform", "normal"] | None = None,
        bn_mode: Literal["train", "eval"] | None = None,
        adv_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.objective: ATObjective = build_objective(
            objective,
            norm=norm,
            eps=eps,
            step_size=step_size,
            steps=steps,
            random_start=random_start,
            bn_mode=bn_mode,
            adv_weight=adv_weight,
        )
        soft = [a.name for a in self.batch_augment if a.mixes_images or a.label_smoothing > 0]
        self.objective.check_task(self.hparams.label_smoothing, soft)

    @property
    def attack(self) -> PGD:
        """The attack that crafts the training examples."""
        return self.objective.attack

    def training_loss(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        loss, logits, terms = self.objective(self.model, images, targets, self.criterion)
        for name, value in terms.items():
            self.log(f"train/{name}", value, on_step=False, on_epoch=True)
        return loss, logits
