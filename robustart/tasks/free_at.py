"""Free adversarial training (Shafahi et al., 2019): minibatch replay with a carried-over
perturbation, adversarial robustness at about the cost of standard training."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

from robustart.attacks.base import check_budget
from robustart.attacks.threat import ThreatModel, get_threat_model
from robustart.augment import hard_labels
from robustart.errors import ConfigError
from robustart.tasks.classification import ClassificationTask


class FreeAdversarialTrainingTask(ClassificationTask):
    """ "Free" adversarial training: each minibatch is replayed ``replays`` (m) times.

    Every replay runs one forward and one backward pass on ``clip(x + δ, 0, 1)``, which gives
    both the weight gradient (one optimiser step per replay) and the input gradient ``g``, with
    which the perturbation ascends: ``δ ← Π_ε(δ + step_size · sign(g))`` (L∞; the normalised
    gradient for L2). δ carries over between replays and across minibatches: it lives in a
    buffer of the largest batch seen, a smaller (last) batch uses and updates its first rows,
    as the reference code does, and a change of image shape resets it to zero.

    The optimisation is manual (``automatic_optimization = False``): ``trainer.global_step``
    counts optimiser steps, m per minibatch. The learning-rate schedule of
    :class:`ClassificationTask` advances once per minibatch (its ``interval: step``; schedules
    with ``interval: epoch`` once per epoch), so the learning rate stays the same over the
    replays of one minibatch and the schedule spans ``max_epochs`` epochs. The paper divides
    the number of epochs by m so that the number of gradient steps equals standard training
    (CIFAR-10: 200 epochs → 25 with m = 8). With ``max_steps`` (optimiser steps), the schedule
    is resized to the ⌈max_steps / m⌉ minibatches that will run.

    Args:
        norm: Threat model, ``linf`` or ``l2``.
        eps: Budget ε (float or fraction string, e.g. ``"8/255"``).
        replays: Replays m ≥ 1 of each minibatch, each one optimiser step and one ascent step
            of the perturbation δ, which carries over between replays and minibatches (8 in
            the paper for CIFAR-10; divide the epochs by m).
        step_size: Ascent step of δ per replay (float or fraction); ``null``: ε, as published.
        **kwargs: Everything :class:`ClassificationTask` accepts (model, optimiser, ...).
            ``gradient_clip_val`` and ``accumulate_grad_batches`` of the trainer are not
            supported (manual optimisation).

    Logged besides the base metrics: ``train/loss`` and ``train/acc`` over all replays (on the
    perturbed inputs), ``train/delta_norm``, the mean norm of δ after the replays.
    """

    def __init__(
        self,
        norm: Literal["linf", "l2"] = "linf",
        eps: float | str = "8/255",
        replays: int = 8,
        step_size: float | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(replays, bool) or int(replays) != replays or replays < 1:
            raise ConfigError(f"replays must be an integer >= 1, got {replays!r}")
        if norm not in ("linf", "l2"):
            raise ConfigError(f"Free-AT supports norm 'linf' or 'l2', got {norm!r}")
        self.automatic_optimization = False
        self.replays = int(replays)
        self.eps = check_budget("Free-AT", norm, eps)  # L-inf above 1: pixel units, refused
        if self.eps == 0:
            raise ConfigError(
                "Free-AT: eps is 0, which trains on clean images (standard training replayed "
                f"{replays} times); set the budget, e.g. eps: 8/255"
            )
        self.step_size = (
            self.eps if step_size is None else check_budget("Free-AT", norm, step_size, "step_size")
        )
        if step_size is not None and self.step_size == 0:
            raise ConfigError("step_size must be > 0")
        self.threat: ThreatModel = get_threat_model(norm)
        self._delta: Tensor | None = None  # the carried perturbation (saved in checkpoints)

    # ------------------------------------------------------------------ the perturbation
    def carried_delta(self, images: Tensor) -> Tensor:
        """The perturbation this minibatch starts from (a copy of the carried one)."""
        buffer = self._delta
        if (
            buffer is None
            or buffer.shape[1:] != images.shape[1:]
            or buffer.shape[0] < images.shape[0]
            or buffer.device != images.device
        ):
            size = images.shape[0] if buffer is None else max(images.shape[0], buffer.shape[0])
            self._delta = torch.zeros(
                (size, *images.shape[1:]), device=images.device, dtype=torch.float32
            )
            if buffer is not None and buffer.shape[1:] == images.shape[1:]:
                keep = min(buffer.shape[0], size)  # a larger batch keeps the rows it has
                self._delta[:keep] = buffer[:keep].to(images.device)
        return self._delta[: images.shape[0]].clone()

    def ascend(self, delta: Tensor, grad: Tensor) -> Tensor:
        """One ascent step of δ along ``grad``, projected onto the ε-ball."""
        grad = torch.nan_to_num(grad.float(), nan=0.0)  # an AMP overflow must not poison δ
        return self.threat.project(delta + self.threat.step(grad, self.step_size), self.eps)

    # ------------------------------------------------------------------ training
    def check_multi_view_support(self, views: int) -> None:
        if views >= 2:
            raise ConfigError(
                f"AugMix with its consistency loss (batches of {views} views per image) needs "
                "standard training, but FreeAdversarialTrainingTask replays each batch on "
                "its own perturbed inputs. Use `augment_policy: {name: augmix, views: 1}` to "
                "train on AugMix images without the consistency loss."
            )

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        self.check_training_batch(images, labels, batch_idx)
        self.check_multi_view_support(images.shape[1] if images.ndim == 5 else 1)
        images, targets = self.augment_batch(images, labels)
        optimizer = self.optimizers()
        delta = self.carried_delta(images)
        losses = []
        for _ in range(self.replays):
            delta.requires_grad_(True)
            logits = self.model((images + delta).clamp(0, 1))
            loss = self.criterion(logits, targets)
            optimizer.zero_grad()
            self.manual_backward(loss)  # one backward: weight gradients and δ's gradient
            optimizer.step()
            with torch.no_grad():
                delta = self.ascend(delta.detach(), delta.grad)
            self.train_metrics(logits.detach(), hard_labels(targets))
            losses.append(loss.detach())
        self._delta[: images.shape[0]] = delta
        self._step_schedulers("step", batch_idx)
        loss = torch.stack(losses).mean()
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/delta_norm", self.threat.norm(delta).mean(), on_step=False, on_epoch=True)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self._step_schedulers("epoch", self.current_epoch)

    # A resumed run continues from the perturbation it had carried, as the uninterrupted run.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["free_at_delta"] = None if self._delta is None else self._delta.detach().cpu()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        delta = checkpoint.get("free_at_delta")
        self._delta = delta if isinstance(delta, Tensor) else None

    def _step_schedulers(self, interval: str, index: int) -> None:
        """Step the schedulers configured with ``interval`` (manual optimisation leaves that
        to the task), honouring their ``frequency``."""
        for config in self.trainer.lr_scheduler_configs:
            if config.interval == interval and (index + 1) % max(config.frequency, 1) == 0:
                config.scheduler.step()

    def configure_optimizers(self) -> dict[str, Any]:
        config = super().configure_optimizers()
        # ClassificationTask sizes its per-step schedule with estimated_stepping_batches, which
        # caps the minibatches at max_steps; here max_steps counts optimiser steps (m per
        # minibatch), so resize the schedule to the minibatches that will actually run.
        trainer = self.trainer
        scheduler = config["lr_scheduler"]["scheduler"]
        estimated = trainer.estimated_stepping_batches
        if trainer.max_steps != -1 and math.isfinite(estimated) and estimated > 0:
            minibatches = min(estimated, math.ceil(trainer.max_steps / self.replays))
            if minibatches < estimated and isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
                scale = estimated / minibatches
                scheduler.lr_lambdas = [
                    (lambda step, f=f: f(step * scale)) for f in scheduler.lr_lambdas
                ]
        return config
