"""Closing the W&B run when the work it records is done."""

from __future__ import annotations

from collections.abc import Iterable

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger


class FinishLoggers(Callback):
    """Finishes the trainer's W&B runs after the last stage that logs to them, so their files
    (history, summary) are complete on disk and a later run in the same process starts a run
    of its own.

    ``robustart fit`` finishes after fitting; ``robustart compare`` fits and then tests with
    the same trainer, and finishes only after testing, so the test metrics and the robustness
    report land in the run that holds the training curves. A run is also finished when a
    stage fails.

    Args:
        after: The stages (``"fit"``, ``"validate"``, ``"test"``, ``"predict"``) whose end
            finishes the runs; a stage not listed leaves them open for the next one.

    Example:
        >>> trainer = Trainer(
        ...     logger=WandbLogger(offline=True), callbacks=[FinishLoggers(after=["test"])]
        ... )
        >>> trainer.fit(model)  # W&B run stays open  # doctest: +SKIP
        >>> trainer.test(model)  # logs into the same run, then finishes it  # doctest: +SKIP
    """

    def __init__(self, after: str | Iterable[str] = ("fit", "validate", "test", "predict")):
        self.after = {after} if isinstance(after, str) else set(after)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage in self.after:
            finish_wandb_runs(trainer, "success")

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        finish_wandb_runs(trainer, "failed")


def finish_wandb_runs(trainer: Trainer, status: str) -> None:
    """Finish the started W&B runs of ``trainer``'s loggers (rank zero holds them).

    Lightning calls the loggers' ``finalize`` only after the callbacks' ``teardown``; it is
    called here first, so a ``log_model`` run still receives its checkpoints before it closes.

    Args:
        trainer: The trainer.
        status: ``"success"``, or ``"failed"`` (the run is marked as failed).
    """
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:  # started only
            logger.finalize(status)
            logger.experiment.finish(exit_code=0 if status == "success" else 1)
