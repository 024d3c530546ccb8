"""Adversarial training (Madry et al., 2018): minimise the loss on PGD examples."""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor

from robustart.attacks import PGD
from robustart.errors import ConfigError
from robustart.tasks.classification import ClassificationTask


class AdversarialTrainingTask(ClassificationTask):
    """PGD adversarial training.

    Each training batch is replaced by (or mixed with) PGD adversarial examples crafted on the
    same device as the model, in fp32, against the current weights. Parameter gradients of the
    crafting steps are never accumulated.

    Args:
        norm: Threat model, ``linf`` or ``l2``.
        eps: Budget ε (float or fraction string, e.g. ``"8/255"``).
        step_size: PGD step α (float or fraction); ``None`` uses ``2.5 · ε / steps``.
        steps: PGD iterations while training.
        random_start: Start PGD from a uniform random point in the ε-ball.
        bn_mode: BatchNorm/dropout mode while crafting: ``train`` (Madry et al., fast AT) or
            ``eval`` (TRADES, MART, MadryLab's robustness library).
        adv_weight: Weight of the adversarial loss; ``1`` trains on adversarial examples only,
            ``0.5`` averages clean and adversarial losses (as RobustART's ImageNet recipe).
        **kwargs: Everything :class:`ClassificationTask` accepts (model, optimiser, ...).

    Logged besides the base metrics: ``train/acc`` is the accuracy on the adversarial examples,
    ``train/acc_clean`` (only when ``adv_weight < 1``) the accuracy on the clean batch.
    """

    def __init__(
        self,
        norm: Literal["linf", "l2"] = "linf",
        eps: float | str = "8/255",
        step_size: float | str | None = "2/255",
        steps: int = 10,
        random_start: bool = True,
        bn_mode: Literal["train", "eval"] = "train",
        adv_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 < adv_weight <= 1:
            raise ConfigError(f"adv_weight must be in (0, 1], got {adv_weight}")
        if bn_mode not in ("train", "eval"):
            raise ConfigError(f"bn_mode must be 'train' or 'eval', got {bn_mode!r}")
        self.attack = PGD(
            eps=eps,
            norm=norm,
            steps=steps,
            step_size=step_size,
            random_start=random_start,
            track_best=False,
            mode=bn_mode,
        )
        self.adv_weight = adv_weight

    def training_loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        adversarial = self.attack(self.model, images, labels)
        logits = self.model(adversarial)
        loss = self.criterion(logits, labels)
        self.log("train/loss_adv", loss.detach(), on_step=False, on_epoch=True)
        if self.adv_weight < 1:
            clean_logits = self.model(images)
            clean_loss = self.criterion(clean_logits, labels)
            loss = self.adv_weight * loss + (1 - self.adv_weight) * clean_loss
            acc = (clean_logits.argmax(1) == labels).float().mean()
            self.log("train/acc_clean", acc, on_step=False, on_epoch=True)
        return loss, logits
