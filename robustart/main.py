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
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonargparse import Namespace, lazy_instance
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_warn

from robustart.callbacks.run_dir import SaveRunConfig
from robustart.data import RobustartDataModule
from robustart.errors import CheckpointError, RobustartError
from robustart.tasks import ClassificationTask

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


def extra_subcommand(name: str) -> Callable[[list[str]], Any] | None:
    """The entry function of the extra subcommand ``name``, or ``None`` if it is not one."""
    target = EXTRA_SUBCOMMANDS.get(name)
    if target is None:
        return None
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


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
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
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
        if self.subcommand == "fit" and self.config.fit.get("ckpt_path") == "last":
            self._resolve_last_checkpoint(self.config.fit)

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
        else:
            build_cli(None if args is None else argv)
    except Exception as exc:
        err = find_input_error(exc)
        if err is None:
            raise
        print(f"robustart: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    return 0


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
