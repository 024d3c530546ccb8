"""Checks of a LightningCLI configuration that Lightning does not make: output folders that
cannot be written, and checkpoint or early-stopping monitors that no evaluation logs (or logs
only on some epochs)."""

from __future__ import annotations

from typing import Any

from jsonargparse import Namespace

from robustart.errors import ConfigError
from robustart.utils import check_output_dir


def loggers_of(trainer_config: Namespace) -> list[Any]:
    """The configured loggers of a parsed ``trainer`` section, as a list."""
    logger = trainer_config.get("logger")
    return logger if isinstance(logger, list) else [logger]


def check_output_folders(config: Namespace) -> None:
    """Refuse, before anything is built or trained, output folders that cannot be written
    (below a regular file, not writable): the trainer's, the loggers', the checkpoints' and
    the callbacks' ``save_dir``.

    Raises:
        ConfigError: naming the option and the folder.
    """
    trainer = config.trainer
    folders: list[tuple[str, Any]] = [("trainer.default_root_dir", trainer.get("default_root_dir"))]
    for logger in loggers_of(trainer):
        if isinstance(logger, Namespace) and "init_args" in logger:
            folders.append(("the logger's save_dir", logger.init_args.get("save_dir")))
    checkpoint = config.get("checkpoint")
    if isinstance(checkpoint, Namespace):
        folders.append(("checkpoint.dirpath", checkpoint.get("dirpath")))
    for callback in trainer.get("callbacks") or []:
        if isinstance(callback, Namespace) and "init_args" in callback:
            name = str(callback.get("class_path", "callback")).rsplit(".", 1)[-1]
            folders.append((f"{name} save_dir", callback.init_args.get("save_dir")))
    for what, folder in folders:
        if folder:
            check_output_dir(folder, what)


#: Metric-name prefixes of the robustness evaluation (see robustart.evaluation.report, and
#: robustart.evaluation.certification for its ``certification`` option).
ROBUSTNESS_PREFIXES = ("robust/", "robust_ar/", "attack_success/", "corruption/", "certified/")


def check_monitors(trainer: Any, model: Any) -> None:
    """Refuse a checkpoint or early-stopping ``monitor`` that no evaluation will log, or that
    is only computed on some epochs while the callback acts on others (it would rank a
    checkpoint by a stale value from an earlier epoch).

    Raises:
        ConfigError: naming the monitor, the keys that exist (close matches) and the fix.
    """
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from robustart.callbacks import RobustnessEvaluation
    from robustart.registry import close_matches

    names_of = [  # each evaluation's period and metric names
        (cb.every_n_epochs, cb.metric_names())
        for cb in trainer.callbacks
        if isinstance(cb, RobustnessEvaluation)
    ]
    robustness_keys: set[str] = set().union(*(names for _, names in names_of))
    task_keys = {"val/loss", "val/acc"}
    num_classes = getattr(getattr(model, "hparams", {}), "get", lambda *_: None)("num_classes")
    if num_classes is not None and num_classes > 5:
        task_keys.add("val/acc_top5")
    if getattr(model, "ema", None) is not None:
        task_keys |= {k.replace("val/", "val_ema/") for k in task_keys if k != "val/loss"}
    for callback in trainer.callbacks:
        if not isinstance(callback, (ModelCheckpoint, EarlyStopping)):
            continue
        monitor = callback.monitor
        if not monitor:
            continue
        what = f"{type(callback).__name__}(monitor={monitor!r})"
        if monitor.startswith(ROBUSTNESS_PREFIXES):
            if monitor not in robustness_keys:
                hint = close_matches(monitor, sorted(robustness_keys))
                raise ConfigError(
                    f"{what}: no RobustnessEvaluation logs this metric"
                    + (f"; did you mean {', '.join(hint)}?" if hint else "")
                    + (
                        ""
                        if names_of
                        else " (add a robustart.callbacks.RobustnessEvaluation callback)"
                    )
                )
            every = min(n for n, names in names_of if monitor in names)
            if isinstance(callback, ModelCheckpoint):
                steps = callback._every_n_train_steps  # no public accessor in Lightning
                epochs = callback.every_n_epochs or 0
                stale = bool(steps) or (every > 1 and (epochs < 1 or epochs % every))
            else:
                stale = every > 1
            if stale:
                raise ConfigError(
                    f"{what} acts every epoch it runs, but the robustness evaluation computes "
                    f"{monitor!r} only every {every} epochs: it would rank checkpoints by a "
                    f"stale value of an earlier epoch. Set the callback's every_n_epochs to a "
                    f"multiple of {every} (checkpoint.every_n_epochs: {every}), or evaluate "
                    "every epoch"
                )
        elif monitor.startswith(("val/", "val_ema/")) and monitor not in task_keys:
            hint = close_matches(monitor, sorted(task_keys | robustness_keys))
            raise ConfigError(
                f"{what}: the task does not log this metric"
                + (f"; did you mean {', '.join(hint)}?" if hint else "")
                + f" It logs {', '.join(sorted(task_keys))}."
            )
