"""Catastrophic-overfitting detection for single-step ("fast") adversarial training."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from robustart.attacks import FGSM, PGD
from robustart.attacks.base import check_budget
from robustart.errors import ConfigError, RobustartWarning
from robustart.utils import format_eps, make_generator


class CatastrophicOverfittingGuard(Callback):
    """Stop training when PGD accuracy on a fixed training batch collapses.

    FGSM-based adversarial training can overfit catastrophically (Wong et al., 2020): within a
    few steps the model stops being robust to multi-step attacks while staying (or becoming)
    robust to FGSM. The guard captures ``num_images`` training images once (from the first
    training batches) and, at every training epoch end (or every ``every_n_steps`` optimiser
    steps), measures on them, with the model in eval mode, the clean, FGSM and PGD accuracy at
    the training budget. It logs ``overfit/pgd_acc``, ``overfit/fgsm_acc``,
    ``overfit/clean_acc`` and ``overfit/best_pgd_acc``, and declares a collapse when

    * PGD accuracy falls below ``ratio ×`` its best value so far, by at least ``min_drop``
      (so that noise at low accuracies early in training does not count), or
    * PGD accuracy is at most ``near_zero`` while FGSM accuracy exceeds it by at least
      ``fgsm_gap`` (the signature of catastrophic overfitting).

    On a collapse it warns, restores the weights of the best check (``restore_best``, kept in
    CPU memory) and stops training (``trainer.should_stop``) — before the checkpoint callbacks
    of that step run, so ``last.ckpt`` holds the restored weights. Under DDP every rank checks
    its own batch and training stops if any rank sees a collapse.

    Args:
        eps: Budget of the check; ``null``: the task's training budget (its ``eps`` setting).
        norm: Threat model; ``null``: the task's ``norm`` setting, else ``linf``.
        steps: PGD iterations (Wong et al. check with PGD; 10 by default).
        step_size: PGD step (float or fraction); ``null``: 2.5·ε / steps.
        num_images: Size of the fixed training batch.
        every_n_steps: Check every n optimiser steps instead of at epoch ends (``null``).
        ratio: Collapse when PGD accuracy < ``ratio`` × best PGD accuracy so far.
        min_drop: ... and the drop from the best is at least this (absolute accuracy).
        near_zero: PGD accuracy at or below this counts as collapsed if FGSM accuracy stays
            ``fgsm_gap`` higher.
        fgsm_gap: See ``near_zero``; ``null`` disables the FGSM criterion.
        restore_best: Load the weights of the best check before stopping.
        stop: Stop training on a collapse; ``false`` only warns and logs.
        seed: Seed of PGD's random start (the same start at every check).
    """

    def __init__(
        self,
        eps: float | str | None = None,
        norm: str | None = None,
        steps: int = 10,
        step_size: float | str | None = None,
        num_images: int = 128,
        every_n_steps: int | None = None,
        ratio: float = 0.5,
        min_drop: float = 0.1,
        near_zero: float = 0.05,
        fgsm_gap: float | None = 0.5,
        restore_best: bool = True,
        stop: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_images < 1:
            raise ConfigError(f"num_images must be >= 1, got {num_images}")
        if every_n_steps is not None and every_n_steps < 1:
            raise ConfigError(f"every_n_steps must be >= 1 or null, got {every_n_steps}")
        if not 0 < ratio <= 1:
            raise ConfigError(f"ratio must be in (0, 1], got {ratio}")
        for name, value in (("min_drop", min_drop), ("near_zero", near_zero)):
            if not 0 <= value <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if fgsm_gap is not None and not 0 < fgsm_gap <= 1:
            raise ConfigError(f"fgsm_gap must be in (0, 1] or null, got {fgsm_gap}")
        if int(steps) < 1:
            raise ConfigError(f"steps must be >= 1, got {steps}")
        # an L-inf budget above 1 (pixel units) is refused now, not after the first epoch; with
        # the norm left to the task, L-inf is assumed (the usual case) for this check
        self.eps = (
            None
            if eps is None
            else check_budget("CatastrophicOverfittingGuard", norm or "linf", eps)
        )
        self.norm = norm
        self.steps = int(steps)
        self.step_size = step_size
        self.num_images = int(num_images)
        self.every_n_steps = every_n_steps
        self.ratio = float(ratio)
        self.min_drop = float(min_drop)
        self.near_zero = float(near_zero)
        self.fgsm_gap = fgsm_gap
        self.restore_best = restore_best
        self.stop = stop
        self.seed = seed
        #: Best PGD accuracy of the checks so far (``-1`` before the first check).
        self.best_pgd_acc = -1.0
        #: The reason of the collapse, once detected.
        self.collapse: str | None = None
        self._images: Tensor | None = None
        self._labels: Tensor | None = None
        self._best_state: dict[str, Tensor] | None = None
        self._last_check_step = 0
        self._attacks: tuple[PGD, FGSM] | None = None

    # ---------------------------------------------------------------- the fixed batch
    @property
    def captured(self) -> int:
        """Number of training images captured so far."""
        return 0 if self._images is None else self._images.shape[0]

    def capture(self, images: Tensor, labels: Tensor) -> None:
        """Add images of a training batch to the fixed batch until it holds ``num_images``."""
        if self.captured >= self.num_images or labels.ndim != 1:
            return
        if images.ndim == 5:  # multi-view (AugMix) batch: the clean view
            images = images[:, 0]
        take = self.num_images - self.captured
        images, labels = images[:take].detach().clone(), labels[:take].detach().clone()
        if self._images is None:
            self._images, self._labels = images, labels
        else:
            self._images = torch.cat([self._images, images.to(self._images.device)])
            self._labels = torch.cat([self._labels, labels.to(self._labels.device)])

    # ---------------------------------------------------------------- measuring
    def attacks(self, pl_module: LightningModule) -> tuple[PGD, FGSM]:
        """The PGD and FGSM attacks of the check (budget and norm resolved from the task)."""
        if self._attacks is None:
            hparams = getattr(pl_module, "hparams", {}) or {}
            eps = self.eps if self.eps is not None else hparams.get("eps")
            if eps is None:
                raise ConfigError(
                    "CatastrophicOverfittingGuard needs eps: set it, or train a task with an "
                    "'eps' setting (AdversarialTrainingTask, FreeAdversarialTrainingTask)"
                )
            norm = self.norm or hparams.get("norm") or "linf"
            pgd = PGD(
                eps=eps,
                norm=norm,
                steps=self.steps,
                step_size=self.step_size,
                random_start=True,
                mode="eval",
            )
            self._attacks = (pgd, FGSM(eps=eps, norm=norm, mode="eval"))
        return self._attacks

    def measure(self, pl_module: LightningModule) -> dict[str, float]:
        """Clean, FGSM and PGD accuracy of ``pl_module`` on the fixed batch."""
        pgd, fgsm = self.attacks(pl_module)
        device = pl_module.device
        images, labels = self._images.to(device), self._labels.to(device)
        generator = make_generator(self.seed, device)
        adv_pgd = pgd(pl_module, images, labels, generator=generator)
        adv_fgsm = fgsm(pl_module, images, labels)
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                accs = {
                    name: (pl_module(x).argmax(1) == labels).float().mean().item()
                    for name, x in (("clean", images), ("fgsm", adv_fgsm), ("pgd", adv_pgd))
                }
        finally:
            pl_module.train(was_training)
        return accs

    def collapse_reason(self, pgd_acc: float, fgsm_acc: float) -> str | None:
        """Why ``pgd_acc`` (with ``fgsm_acc``) counts as a collapse, or ``None``."""
        best = self.best_pgd_acc
        if best >= 0 and pgd_acc < self.ratio * best and best - pgd_acc >= self.min_drop:
            return (
                f"PGD accuracy fell to {pgd_acc:.1%} from its best {best:.1%} "
                f"(below {self.ratio:g}× the best)"
            )
        if (
            self.fgsm_gap is not None
            and pgd_acc <= self.near_zero
            and fgsm_acc - pgd_acc >= self.fgsm_gap
        ):
            return f"PGD accuracy is {pgd_acc:.1%} while FGSM accuracy is {fgsm_acc:.1%}"
        return None

    def check(self, trainer: Trainer, pl_module: LightningModule, on_step: bool = False) -> bool:
        """Measure, log, and on a collapse warn, restore and stop. Returns whether it
        collapsed."""
        if self._images is None:
            return False
        accs = self.measure(pl_module)
        reason = self.collapse_reason(accs["pgd"], accs["fgsm"])
        if reason is None and accs["pgd"] >= self.best_pgd_acc:
            self.best_pgd_acc = accs["pgd"]
            if self.restore_best:
                self._best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()
                }
        collapsed = trainer.strategy.reduce_boolean_decision(reason is not None, all=False)
        metrics = {f"overfit/{k}_acc": v for k, v in accs.items()}
        metrics["overfit/best_pgd_acc"] = max(self.best_pgd_acc, 0.0)
        for key, value in metrics.items():
            pl_module.log(key, value, on_step=on_step, on_epoch=not on_step, sync_dist=True)
        if collapsed:
            self._on_collapse(trainer, pl_module, reason or "another rank saw a collapse")
        return collapsed

    def _on_collapse(self, trainer: Trainer, pl_module: LightningModule, reason: str) -> None:
        self.collapse = reason
        pgd = self.attacks(pl_module)[0]
        budget = format_eps(pgd.eps, pgd.norm)
        restored = self.restore_best and self._best_state is not None
        action = "stopping training" if self.stop else "continuing (stop: false)"
        if restored:
            action += f"; restored the weights of the best check (PGD {self.best_pgd_acc:.1%})"
        rank_zero_warn(
            f"catastrophic overfitting at epoch {trainer.current_epoch}, step "
            f"{trainer.global_step}: {reason} on {self.captured} fixed training images "
            f"(PGD-{pgd.steps} {pgd.norm} ε={budget}); {action}. Consider a smaller FGSM step, "
            "a lower learning rate, or a multi-step objective.",
            category=RobustartWarning,
        )
        if restored:
            pl_module.load_state_dict(self._best_state)
        if self.stop:
            trainer.should_stop = True

    # ---------------------------------------------------------------- hooks
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.captured < self.num_images and isinstance(batch, (list, tuple)) and len(batch) >= 2:
            self.capture(batch[0], batch[1])

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.every_n_steps is None:
            return
        if trainer.global_step - self._last_check_step >= self.every_n_steps:
            self._last_check_step = trainer.global_step
            self.check(trainer, pl_module, on_step=True)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.every_n_steps is None:
            self.check(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to check, and restore, exactly as an uninterrupted
        one: the best accuracy, the fixed batch and the best check's weights (so a checkpoint
        of a run with ``restore_best`` holds the weights twice)."""
        return {
            "best_pgd_acc": self.best_pgd_acc,
            "last_check_step": self._last_check_step,
            "images": None if self._images is None else self._images.detach().cpu(),
            "labels": None if self._labels is None else self._labels.detach().cpu(),
            "best_state": self._best_state,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_pgd_acc = float(state_dict.get("best_pgd_acc", -1.0))
        self._last_check_step = int(state_dict.get("last_check_step", 0))
        self._images = state_dict.get("images")
        self._labels = state_dict.get("labels")
        self._best_state = state_dict.get("best_state")
