"""A callback that makes chosen training steps produce NaN gradients (a divergence on cue)."""

from __future__ import annotations

from lightning.pytorch import Callback


class PoisonGradients(Callback):
    """After the backward pass of the chosen batches, set every gradient to NaN.

    Args:
        epoch: Training epoch (0-based) of the poisoned batches.
        batches: Batch indices within that epoch.
    """

    def __init__(self, epoch: int, batches: list[int]) -> None:
        self.epoch = epoch
        self.batches = set(batches)
        self._batch = -1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._batch = batch_idx

    def on_after_backward(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch and self._batch in self.batches:
            for p in pl_module.parameters():
                if p.grad is not None:
                    p.grad.fill_(float("nan"))
