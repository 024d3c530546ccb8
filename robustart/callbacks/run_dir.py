"""Where a run's files go, and saving the full config there (and to W&B)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger


def run_directory(trainer: Trainer) -> Path:
    """The folder of this run: the logger's versioned directory, which also holds its
    ``checkpoints/``.

    For CSV and TensorBoard loggers this is ``trainer.log_dir``; for others (W&B) it is
    ``<save_dir>/<name>/<version>`` as ModelCheckpoint uses, because their ``log_dir`` is the
    shared ``save_dir``. A collective call under DDP: call it on every rank.
    """
    log_dir = trainer.log_dir  # broadcasts from rank zero
    logger = trainer.loggers[0] if trainer.loggers else None
    if logger is None or isinstance(logger, (CSVLogger, TensorBoardLogger)):
        path = log_dir or trainer.default_root_dir
    else:
        version = logger.version
        version = version if isinstance(version, str) else f"version_{version}"
        path = os.path.join(logger.save_dir or trainer.default_root_dir, str(logger.name), version)
    return Path(trainer.strategy.broadcast(path))


class SaveRunConfig(SaveConfigCallback):
    """Writes the full resolved config to ``<run directory>/config.yaml`` and, with a
    ``WandbLogger``, into the W&B run's config (key ``lightning_config``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["save_to_log_dir"] = False
        super().__init__(*args, **kwargs)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        self._run_dir = run_directory(trainer)  # collective: before the rank-zero part
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._run_dir.mkdir(parents=True, exist_ok=True)
        self.parser.save(
            self.config,
            str(self._run_dir / self.config_filename),
            skip_none=False,
            overwrite=True,
            multifile=self.multifile,
        )
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                text = self.parser.dump(self.config, skip_none=False)
                logger.experiment.config.update({"lightning_config": text}, allow_val_change=True)
