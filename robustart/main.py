"""The ``robustart`` command line.

``robustart fit | validate | test | predict`` are LightningCLI subcommands: any task and any
datamodule from YAML (``class_path`` / ``init_args``), several ``--config`` files layered
(later files win), ``--print_config``, and the dataset's facts (number of classes, channels,
normalisation) linked into the model. The other subcommands are plain argparse programs
registered in :data:`EXTRA_SUBCOMMANDS`: ``robustart compare`` trains and tests several recipes
and prints one table (see :mod:`robustart.compare`), ``robustart transfer`` a transfer-attack
matrix (:mod:`robustart.evaluation.transfer`) and ``robustart shift`` evaluates models on the
distribution-shift, corruption, perturbation and system-noise sets kept on disk
(:mod:`robustart.evaluation.shift_cli`).

Errors caused by input (missing data, unknown names, bad checkpoints, bad values) are printed as
one ``robustart: error: ...`` line with exit status 2, without a traceback.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonargparse import Namespace, lazy_instance
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_warn

from robustart.callbacks.checkpoint import RunCheckpoint
from robustart.callbacks.divergence import DivergenceGuard
from robustart.callbacks.run_dir import SaveRunConfig
from robustart.data import RobustartDataModule
from robustart.errors import CheckpointError, ConfigError, RobustartError
from robustart.loggers import CSVLogger
from robustart.tasks import ClassificationTask
from robustart.utils import check_output_dir, one_line, read_yaml_file

#: Checkpoints live in ``<log dir>/checkpoints``; ``last.ckpt`` is what ``--ckpt_path last``
#: resumes from.
LAST_CHECKPOINT = "last.ckpt"

#: Subcommands besides LightningCLI's: name → ``"module:function"``, the function taking the
#: arguments after the subcommand. Imported only when used, so ``robustart fit`` does not pay
#: for them.
EXTRA_SUBCOMMANDS: dict[str, str] = {
    "compare": "robustart.compare:compare_main",
    "transfer": "robustart.evaluation.transfer:transfer_main",
    "shift": "robustart.evaluation.shift_cli:shift_main",
}


#: LightningCLI's subcommands.
LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def extra_subcommand(name: str) -> Callable[[list[str]], Any] | None:
    """The entry function of the extra subcommand ``name``, or ``None`` if it is not one."""
    target = EXTRA_SUBCOMMANDS.get(name)
    if target is None:
        return None
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


#: Lightning's CSV logger, replaced by robustart's drop-in resumable one (same arguments).
LIGHTNING_CSV_LOGGERS = (
    "lightning.pytorch.loggers.CSVLogger",
    "lightning.pytorch.loggers.csv_logs.CSVLogger",
    "pytorch_lightning.loggers.CSVLogger",
)
ROBUSTART_CSV_LOGGER = "robustart.loggers.CSVLogger"


def tidy_parser_message(message: str) -> str:
    """A jsonargparse error as one readable line: the key, what was wrong and the value,
    without the list of union subtypes it tried."""
    key = re.search(r'Parser key "([^"]+)"', message)
    option = re.search(
        r"Problem with given class_path '([^']+)':(.*?)(?:\n\s{4}- |\Z)", message, re.S
    )
    if key and option:
        return f"{key.group(1)} ({option.group(1)}): {one_line(option.group(2))}"
    expected = re.findall(r"Expected an? <class '([^']+)'>", message)
    given = re.search(r"Given value: ([^\n]+)", message)
    if key and expected and given:
        kinds = " or ".join(dict.fromkeys(expected))
        return f"{key.group(1)}: expected {kinds}, got {given.group(1).strip()!r}"
    return one_line(message)


class RobustartArgumentParser(LightningArgumentParser):
    """LightningCLI's parser, reporting errors as one ``robustart: error: ...`` line (exit
    status 2) instead of the full usage followed by the error."""

    def error(self, message: str, ex: Exception | None = None) -> Any:
        if not self.exit_on_error:
            return super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        raise ConfigError(f"{tidy_parser_message(message)} (see `{prog} --help`)") from None


class RobustartCLI(LightningCLI):
    """LightningCLI with robustart's links, checkpoint defaults and safe checkpoint handling."""

    #: Close W&B runs when the subcommand ends (``robustart compare`` tests first, then closes).
    finish_loggers = True

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        finally:
            if self.finish_loggers:
                finish_loggers(self.trainer)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for source, target in (
            ("data.num_classes", "model.init_args.num_classes"),
            ("data.in_channels", "model.init_args.in_channels"),
            ("data.mean", "model.init_args.mean"),
            ("data.std", "model.init_args.std"),
        ):
            parser.link_arguments(source, target, apply_on="instantiate")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(DivergenceGuard, "divergence")
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "checkpoint.filename": "epoch={epoch:03d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )

    # ------------------------------------------------------------------ checkpoints
    def _parse_ckpt_path(self) -> None:
        """Check a ``--ckpt_path`` file before anything runs.

        Lightning's default merges the checkpoint's hyperparameters into the config, which can
        silently swap the architecture; robustart instead verifies that the file is readable
        (``weights_only``) and was trained for the configured architecture and classes.
        """
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        ckpt_path = self.config[subcommand].get("ckpt_path")
        if ckpt_path and ckpt_path not in ("last", "best", "hpc"):
            self._check_checkpoint(ckpt_path)

    def _check_checkpoint(self, path: str) -> None:
        from robustart.models.weights import load_checkpoint_file
        from robustart.tasks.classification import check_checkpoint_matches

        if not Path(path).is_file():
            raise CheckpointError(f"--ckpt_path {path}: no such file")
        checkpoint = load_checkpoint_file(path)
        if "state_dict" not in checkpoint:
            raise CheckpointError(
                f"{path} is not a Lightning checkpoint (no 'state_dict'). To initialise a model "
                "from plain weights, use --model.init_args.weights instead of --ckpt_path."
            )
        model_args = self.config[self.config.subcommand].model.get("init_args", Namespace())
        arch = model_args.get("model")
        num_classes = checkpoint.get("robustart", {}).get("num_classes")
        if arch is not None:
            check_checkpoint_matches(checkpoint, arch, num_classes, source=path)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        _use_resumable_csv_logger(config.trainer)
        if self.subcommand == "fit" and config.get("ckpt_path") == "last":
            self._resolve_last_checkpoint(config)
        if self.subcommand in ("fit", "validate", "test", None):
            _check_output_folders(config)

    def before_fit(self) -> None:
        """Check what can only be checked on the built objects, before training starts."""
        check_monitors(self.trainer, self.model)

    def _resolve_last_checkpoint(self, config: Namespace) -> None:
        """Resume the latest run of this recipe: find its ``last.ckpt`` and continue logging
        into the same logger version."""
        logger = config.trainer.get("logger")
        run_root = _logger_run_root(logger, config.trainer.get("default_root_dir"))
        candidates = (
            sorted(
                run_root.glob(f"*/checkpoints/{LAST_CHECKPOINT}"), key=lambda p: p.stat().st_mtime
            )
            if run_root
            else []
        )
        if not candidates:
            rank_zero_warn(
                f"--ckpt_path last: no {LAST_CHECKPOINT} under {run_root}/*/checkpoints; "
                "starting from scratch."
            )
            config.ckpt_path = None
            return
        last = candidates[-1]
        self._check_checkpoint(str(last))
        config.ckpt_path = str(last)
        version = last.parent.parent.name
        if isinstance(logger, Namespace) and "init_args" in logger:
            logger.init_args.version = version
        print(f"robustart: resuming from {last}", file=sys.stderr)

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if "weights_only" in self._subcommand_method_arguments.get(subcommand, ()):
            kwargs["weights_only"] = True  # checkpoints are untrusted input
        return kwargs


