"""A callback that kills its own process with SIGKILL at a chosen point of training.

Used by the resume tests: a real SIGKILL (no exception, no clean-up, no flush), the way a
pre-empted node or the out-of-memory killer ends a run. The process kills itself so that the
point is exact; the kill itself is the operating system's.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from lightning.pytorch import Callback


class KillSwitch(Callback):
    """SIGKILL this process at ``hook`` of ``epoch`` (and ``batch`` for batch hooks).

    Args:
        hook: ``on_train_batch_start``, ``on_train_batch_end``, ``on_validation_end``,
            ``on_train_epoch_start`` or ``on_save_checkpoint``.
        epoch: Training epoch (0-based) at which to kill.
        batch: Batch index for the batch hooks.
    """

    def __init__(self, hook: str, epoch: int, batch: int = 0) -> None:
        self.hook = hook
        self.epoch = epoch
        self.batch = batch

    def _maybe_kill(self, hook: str, trainer: Any, batch_idx: int | None = None) -> None:
        if trainer.sanity_checking or hook != self.hook or trainer.current_epoch != self.epoch:
            return
        if batch_idx is not None and batch_idx != self.batch:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._maybe_kill("on_train_batch_start", trainer, batch_idx)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._maybe_kill("on_train_batch_end", trainer, batch_idx)

    def on_validation_end(self, trainer, pl_module):
        self._maybe_kill("on_validation_end", trainer)

    def on_train_epoch_start(self, trainer, pl_module):
        self._maybe_kill("on_train_epoch_start", trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self._maybe_kill("on_save_checkpoint", trainer)
