"""Stop (or skip) training steps whose loss or gradients are NaN or infinite.

A diverged model must never be evaluated as if it were a model: its logits are NaN, ``argmax``
picks an arbitrary class, and an attack cannot change a prediction that is already arbitrary,
so every attack "fails" and the model looks perfectly robust. :class:`DivergenceGuard` stops
that at the source, and the robustart command line attaches it to every ``fit``
(``--divergence.action``, ``--divergence.max_skipped``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.optim import Optimizer

from robustart.errors import ConfigError, DivergenceError, NonFiniteError


def gradient_norm(parameters: list[torch.Tensor]) -> torch.Tensor:
    """L2 norm over all gradients of ``parameters`` (a 0-d tensor on their device; NaN or inf
    when any gradient is)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0)  # fused per device and dtype


def nonfinite_tensors(state: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors in ``state`` that hold NaN or infinite values."""
    names = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not names:
        return []
    finite = torch.stack([torch.isfinite(state[k]).all().to("cpu") for k in names])
    return [k for k, ok in zip(names, finite.tolist()) if not ok]


class DivergenceGuard(Callback):
    """Refuse to train on, or to checkpoint, a model whose numbers stopped being finite.

    Before every optimiser step it checks the gradient norm (one host synchronisation per step),
    after every training step the loss. On a NaN or infinite value:

    * ``action: stop`` (default) raises :class:`~robustart.errors.DivergenceError` naming the
      step, epoch and batch, *before* the update is applied; no checkpoint is written after it,
      so ``last.ckpt`` and the best checkpoint stay the last finite ones.
    * ``action: skip`` drops that batch's update (the gradients are discarded), counts it and
      logs the count as ``train/nonfinite_skipped``; after ``max_skipped`` consecutive skipped
      batches, or if BatchNorm statistics themselves became non-finite, it stops as above.

    Independently of the action, a checkpoint whose weights or buffers are not finite is never
    written (:class:`~robustart.errors.NonFiniteError`).

    With fp16 mixed precision, infinite gradients are the loss scaler's normal overflow signal
    (the scaler skips those steps itself), so only the loss is checked there.

    Args:
        action: On a NaN or infinite loss or gradient norm: ``stop`` training with an error
            naming the step (the update is not applied, checkpoints stay finite), or ``skip``
            the batch's update and count it (``train/nonfinite_skipped``).
        max_skipped: With ``skip``, the number of consecutive skipped batches after which
            training stops anyway.
    """

    def __init__(self, action: Literal["stop", "skip"] = "stop", max_skipped: int = 10) -> None:
        super().__init__()
        if action not in ("stop", "skip"):
            raise ConfigError(f"divergence action must be 'stop' or 'skip', got {action!r}")
        if max_skipped < 1:
            raise ConfigError(f"max_skipped must be >= 1, got {max_skipped}")
        self.action = action
        self.max_skipped = max_skipped
        #: Batches skipped so far in this run (``skip``), and in a row.
        self.skipped = 0
        self._in_a_row = 0
        self._batch_idx = 0
        self._skipped_this_batch = False

    # ------------------------------------------------------------------ checks
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch_idx = batch_idx
        self._skipped_this_batch = False

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer
    ) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return  # fp16 loss scaling: inf gradients are expected and handled by the scaler
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        norm = gradient_norm(parameters)
        if bool(torch.isfinite(norm)):
            return
        self._nonfinite(trainer, pl_module, f"the gradient norm is {float(norm)}", parameters)

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() and not bool(torch.isfinite(loss).all()):
            if not self._skipped_this_batch:  # not already handled at the optimiser step
                value = float(loss.detach().float().mean())
                self._nonfinite(trainer, pl_module, f"the loss is {value}", [])
        elif not self._skipped_this_batch:
            self._in_a_row = 0
        if self.action == "skip":
            pl_module.log(
                "train/nonfinite_skipped", float(self.skipped), on_step=False, on_epoch=True
            )

    def _nonfinite(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        what: str,
        parameters: list[torch.Tensor],
    ) -> None:
        where = (
            f"step {trainer.global_step} (epoch {trainer.current_epoch}, batch {self._batch_idx})"
        )
        if self.action == "skip":
            for p in parameters:
                p.grad = None  # the optimiser leaves parameters without gradients untouched
            self.skipped += 1
            self._in_a_row += 1
            self._skipped_this_batch = True
            broken = nonfinite_tensors(dict(pl_module.named_buffers()))
            if broken:
                raise DivergenceError(
                    f"training diverged at {where}: {what}, and the model's buffers "
                    f"({', '.join(broken[:3])}) are no longer finite, so skipping the batch "
                    f"cannot help. {self._advice(trainer)}"
                )
            if self._in_a_row < self.max_skipped:
                return
            what = f"{what}, for {self._in_a_row} batches in a row"
        raise DivergenceError(f"training diverged at {where}: {what}. {self._advice(trainer)}")

    def _advice(self, trainer: Trainer) -> str:
        checkpoint = trainer.checkpoint_callback
        last = getattr(checkpoint, "last_model_path", "") or ""
        best = getattr(checkpoint, "best_model_path", "") or ""
        if checkpoint is None:
            kept = (
                "Checkpointing is off (trainer.enable_checkpointing false): no checkpoint was kept"
            )
        elif last or best:
            kept = f"The last finite checkpoint is {last or best}"
        else:
            kept = "No checkpoint was written yet"
        skip = "" if self.action == "skip" else ", or skip such batches with divergence.action=skip"
        return (
            f"Training stopped before the update was applied. {kept}. Lower the learning rate, "
            f"add warm-up or gradient clipping{skip}."
        )

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """During ``fit``, refuse to validate (and then checkpoint) weights that an update made
        non-finite while its loss and gradients were still finite (e.g. a huge step)."""
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        broken = nonfinite_tensors(dict(pl_module.state_dict()))
        if broken:
            raise DivergenceError(
                f"training diverged by step {trainer.global_step} (epoch "
                f"{trainer.current_epoch}): {len(broken)} weight tensors are NaN or infinite "
                f"(e.g. {', '.join(broken[:3])}). {self._advice(trainer)}"
            )

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        broken = nonfinite_tensors(checkpoint.get("state_dict", {}))
        if broken:
            raise NonFiniteError(
                f"refusing to write a checkpoint at step {trainer.global_step}: "
                f"{len(broken)} weight tensors are NaN or infinite (e.g. {', '.join(broken[:3])})."
                f" {self._advice(trainer)}"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = int(state_dict.get("skipped", 0))
