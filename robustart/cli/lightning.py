"""``robustart fit | validate | test | predict``: LightningCLI with robustart's defaults.

Any task and any datamodule from YAML (``class_path`` / ``init_args``), several ``--config``
files layered (later files win), ``--print_config``, and the dataset's facts (number of
classes, channels, normalisation) linked into the model. On top of LightningCLI:

* ``--ckpt_path FILE`` is checked before anything runs (a file, readable with
  ``weights_only``, a Lightning checkpoint of the configured architecture), and ``fit
  --ckpt_path last`` resumes the newest run of the recipe, logging into the same version;
* ``validate`` and ``test`` refuse to evaluate untrained weights: they need ``--ckpt_path FILE``
  or a model initialised from trained weights (``--model.init_args.weights``);
* runs over nothing (zero batches of the stage, ``max_epochs`` or ``max_steps`` 0) are refused,
  and so is a W&B logger that has no account to log to (log in, or ``WANDB_MODE=offline``);
* Lightning's ``CSVLogger`` is swapped for robustart's resumable one, and its ``WandbLogger``
  for robustart's, with the run's ``group`` (recipe) and ``job_type`` (subcommand) filled in;
* output folders and checkpoint/early-stopping monitors are checked before training;
* ``--trainer.enable_checkpointing false`` trains without writing checkpoints: robustart's
  ``checkpoint`` callback (and its ``checkpoint.*`` options) is left out, and ``--ckpt_path
  last``, which resumes a run from its ``last.ckpt`` and keeps that file up to date, is refused;
* W&B runs are finished when the subcommand ends (:class:`~robustart.callbacks.FinishLoggers`);
* ``fit``, ``validate`` and ``test`` end with ``robustart: results in <run directory>``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, Union, get_args, get_origin

from jsonargparse import Namespace, lazy_instance
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from robustart.callbacks.checkpoint import RunCheckpoint
from robustart.callbacks.divergence import DivergenceGuard
from robustart.callbacks.loggers import FinishLoggers
from robustart.callbacks.run_dir import SaveRunConfig, resume_last_checkpoint, run_directory
from robustart.cli.checks import (
    check_accelerator,
    check_evaluation_runs,
    check_fit_has_work_left,
    check_fit_settings,
    check_linked_settings,
    check_monitors,
    check_output_folders,
    check_resume_settings,
    check_run_length,
    check_trained_weights,
    check_wandb_can_log,
    check_warmups_fit,
    linked_settings_given,
    loggers_of,
)
from robustart.cli.errors import (
    check_config_arguments,
    find_input_error,
    instantiation_message,
    tidy_parser_message,
)
from robustart.data import RobustartDataModule
from robustart.errors import ConfigError
from robustart.loggers import CSVLogger
from robustart.models.weights import check_checkpoint_file
from robustart.tasks import ClassificationTask
from robustart.utils import announce_results, check_seed

#: LightningCLI's subcommands; each is also a Lightning stage name.
LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")

#: ``--ckpt_path`` values Lightning resolves itself (``last`` is resolved by robustart).
NAMED_CHECKPOINTS = ("last", "best", "hpc")

#: Lightning's CSV logger, replaced by robustart's drop-in resumable one (same arguments).
LIGHTNING_CSV_LOGGERS = (
    "lightning.pytorch.loggers.CSVLogger",
    "lightning.pytorch.loggers.csv_logs.CSVLogger",
    "pytorch_lightning.loggers.CSVLogger",
)
ROBUSTART_CSV_LOGGER = "robustart.loggers.CSVLogger"
LIGHTNING_WANDB_LOGGERS = (
    "lightning.pytorch.loggers.WandbLogger",
    "lightning.pytorch.loggers.wandb.WandbLogger",
    "pytorch_lightning.loggers.WandbLogger",
    "robustart.loggers.WandbLogger",
)
ROBUSTART_WANDB_LOGGER = "robustart.loggers.WandbLogger"


class RobustartArgumentParser(LightningArgumentParser):
    """LightningCLI's parser, reporting errors as one ``robustart: error: ...`` line (exit
    status 2) instead of the full usage followed by the error."""

    def error(self, message: str, ex: Exception | None = None) -> Any:
        if not self.exit_on_error:
            return super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        raise ConfigError(f"{tidy_parser_message(message)} (see `{prog} --help`)") from None


def parse_whole_numbers_as_batch_counts(parser: LightningArgumentParser) -> None:
    """Make ``--trainer.limit_val_batches 1`` one batch, as Lightning documents, not all.

    Lightning types the ``limit_*_batches`` options ``Union[float, int, None]``; jsonargparse
    tries the float first, so ``1`` became ``1.0``, which Lightning reads as the fraction 100 %
    (``2`` became ``2.0``, read as 2 batches, so only 1 was silently wrong). Each trainer option
    typed like that is re-typed with the integer first: ``1`` is one batch, ``1.0`` all of them.
    """
    for action in parser._actions:  # jsonargparse keeps the type hint of each option here
        hint = getattr(action, "_typehint", None)
        if not action.dest.startswith("trainer.") or get_origin(hint) is not Union:
            continue
        members = get_args(hint)
        if float in members and int in members and members.index(float) < members.index(int):
            rest = tuple(m for m in members if m not in (int, float))
            action._typehint = Union[(int, float, *rest)]


class RobustartCLI(LightningCLI):
    """LightningCLI with robustart's links, checkpoint defaults and safe checkpoint handling.

    Args:
        *args: LightningCLI's arguments.
        announce: End ``fit``, ``validate`` and ``test`` with the ``robustart: results in
            <run directory>`` line (on rank zero).
        **kwargs: LightningCLI's keyword arguments.
    """

    def __init__(self, *args: Any, announce: bool = True, **kwargs: Any) -> None:
        self.announce = announce
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parse_whole_numbers_as_batch_counts(parser)
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

    def _parse_ckpt_path(self) -> None:
        """Check a ``--ckpt_path`` file before anything runs, instead of Lightning's default of
        merging the checkpoint's hyperparameters into the config (which can silently swap the
        architecture)."""
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        ckpt_path = config.get("ckpt_path")
        if ckpt_path and ckpt_path not in NAMED_CHECKPOINTS:
            check_checkpoint_file(ckpt_path, _configured_architecture(config))

    def _set_seed(self) -> None:
        """Check ``seed_everything`` before Lightning seeds with it (its own refusal is a
        ``ValueError`` traceback)."""
        seed = self._get(self.config, "seed_everything")
        if seed not in (True, False, None):
            check_seed(seed, "seed_everything")
        super()._set_seed()

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        use_resumable_csv_logger(config.trainer)
        use_grouped_wandb_logger(config.trainer, self.subcommand or "run")
        check_accelerator(config.trainer)
        if self.subcommand:
            check_run_length(config.trainer, self.subcommand)
            if self.subcommand == "fit":
                check_fit_settings(config.trainer)
            check_trained_weights(config, self.subcommand)
        check_wandb_can_log(config.trainer, LIGHTNING_WANDB_LOGGERS)
        if self.subcommand == "fit" and config.get("ckpt_path") == "last":
            if config.trainer.get("enable_checkpointing") is False:
                raise ConfigError(
                    "--ckpt_path last resumes a run from its last.ckpt and keeps that file up to "
                    "date, but trainer.enable_checkpointing is false: drop "
                    "--trainer.enable_checkpointing false to resume, or give --ckpt_path a "
                    "checkpoint file to start a new run from"
                )
            last = resume_last_checkpoint(config.trainer)
            if last is not None:
                check_checkpoint_file(last, _configured_architecture(config))
            config.ckpt_path = None if last is None else str(last)
        if self.subcommand == "fit":
            check_warmups_fit(config)
        if self.subcommand == "fit" and config.get("ckpt_path") not in (None, *NAMED_CHECKPOINTS):
            check_fit_has_work_left(config.ckpt_path, config.trainer)
        if self.subcommand in ("fit", "validate", "test", None):
            check_output_folders(config)
        self._linked_given = linked_settings_given(config)

    def instantiate_classes(self) -> None:
        """Build the classes, then refuse linked model settings the data overrode.

        Raises:
            ConfigError: a value the classes' types refuse when they are built (e.g. one class
                linked from the data into the model's ``num_classes``), in one line.
        """
        try:
            super().instantiate_classes()
        except ValueError as exc:
            message = None if find_input_error(exc) else instantiation_message(str(exc))
            if message is None:
                raise
            raise ConfigError(
                f"{message} (values linked from the data, such as num_classes, are checked "
                "when the classes are built)"
            ) from None
        check_linked_settings(getattr(self, "_linked_given", {}), self.datamodule)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        """Build the trainer; with ``enable_checkpointing`` false, without robustart's checkpoint
        callback (Lightning refuses a ``ModelCheckpoint`` then).

        Raises:
            ConfigError: ``enable_checkpointing`` false and a ``ModelCheckpoint`` among
                ``trainer.callbacks``.
        """
        if config.get("enable_checkpointing") is False:
            callbacks = [c for c in callbacks if not isinstance(c, RunCheckpoint)]
            given = [c for c in config.get("callbacks") or [] if isinstance(c, ModelCheckpoint)]
            if given:
                raise ConfigError(
                    f"trainer.enable_checkpointing is false, but trainer.callbacks holds a "
                    f"{type(given[0]).__name__}: remove that callback, or drop "
                    "--trainer.enable_checkpointing false (robustart adds its own checkpoint "
                    "callback, set with --checkpoint.*)"
                )
        return super()._instantiate_trainer(config, callbacks)

    def before_fit(self) -> None:
        """Check what can only be checked on the built objects, before training starts: the
        monitors, and a resumed fit's settings against its checkpoint's."""
        check_monitors(self.trainer, self.model, getattr(self.datamodule, "image_size", None))
        check_evaluation_runs(self.trainer)
        ckpt_path = self.config[self.subcommand].get("ckpt_path") if self.subcommand else None
        if ckpt_path and ckpt_path not in NAMED_CHECKPOINTS:
            training_settings = getattr(self.datamodule, "training_settings", None)
            data_settings = training_settings() if callable(training_settings) else None
            check_resume_settings(ckpt_path, self.model.hparams, data_settings)

    def _announce_run_directory(self) -> None:
        """Print ``robustart: results in <run directory>`` (rank zero) if asked to."""
        if self.announce:
            directory = run_directory(self.trainer)  # collective under DDP
            if not self.trainer.is_global_zero:
                return
            if self.trainer.fast_dev_run:  # no logs, checkpoints or robustness results
                print(
                    "robustart: fast_dev_run: a debug run, nothing was written (Lightning "
                    "writes no logs or checkpoints; robustness.json only with the "
                    "callback's save_dir)",
                    flush=True,
                )
            else:
                announce_results(directory)

    after_fit = after_validate = after_test = _announce_run_directory

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if "weights_only" in self._subcommand_method_arguments.get(subcommand, ()):
            kwargs["weights_only"] = True  # checkpoints are untrusted input
        return kwargs


def _configured_architecture(config: Namespace) -> str | None:
    """The ``model.init_args.model`` of a subcommand's config, if set."""
    return config.model.get("init_args", Namespace()).get("model")


