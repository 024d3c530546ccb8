"""Loggers whose files survive a killed run: ``metrics.csv`` that a resumed run continues.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` when it opens a version folder that already
holds one, and buffers rows in memory between flushes, so a run killed and resumed with
``--ckpt_path last`` loses every row written before the kill. :class:`CSVLogger` here is a
drop-in replacement (same arguments, same file layout and columns) that

* keeps an existing ``metrics.csv`` until the run decides what to do with it: a resumed run
  keeps exactly the rows that were on disk when its checkpoint was saved
  (:meth:`CSVLogger.resume_at`, called by :class:`robustart.callbacks.RunCheckpoint`), and a
  fresh run in the same folder starts a new file, as Lightning's does;
* appends rows while the columns stay the same and rewrites the file atomically (readers see
  the old or the new file, never half) when a new column appears;
* writes files with the permissions of an ordinary write (the user's umask applies).

The robustart command line uses it wherever a config names Lightning's ``CSVLogger``.

:class:`WandbLogger` is Lightning's W&B logger that logs the model's hyperparameters nested,
with numeric ε, and stays out of the way of the full run config the command line logs; the
command line uses it wherever a config names Lightning's ``WandbLogger`` and fills in its
``group`` (the run's name, or ``WANDB_RUN_GROUP``) and ``job_type`` (the subcommand, or
``WANDB_JOB_TYPE``) when the config leaves them unset.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

from lightning.fabric.utilities.logger import (
    _convert_json_serializable,
    _convert_params,
    _sanitize_callable_params,
)
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from torch import Tensor

from robustart.errors import RobustartWarning
from robustart.utils import atomic_write_text


class ResumableExperimentWriter(ExperimentWriter):
    """Lightning's CSV experiment writer, made resumable (see the module docstring).

    Args:
        log_dir: The run's version folder; ``metrics.csv`` and ``hparams.yaml`` go there.
    """

    def __init__(self, log_dir: str) -> None:
        # Lightning's __init__ deletes an existing metrics.csv; set its attributes instead.
        self.hparams: dict[str, Any] = {}
        self.metrics: list[dict[str, Any]] = []  # rows logged since the last save
        self.metrics_keys: list[str] = []
        self.log_dir = log_dir
        self.metrics_file_path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        os.makedirs(log_dir, exist_ok=True)
        #: Rows on disk, in order (values as logged, or as strings when read back).
        self.rows: list[dict[str, Any]] = []
        #: Rows of an earlier run found on disk, until :meth:`resume_at` or the first save.
        self._previous: list[dict[str, str]] | None = self._read_existing()
        self._file_keys: list[str] | None = None  # the header of the file on disk

    def _read_existing(self) -> list[dict[str, str]] | None:
        if not os.path.isfile(self.metrics_file_path):
            return None
        with open(self.metrics_file_path, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            rows = []
            for row in reader:
                if None in row or any(v is None for v in row.values()):
                    break  # a row torn by a kill: it and what follows are not trusted
                rows.append(dict(row))
        return rows

    @property
    def position(self) -> int:
        """Rows on disk (after :meth:`save`): what a checkpoint records to resume at."""
        return len(self.rows)

    def resume_at(self, position: int) -> None:
        """Continue a killed run: keep the first ``position`` rows of the existing file (those
        on disk when the checkpoint being resumed was saved) and drop the rest, which the
        resumed run logs again."""
        previous = self._previous if self._previous is not None else self.rows
        if len(previous) < position:
            rank_zero_warn(
                f"{self.metrics_file_path} holds {len(previous)} rows but the checkpoint was "
                f"saved after {position}: rows written before the kill are missing.",
                category=RobustartWarning,
            )
        self.rows = list(previous[:position])
        self._previous = None
        self._rewrite()

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        """Record one row (written at the next :meth:`save`)."""
        if step is None:
            step = len(self.rows) + len(self.metrics)
        row = {k: v.item() if isinstance(v, Tensor) else v for k, v in metrics_dict.items()}
        row["step"] = step
        self.metrics.append(row)

    def save(self) -> None:
        """Write the rows logged since the last save."""
        if not self.metrics:
            return
        if self._previous is not None:  # a fresh run in a used folder: start a new file
            rank_zero_warn(
                f"{self.metrics_file_path} of an earlier run is replaced (resume with "
                "--ckpt_path last to continue it).",
                category=RobustartWarning,
            )
            self._previous = None
            self._file_keys = None
        new_rows, self.metrics = self.metrics, []
        self.rows.extend(new_rows)
        keys = self._keys()
        if self._file_keys == keys and os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, "a", newline="", encoding="utf-8") as file:
                csv.DictWriter(file, fieldnames=keys).writerows(new_rows)
                file.flush()
                os.fsync(file.fileno())
        else:
            self._rewrite()

    def _keys(self) -> list[str]:
        keys: set[str] = set()
        for row in self.rows:
            keys.update(row)
        self.metrics_keys = sorted(keys)
        return self.metrics_keys

    def _rewrite(self) -> None:
        keys = self._keys()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.metrics_file_path, buffer.getvalue())
        self._file_keys = keys


class CSVLogger(LightningCSVLogger):
    """Lightning's ``CSVLogger`` with a ``metrics.csv`` that survives a killed, resumed run.

    Same arguments as :class:`lightning.pytorch.loggers.CSVLogger` (``save_dir``, ``name``,
    ``version``, ``prefix``, ``flush_logs_every_n_steps``); files go to
    ``<save_dir>/<name>/version_<n>/``. See the module docstring.

    Example:
        >>> logger = CSVLogger("runs", name="digits_standard")  # writes nothing until it logs
        >>> logger.name
        'digits_standard'
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ResumableExperimentWriter:
        """The writer of ``metrics.csv`` and ``hparams.yaml``."""
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ResumableExperimentWriter(log_dir=self.log_dir)
        return self._experiment

    @property
    def position(self) -> int:
        """Rows of ``metrics.csv`` on disk (flush first with :meth:`save`)."""
        return self.experiment.position

    def resume_at(self, position: int) -> None:
        """Keep the first ``position`` rows of an existing ``metrics.csv`` (see
        :meth:`ResumableExperimentWriter.resume_at`)."""
        self.experiment.resume_at(position)


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` (same arguments) whose hyperparameters land in the W&B
    config nested under ``model``, with fractions such as ``"16/255"`` as numbers, so that
    runs can be filtered and grouped by ε. When the robustart command line has logged the full
    nested config (``model``, ``data``, ``trainer``, ``robustness``), it is left as is.

    Example:
        >>> logger = WandbLogger(project="robustart", group="pgd_at", offline=True)
    """

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Any) -> None:
        from robustart.wandb_logging import numeric_config

        if "model" in self.experiment.config:
            return
        params = _convert_json_serializable(_sanitize_callable_params(_convert_params(params)))
        self.experiment.config.update({"model": numeric_config(params)}, allow_val_change=True)