def _loggers_of(trainer_config: Namespace) -> list[Any]:
    logger = trainer_config.get("logger")
    return logger if isinstance(logger, list) else [logger]


def _use_resumable_csv_logger(trainer_config: Namespace) -> None:
    """Swap Lightning's ``CSVLogger`` for robustart's (same arguments), whose ``metrics.csv``
    survives a killed and resumed run."""
    for logger in _loggers_of(trainer_config):
        if isinstance(logger, Namespace) and logger.get("class_path") in LIGHTNING_CSV_LOGGERS:
            logger.class_path = ROBUSTART_CSV_LOGGER


def _check_output_folders(config: Namespace) -> None:
    """Refuse, before anything is built or trained, output folders that cannot be written
    (below a regular file, not writable)."""
    trainer = config.trainer
    folders: list[tuple[str, Any]] = [("trainer.default_root_dir", trainer.get("default_root_dir"))]
    for logger in _loggers_of(trainer):
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


#: Metric-name prefixes of the robustness evaluation (see robustart.evaluation.report).
ROBUSTNESS_PREFIXES = ("robust/", "robust_ar/", "attack_success/", "corruption/")


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


def finish_loggers(trainer: Any) -> None:
    """Finish W&B runs so their files (summary, history) are complete on disk and the next run
    in the same process starts fresh."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in getattr(trainer, "loggers", []):
        if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
            logger.experiment.finish()


def _logger_run_root(logger: Any, default_root_dir: str | None) -> Path | None:
    """``<save_dir>/<name>``: the folder that holds the versions of a logger's runs."""
    if isinstance(logger, list):
        logger = logger[0] if logger else None
    if isinstance(logger, Namespace) and "init_args" in logger:
        args = logger.init_args
        save_dir = args.get("save_dir") or default_root_dir or os.getcwd()
        class_path = logger.get("class_path", "")
        name = args.get("project") if "Wandb" in class_path else args.get("name")
        name = (
            name
            if name is not None
            else (
                "lightning_logs"
                if "Wandb" not in class_path
                else os.environ.get("WANDB_PROJECT", "lightning_logs")
            )
        )
        return Path(save_dir) / str(name)
    if logger is None or logger is False:
        return None
    save_dir = getattr(logger, "save_dir", None) or default_root_dir or os.getcwd()
    return Path(save_dir) / str(getattr(logger, "name", "lightning_logs"))