def use_resumable_csv_logger(trainer_config: Namespace) -> None:
    """Swap Lightning's ``CSVLogger`` for robustart's (same arguments), whose ``metrics.csv``
    survives a killed and resumed run."""
    for logger in loggers_of(trainer_config):
        if isinstance(logger, Namespace) and logger.get("class_path") in LIGHTNING_CSV_LOGGERS:
            logger.class_path = ROBUSTART_CSV_LOGGER


def use_grouped_wandb_logger(trainer_config: Namespace, job_type: str) -> None:
    """Swap Lightning's ``WandbLogger`` for robustart's (same arguments) and give its runs a
    ``group`` and ``job_type`` when the config leaves them unset, so that the fit and test runs
    of one recipe (and all runs of a ``robustart compare``) sit together in W&B.

    The group is ``WANDB_RUN_GROUP`` if set (``robustart compare`` sets it), else the
    logger's ``name`` (the recipe's); the job type is ``WANDB_JOB_TYPE`` if set, else the
    subcommand (``fit``, ``test``, ...).
    """
    for logger in loggers_of(trainer_config):
        if isinstance(logger, Namespace) and logger.get("class_path") in LIGHTNING_WANDB_LOGGERS:
            logger.class_path = ROBUSTART_WANDB_LOGGER
            init_args = logger.get("init_args")
            if init_args is None:
                logger.init_args = init_args = Namespace()
            if init_args.get("group") is None:
                init_args.group = os.environ.get("WANDB_RUN_GROUP") or init_args.get("name")
            if init_args.get("job_type") is None:
                init_args.job_type = os.environ.get("WANDB_JOB_TYPE") or job_type


