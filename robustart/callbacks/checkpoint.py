"""Checkpoints that a killed run resumes from exactly.

A run killed at any point (``SIGKILL``, a pre-empted node) and resumed with ``robustart fit
--ckpt_path last`` must end with bitwise the same weights, ``metrics.csv``,
``robustness.json`` and plots as the same run uninterrupted. Lightning's ``ModelCheckpoint``
alone does not give that: it writes ``last.ckpt`` in the middle of the epoch's end (before the
epoch's training metrics are logged), keeps no random-number state, writes files in place, and
the files written after the checkpoint by the killed process stay behind. :class:`RunCheckpoint`
is ``ModelCheckpoint`` (same arguments, same top-k and ``epoch=NNN.ckpt`` files) except that:

* ``last.ckpt`` is written at the boundary between two epochs (when the next epoch starts, and
  when training ends), after everything of the finished epoch has run and been logged, so the
  resumed run starts a clean epoch (Lightning's "restarted on epoch start");
* it records the Python, NumPy and torch (CPU and CUDA) random-number states of every process
  and restores them at the same point of the resumed run, so data order, augmentation and
  attack starts continue as if nothing happened;
* it flushes the loggers first and records how many ``metrics.csv`` rows were on disk; the
  resumed run keeps those rows and drops the ones the killed process wrote later (see
  :mod:`robustart.loggers`); robustness histories do the same (see ``RobustnessEvaluation``);
* checkpoint files are written atomically (a temporary file in the same folder, renamed), with
  the permissions of an ordinary write, and checkpoint files written by the killed process
  after ``last.ckpt`` are removed when the run resumes (the resumed run writes them again).

Resuming is exact at epoch boundaries; checkpoints saved inside an epoch
(``every_n_train_steps``) are kept as usual but are not resume points.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from robustart.errors import RobustartWarning
from robustart.utils import publish_mode

#: Prefix of the temporary files that atomic checkpoint writes use.
TEMP_PREFIX = ".tmp-"


def capture_rng_state() -> dict[str, Any]:
    """The Python, NumPy and torch random-number states of this process, as plain data and
    tensors (loadable with ``torch.load(..., weights_only=True)``)."""
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the random-number states captured by :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file beside the target, ``fsync``, then rename: a kill
    during the write leaves the previous checkpoint intact. Files get the user's umask."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{path.name}")
        try:
            with open(tmp, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            publish_mode(tmp, replaces=path)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` resumes a killed run exactly.

    Takes every argument of :class:`lightning.pytorch.callbacks.ModelCheckpoint` (``monitor``,
    ``mode``, ``save_top_k``, ``every_n_epochs``, ``filename``, ``save_last``, ...). Top-k
    checkpoints are saved as there; ``last.ckpt`` (with ``save_last``) is saved after every
    epoch, at the boundary with the next one, whatever ``every_n_epochs`` is. See the module
    docstring for what is recorded and restored.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._at_boundary = False
        self._start_epoch: int | None = None
        self._trainer: Trainer | None = None
        #: What the checkpoint being resumed recorded, until applied.
        self._resume: dict[str, Any] | None = None

    # ------------------------------------------------------------------ set-up and resume
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._trainer = trainer
        if stage == "fit" and type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the recorded state; the random-number states are set right away.

        This runs when the trainer restores the checkpoint, before anything of the resumed run
        draws random numbers: the sanity check runs with isolated random states, so the first
        draws are the resumed epoch's (its data order), as in the uninterrupted run.
        """
        super().load_state_dict(state_dict)
        resume = state_dict.get("robustart_resume")
        if not isinstance(resume, dict):
            return
        self._resume = resume
        states = resume.get("rng") or []
        world_size = self._trainer.world_size if self._trainer is not None else 1
        rank = self._trainer.global_rank if self._trainer is not None else 0
        if len(states) == world_size:
            restore_rng_state(states[rank])
        else:
            rank_zero_warn(
                f"the checkpoint holds the random-number states of {len(states)} processes, this "
                f"run has {world_size}: data order and random augmentation will not continue "
                "exactly as before the interruption",
                category=RobustartWarning,
            )

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start_epoch = trainer.current_epoch
        resume, self._resume = self._resume, None
        if resume is None or not trainer.is_global_zero:
            return
        same_run = (
            self.dirpath is not None
            and resume.get("dirpath") is not None
            and Path(resume["dirpath"]).resolve() == Path(self.dirpath).resolve()
        )
        if same_run:
            self._remove_files_written_after(resume.get("files", []), trainer.ckpt_path)
        for index, logger in enumerate(trainer.loggers):
            recorded = resume.get("loggers", {}).get(str(index))
            if (
                recorded is not None
                and hasattr(logger, "resume_at")
                and recorded.get("log_dir") == logger.log_dir
            ):
                logger.resume_at(int(recorded["position"]))

    def _remove_files_written_after(self, kept: list[str], resumed_from: str | None) -> None:
        """Delete checkpoint files (and torn temporary files) that the killed process wrote
        after the checkpoint being resumed; the resumed run writes them again."""
        assert self.dirpath is not None
        folder = Path(self.dirpath)
        if not folder.is_dir():
            return
        resumed = Path(resumed_from).resolve() if resumed_from else None
        for path in folder.iterdir():
            stale_temp = path.name.startswith(TEMP_PREFIX)
            later = path.suffix == self.FILE_EXTENSION and path.name not in kept
            if (stale_temp or later) and path.resolve() != resumed and path.is_file():
                path.unlink()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._start_epoch is not None and trainer.current_epoch > self._start_epoch:
            self._save_at_boundary(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._start_epoch is not None and trainer.current_epoch > self._start_epoch:
            self._save_at_boundary(trainer)

    # ------------------------------------------------------------------ saving
    def _save_last_checkpoint(self, trainer: Trainer, monitor_candidates: dict[str, Any]) -> None:
        if self._at_boundary:  # elsewhere ModelCheckpoint would write last.ckpt mid-epoch-end
            super()._save_last_checkpoint(trainer, monitor_candidates)

    def _save_at_boundary(self, trainer: Trainer) -> None:
        if not self.save_last or trainer.fast_dev_run or trainer.sanity_checking:
            return
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.save()  # rows logged so far are on disk before the checkpoint is
        self._at_boundary = True
        try:
            super()._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        finally:
            self._at_boundary = False

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._at_boundary:
            _loops_at_epoch_start(checkpoint.get("loops", {}))
            # "epoch" names the last finished epoch, as in the epoch=NNN.ckpt files saved at its
            # end (Lightning restores from the loop state, not from this field)
            checkpoint["epoch"] = max(trainer.current_epoch - 1, 0)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        trainer = self._trainer
        rng = capture_rng_state()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, rng)
            states = gathered
        else:
            states = [rng]
        loggers = {}
        files: list[str] = []
        if trainer is not None and trainer.is_global_zero:
            for index, logger in enumerate(trainer.loggers):
                if hasattr(logger, "resume_at"):
                    loggers[str(index)] = {"log_dir": logger.log_dir, "position": logger.position}
            if self.dirpath is not None and Path(self.dirpath).is_dir():
                files = sorted(p.name for p in Path(self.dirpath).iterdir())
        state["robustart_resume"] = {
            "rng": states,
            "loggers": loggers,
            "files": files,
            "dirpath": None if self.dirpath is None else str(self.dirpath),
        }
        return state


def _loops_at_epoch_start(loops: dict[str, Any]) -> None:
    """Make a checkpoint's loop state say "the last epoch is finished, the next not begun".

    At the boundary the fit loop has already marked the next epoch as ready; a checkpoint with
    that mark makes Lightning restart *inside* an epoch on resume (and find its batches done).
    Without it the state is exactly the one between two epochs, from which Lightning starts
    the next epoch afresh, as it does after a normal epoch.
    """
    fit = loops.get("fit_loop")
    progress = fit.get("epoch_progress") if isinstance(fit, dict) else None
    if not isinstance(progress, dict):
        return
    for part in ("total", "current"):
        counters = progress.get(part)
        if isinstance(counters, dict) and "completed" in counters:
            for key in ("ready", "started", "processed"):
                counters[key] = counters["completed"]