def build_cli(args: list[str] | None = None, run: bool = True, finish: bool = True) -> RobustartCLI:
    """Construct (and by default run) the CLI on ``args`` (``None``: ``sys.argv``).

    Tests, tools and ``robustart compare`` call this with explicit arguments; ``finish=False``
    keeps W&B runs open after the subcommand (see :func:`finish_loggers`).
    """
    saved_argv = sys.argv
    if args is not None:  # LightningCLI warns when args and sys.argv are both given
        sys.argv = sys.argv[:1]
    RobustartCLI.finish_loggers = finish
    try:
        return RobustartCLI(
            ClassificationTask,
            RobustartDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=SaveRunConfig,
            parser_class=RobustartArgumentParser,  # one-line errors, not usage + error
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
            auto_configure_optimizers=False,
            trainer_defaults={
                "logger": lazy_instance(CSVLogger, save_dir="runs", name="default"),
            },
            parser_kwargs={
                "description": "robustart: train image classifiers and measure their robustness. "
                f"Other subcommands: {', '.join(EXTRA_SUBCOMMANDS)} "
                "(see `robustart <name> --help`).",
                "default_env": False,
            },
            args=args,
            run=run,
        )
    finally:
        sys.argv = saved_argv
        RobustartCLI.finish_loggers = True


def cli_main(args: list[str] | None = None) -> int:
    """Entry point of the ``robustart`` command. Returns the exit status (0 on success)."""
    argv = list(sys.argv[1:] if args is None else args)
    try:
        entry = extra_subcommand(argv[0]) if argv else None
        if entry is not None:
            entry(argv[1:])
        elif not argv or not (argv[0].startswith("-") or argv[0] in LIGHTNING_SUBCOMMANDS):
            given = f"unknown subcommand {argv[0]!r}; " if argv else ""
            names = ", ".join([*LIGHTNING_SUBCOMMANDS, *EXTRA_SUBCOMMANDS])
            raise ConfigError(f"{given}give one of {names} (see `robustart --help`)")
        else:
            check_config_arguments(argv)
            build_cli(None if args is None else argv)
    except Exception as exc:
        err = find_input_error(exc)
        if err is None:
            raise
        print(f"robustart: error: {error_message(err)}", file=sys.stderr)
        raise SystemExit(2) from None
    return 0


def error_message(err: BaseException) -> str:
    """The one-line message of an input error.

    Errors raised in a DataLoader worker process come back re-raised by torch with the
    worker's traceback in their message; only the original message is kept.
    """
    text = str(err)
    if "Original Traceback" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        name = type(err).__name__
        for line in reversed(lines):
            head, sep, rest = line.partition(": ")
            if sep and head.rsplit(".", 1)[-1] == name:
                text = rest
                break
    return one_line(text)


def check_config_arguments(argv: list[str]) -> None:
    """Check every ``--config`` file of a LightningCLI command line before parsing, so that a
    missing, empty or unparsable file is named in a one-line error."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--config="):
            value = arg.partition("=")[2]
        else:
            continue
        if Path(value).exists() or not value.lstrip().startswith(("{", "[")):
            read_yaml_file(value, "--config file")


def find_input_error(exc: BaseException) -> RobustartError | None:
    """The :class:`RobustartError` behind ``exc``, if any.

    jsonargparse wraps errors raised while instantiating classes from the config (a
    ``ValueError`` whose ``__cause__`` is ours), and Lightning may re-raise from hooks.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, RobustartError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


if __name__ == "__main__":
    cli_main()