def build_cli(
    args: list[str] | None = None,
    run: bool = True,
    finish_loggers_after: str | Iterable[str] = LIGHTNING_SUBCOMMANDS,
    announce: bool = True,
) -> RobustartCLI:
    """Construct (and by default run) the CLI on ``args`` (``None``: ``sys.argv``).

    Tests, tools and ``robustart compare`` call this with explicit arguments.

    Args:
        args: The command line after ``robustart`` (``["fit", "--config", ...]``; without the
            subcommand when ``run`` is false).
        run: Run the subcommand; otherwise only parse and build the model, data and trainer.
        finish_loggers_after: Stages whose end finishes the W&B runs (see
            :class:`~robustart.callbacks.FinishLoggers`); ``robustart compare`` fits and then
            tests with the trainer, and passes ``"test"``.
        announce: Print the ``robustart: results in <run directory>`` line at the end.
    """
    saved_argv = sys.argv
    if args is not None:
        # Parsed from sys.argv, not passed as ``args``: DDP's launcher starts the other
        # processes with this process's sys.argv, so it must hold the command being run.
        sys.argv = [saved_argv[0], *map(str, args)]
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
                "callbacks": [FinishLoggers(after=finish_loggers_after)],
            },
            parser_kwargs={
                "description": "robustart fit | validate | test | predict: train image "
                "classifiers and measure their robustness. `robustart --help` lists every "
                "subcommand.",
                "default_env": False,
            },
            run=run,
            announce=announce,
        )
    finally:
        sys.argv = saved_argv


def main(argv: list[str]) -> None:
    """Run ``robustart fit | validate | test | predict``.

    Args:
        argv: The subcommand and its options (``["fit", "--config", "recipe.yaml"]``), or
            LightningCLI's options before a subcommand.
    """
    check_config_arguments(argv)
    build_cli(argv)
