"""Adversarial training: PGD-AT (Madry et al., 2018), TRADES, MART and FGSM-RS "fast" AT as
objectives of one task (see :mod:`robustart.tasks.objectives`), each optionally with adversarial
weight perturbation (AWP, Wu et al., 2020; see :mod:`robustart.tasks.awp`)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor
from torch.optim import Optimizer

from robustart.attacks import PGD
from robustart.errors import ConfigError
from robustart.tasks.awp import (
    AdversarialWeightPerturbation,
    perturbed_parameters,
    preserved_buffers,
)
from robustart.tasks.classification import ClassificationTask
from robustart.tasks.objectives import ATObjective, ObjectiveOutput, build_objective


class AdversarialTrainingTask(ClassificationTask):
    """Adversarial training with a pluggable objective (PGD-AT by default).

    Each training batch is replaced by adversarial examples crafted on the same device as the
    model, in fp32, against the current weights, and the objective's loss is minimised.
    Parameter gradients of the crafting steps are never accumulated.

    Objectives (``objective``), with their published crafting defaults, used for every attack
    setting left at ``null``:

    * ``pgd_at`` (default; Madry et al.): cross-entropy on PGD-CE examples; 10 steps of
      2.5·ε/steps (2/255 at 8/255), uniform random start, BatchNorm in train mode.
    * ``trades`` (Zhang et al.): ``CE(f(x), y) + β·KL(f(x) ‖ f(x'))``, ``x'`` maximising the KL;
      10 steps of 2.5·ε/steps, start ``x + 0.001·N(0, 1)``, BatchNorm in eval mode; ``beta: 6``.
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
            (2.5·ε/steps for pgd_at/trades/mart, i.e. 2/255 for 10 steps at 8/255 and 0.125
            at L2 0.5; 1.25·ε for fgsm_rs). A step that cannot reach ε in ``steps`` steps
            gets a warning.
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
        awp_gamma: Adversarial weight perturbation (AWP, Wu et al., 2020) of relative size γ
            for every objective: after crafting, one gradient-ascent step on the objective's
            own training loss perturbs each conv/linear weight tensor by
            ``v_l = γ·‖w_l‖·g_l/‖g_l‖``; the loss and its gradient are taken at ``w + v``, the
            weights restored exactly and the optimiser steps from ``w``. ``null`` (default)
            or ``0``: no AWP. Published: 5e-3 (CIFAR-10, PGD-AT and TRADES; the authors'
            TRADES-AWP script's default); ports of their PGD-AT script use 1e-2. Too large a
            γ can keep a post-activation ResNet at chance level (the authors saw it with
            ResNet-18; the digits ResNet-20 at ε = 16/255 needs 2e-3): watch ``train/loss``.
        awp_warmup_epochs: Epochs trained without AWP before it starts (AWP applies from
            epoch index ``awp_warmup_epochs``, counting from 0). The authors' TRADES-AWP script
            starts it at its 10th epoch (9 here), their PGD-AT-AWP script at once (0).
        **kwargs: Everything :class:`ClassificationTask` accepts (model, optimiser, ...).

    AWP costs one extra forward and backward pass per batch. The ascent forward runs in train
    mode like the training forward, but leaves BatchNorm statistics untouched (as the
    reference's proxy model), and its gradient never reaches ``.grad``. The weights are
    restored in ``on_after_backward``, after every backward pass, so gradient accumulation,
    gradient clipping (of the gradient taken at ``w + v``) and AMP (the ascent loss is scaled
    by the gradient scaler; a batch whose ascent gradient overflows trains without AWP) work
    with Lightning's automatic optimisation. Under DDP each process computes ``v`` from its
    local batch's gradient (the reference, on one data-parallel model, used the whole
    batch's); the training gradients are averaged as usual and the restored weights stay
    identical on all processes.

    Logged besides the base metrics: ``train/acc`` is the accuracy on the adversarial examples;
    ``train/acc_clean`` the accuracy on the clean batch (trades, mart, and pgd_at/fgsm_rs with
    ``adv_weight < 1``); the loss terms ``train/loss_adv`` (pgd_at, fgsm_rs: adversarial CE;
    mart: boosted CE), ``train/loss_natural`` (trades) and ``train/loss_robust`` (trades: KL;
    mart: weighted KL). With AWP the loss, its terms and ``train/acc`` are those at ``w + v``;
    ``train/awp_skipped`` is the fraction of AWP batches whose perturbation was skipped
    (non-finite ascent gradient under AMP).
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
        awp_gamma: float | None = None,
        awp_warmup_epochs: int = 0,
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
        if (
            isinstance(awp_warmup_epochs, bool)
            or not isinstance(awp_warmup_epochs, int)
            or awp_warmup_epochs < 0
        ):
            raise ConfigError(
                f"awp_warmup_epochs must be an integer >= 0, got {awp_warmup_epochs!r}"
            )
        self.awp: AdversarialWeightPerturbation | None = None
        if awp_gamma is not None and awp_gamma != 0:  # the reference: γ = 0 turns AWP off
            self.awp = AdversarialWeightPerturbation(awp_gamma)
        self.awp_warmup_epochs = awp_warmup_epochs

    @property
    def attack(self) -> PGD:
        """The attack that crafts the training examples."""
        return self.objective.attack

    @property
    def awp_active(self) -> bool:
        """Whether this epoch trains with adversarial weight perturbation."""
        return self.awp is not None and self.current_epoch >= self.awp_warmup_epochs

    def training_loss(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        if self.awp_active:
            loss, logits, terms = self.awp_objective(images, targets)
        else:
            loss, logits, terms = self.objective(self.model, images, targets, self.criterion)
        for name, value in terms.items():
            self.log(f"train/{name}", value, on_step=False, on_epoch=True)
        return loss, logits

    def awp_objective(self, images: Tensor, targets: Tensor) -> ObjectiveOutput:
        """The objective's loss at the adversarially perturbed weights ``w + v``.

        Crafts the adversarial examples at ``w``, takes the objective's loss on them at ``w``
        (buffers preserved) for the ascent step, applies ``v`` and returns the loss at
        ``w + v``. The weights stay perturbed until :meth:`on_after_backward` restores them.

        Args:
            images: Clean training images (N, C, H, W) in [0, 1].
            targets: Labels (N,) or soft label distributions (N, K).
        """
        awp = self.awp
        if awp is None:
            raise RuntimeError("awp_objective needs awp_gamma > 0")
        awp.restore()  # a perturbation left over by an interrupted step
        adversarial = self.objective.adversarial_examples(self.model, images, targets)
        parameters = [p for _, p in perturbed_parameters(self.model)]
        with preserved_buffers(self.model):
            ascent = self.objective.loss(self.model, images, adversarial, targets, self.criterion)
            perturbation = awp.perturbation(ascent.loss, parameters, self._loss_scale())
        if perturbation is not None:
            awp.apply(parameters, perturbation)
        try:
            output = self.objective.loss(self.model, images, adversarial, targets, self.criterion)
        except BaseException:
            awp.restore()
            raise
        skipped = torch.tensor(float(perturbation is None), device=output.loss.device)
        terms = {**output.terms, "awp_skipped": skipped}
        return ObjectiveOutput(output.loss, output.logits, terms)

    def _loss_scale(self) -> Tensor | float:
        """The AMP gradient scale (fp16), so that the ascent gradient does not underflow."""
        trainer = self._trainer
        scaler = getattr(trainer.precision_plugin, "scaler", None) if trainer else None
        if scaler is None or not scaler.is_enabled():
            return 1.0
        return scaler.scale(torch.ones((), device=self.device))

    def on_after_backward(self) -> None:
        if self.awp is not None:
            self.awp.restore()

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        if self.awp is not None:
            self.awp.restore()  # normally a no-op: restored after the backward pass

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.awp is not None:
            self.awp.restore()  # a skipped backward (e.g. a None loss) must not keep ``w + v``
        super().on_train_batch_end(outputs, batch, batch_idx)
