"""Where a run's files go, finding the run that ``--ckpt_path last`` resumes, and saving the
full config there (and to W&B)."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_warn

from robustart.errors import RobustartWarning

#: The checkpoint ``--ckpt_path last`` resumes from, in ``<run directory>/checkpoints``.
LAST_CHECKPOINT = "last.ckpt"


def logger_directory(logger: Logger, default_root_dir: str | os.PathLike | None) -> Path:
    """``<save_dir>/<name>``: the folder holding one folder per run (version) of ``logger``."""
    save_dir = logger.save_dir or default_root_dir or os.getcwd()
    return Path(save_dir) / str(logger.name or "")


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
        path = str(logger_directory(logger, trainer.default_root_dir) / version)
    return Path(trainer.strategy.broadcast(path))


def _configured_logger(trainer_config: Namespace) -> Logger | None:
    """The first logger of a parsed ``trainer`` config, built but not started (loggers create
    their files and runs lazily)."""
    logger = trainer_config.get("logger")
    if isinstance(logger, list):
        logger = logger[0] if logger else None
    if isinstance(logger, Namespace) and "class_path" in logger:
        module, _, name = logger.class_path.rpartition(".")
        init_args = logger.get("init_args") or Namespace()
        return getattr(importlib.import_module(module), name)(**init_args.as_dict())
    if logger is True:  # Lightning's default logger
        return CSVLogger(save_dir=trainer_config.get("default_root_dir") or os.getcwd())
    return logger if isinstance(logger, Logger) else None


def _logger_run_name(trainer_config: Any) -> str | None:
    """The run name (``init_args.name``) of the first logger of a ``trainer`` config (a
    parsed Namespace or the mapping read from a run's ``config.yaml``)."""
    logger = trainer_config.get("logger") if hasattr(trainer_config, "get") else None
    if isinstance(logger, list):
        logger = logger[0] if logger else None
    init_args = logger.get("init_args") if hasattr(logger, "get") else None
    name = init_args.get("name") if hasattr(init_args, "get") else None
    return None if name is None else str(name)


def _runs_of_this_name(found: list[Path], trainer_config: Namespace, root: Path) -> list[Path]:
    """The checkpoints among ``found`` of runs with this config's run name.

    W&B keeps every run of a project in one folder (``<save_dir>/<project>/<run id>``), so the
    newest ``last.ckpt`` there may be another run's: resuming it would continue that run's
    training under this command's name and seed. Each run's ``config.yaml`` names its run.

    Raises:
        ConfigError: the config names no run and the folder holds several.
    """
    from robustart.errors import ConfigError, RobustartError
    from robustart.utils import read_yaml_file

    def name_of(checkpoint: Path) -> str | None:
        config = checkpoint.parent.parent / "config.yaml"
        try:
            data = read_yaml_file(config, "run config") if config.is_file() else None
        except RobustartError:  # an unreadable config names no run
            data = None
        return _logger_run_name(data.get("trainer") or {}) if isinstance(data, dict) else None

    wanted = _logger_run_name(trainer_config)
    if wanted is not None:
        return [path for path in found if name_of(path) == wanted]
    if len(found) > 1:
        runs = ", ".join(f"{p.parent.parent.name} ({name_of(p) or 'unnamed'})" for p in found[-5:])
        raise ConfigError(
            f"--ckpt_path last is ambiguous: {len(found)} runs under {root} have a "
            f"{LAST_CHECKPOINT} (newest last: {runs}), and this run has no name to choose by. "
            "Pass --ckpt_path with the run's checkpoint file, or name runs "
            "(--trainer.logger.init_args.name)"
        )
    return found


def resume_last_checkpoint(trainer_config: Namespace) -> Path | None:
    """Find what ``--ckpt_path last`` resumes: the newest ``last.ckpt`` among the runs of this
    recipe's logger (``<save_dir>/<name>/*/checkpoints``), and make the configured logger
    continue logging into that run's version.

    Args:
        trainer_config: The parsed ``trainer`` section; its logger's ``version`` is set.

    With a logger that keeps all runs of a project in one folder (W&B), only the runs with
    this config's run name (``init_args.name``) count.

    Returns:
        The checkpoint, or ``None`` (with a warning) when there is none: training starts from
        scratch.
    """
    logger = _configured_logger(trainer_config)
    root = (
        None if logger is None else logger_directory(logger, trainer_config.get("default_root_dir"))
    )
    found = sorted(
        root.glob(f"*/checkpoints/{LAST_CHECKPOINT}") if root else [],
        key=lambda path: path.stat().st_mtime,
    )
    if found and not isinstance(logger, (CSVLogger, TensorBoardLogger)):
        found = _runs_of_this_name(found, trainer_config, root)
    if not found:
        rank_zero_warn(
            f"--ckpt_path last: no {LAST_CHECKPOINT} under {root}/*/checkpoints; "
            "starting from scratch.",
            category=RobustartWarning,
        )
        return None
    last = found[-1]
    configured = trainer_config.get("logger")
    configured = configured[0] if isinstance(configured, list) else configured
    if isinstance(configured, Namespace) and "init_args" in configured:
        configured.init_args.version = last.parent.parent.name
    print(f"robustart: resuming from {last}", file=sys.stderr)
    return last


class SaveRunConfig(SaveConfigCallback):
    """Writes the full resolved config to ``<run directory>/config.yaml`` and, with a
    ``WandbLogger``, into the W&B run's config: nested and filterable (``model``, ``data``,
    ``trainer``, ``robustness``, ``checkpoint``, ``seed_everything``; ε as numbers, see
    :func:`robustart.wandb_logging.run_config`), plus the exact YAML as ``lightning_config``."""

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
                from robustart.wandb_logging import run_config

                text = self.parser.dump(self.config, skip_none=False)
                values = {**run_config(self.config), "lightning_config": text}
                logger.experiment.config.update(values, allow_val_change=True)
