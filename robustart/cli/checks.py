"""Checks of a LightningCLI configuration that Lightning does not make: output folders that
cannot be written, runs over zero epochs or batches, an evaluation without trained weights,
W&B logging without credentials, checkpoint or early-stopping monitors that no evaluation
logs (or logs only on some epochs), and fits resumed with other settings than they started
with."""

from __future__ import annotations

import importlib
import inspect
import math
import os
from collections.abc import Mapping
from pathlib import Path
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


#: The trainer option limiting the batches of each subcommand's stage.
STAGE_BATCH_LIMITS = {
    "fit": "limit_train_batches",
    "validate": "limit_val_batches",
    "test": "limit_test_batches",
    "predict": "limit_predict_batches",
}


def check_run_length(trainer_config: Namespace, subcommand: str) -> None:
    """Refuse a run over nothing: zero batches for the subcommand's stage, or a fit of zero
    epochs or steps. Lightning would run no batch, save no results and still end normally.

    Args:
        trainer_config: The parsed ``trainer`` section.
        subcommand: ``fit``, ``validate``, ``test`` or ``predict``.

    Raises:
        ConfigError: naming the option and the values to set.
    """
    if trainer_config.get("fast_dev_run"):  # overrides the limits and epochs
        return
    option = STAGE_BATCH_LIMITS.get(subcommand)
    limit = trainer_config.get(option) if option else None
    if limit is not None and not (0 < limit <= 1 or limit == int(limit) > 1):
        raise ConfigError(
            f"trainer.{option} is {limit}: `robustart {subcommand}` would run over "
            f"{'no' if limit == 0 else 'an invalid number of'} batches. Set --trainer.{option} "
            "to a number of batches >= 1 or a fraction in (0, 1] (default 1.0: all batches)"
        )
    if subcommand != "fit":
        return
    for option, unlimited in (
        ("max_epochs", "-1: no limit, or leave it unset"),
        ("max_steps", "-1: no limit, the default"),
    ):
        value = trainer_config.get(option)
        if value is not None and (value == 0 or value < -1):
            raise ConfigError(
                f"trainer.{option} is {value}: `robustart fit` would train for "
                f"{'no' if value == 0 else 'an invalid number of'} {option[4:]}. Set "
                f"--trainer.{option} to 1 or more ({unlimited})"
            )


#: ``trainer.accelerator`` names that need a GPU PyTorch can see (Lightning's "gpu" is CUDA or
#: Apple's MPS).
GPU_ACCELERATORS = {"gpu": ("cuda", "mps"), "cuda": ("cuda",), "mps": ("mps",)}


def check_accelerator(trainer_config: Namespace) -> None:
    """Refuse ``trainer.accelerator`` gpu / cuda / mps where PyTorch sees no such device
    (Lightning's own message, "No supported gpu backend found!", says neither which option
    nor what to do).

    Raises:
        ConfigError: naming the option, what PyTorch sees, and the settings that run here.
    """
    import torch

    accelerator = trainer_config.get("accelerator")
    backends = GPU_ACCELERATORS.get(accelerator) if isinstance(accelerator, str) else None
    if backends is None:
        return
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if any(available[backend] for backend in backends):
        return
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
    raise ConfigError(
        f"trainer.accelerator is {accelerator!r}, but PyTorch sees no "
        f"{' or '.join(b.upper() for b in backends)} device here (torch {torch.__version__}, a "
        f"{build} build). Use --trainer.accelerator auto (a GPU when there is one) or cpu, "
        "or run on a machine with a GPU"
    )


#: Lightning precisions that cast the model itself to half precision.
HALF_PRECISIONS = ("16-true", "bf16-true")


def check_fit_settings(trainer_config: Namespace) -> None:
    """Refuse trainer settings of a fit that Lightning only rejects (or silently ignores)
    once its loops start: divisions by zero, a negative gradient clip, a validation interval
    longer than the limited epoch. The first three also with ``fast_dev_run``.

    Raises:
        ConfigError: naming the option and the values to set.
    """
    # Lightning divides by these when the loops start (a ZeroDivisionError traceback)
    for option, meaning in (
        ("accumulate_grad_batches", "1: one optimizer step per batch"),
        ("check_val_every_n_epoch", "null: validate by val_check_interval only"),
    ):
        value = trainer_config.get(option)
        if isinstance(value, int) and value < 1:
            raise ConfigError(f"trainer.{option} is {value}: it must be 1 or more (e.g. {meaning})")
    precision = str(trainer_config.get("precision"))
    if precision in HALF_PRECISIONS:
        raise ConfigError(
            f"trainer.precision {precision} casts the model's weights to half precision, which "
            "robustart's attacks and robustness evaluation refuse (a half-precision image "
            "cannot hold a perturbation of 1/255). Train with mixed precision: "
            f"--trainer.precision {precision.replace('true', 'mixed')}"
        )
    clip = trainer_config.get("gradient_clip_val")
    if isinstance(clip, (int, float)) and clip < 0:
        raise ConfigError(
            f"trainer.gradient_clip_val is {clip}: Lightning skips clipping for values <= 0, so "
            "this would train unclipped. Give a positive bound, or null for no clipping"
        )
    interval, batches = (
        trainer_config.get("val_check_interval"),
        trainer_config.get("limit_train_batches"),
    )
    if (
        not trainer_config.get("fast_dev_run")  # which sets its own limits and interval
        and isinstance(interval, int)
        and isinstance(batches, int)
        and trainer_config.get("check_val_every_n_epoch") is not None
        and interval > batches
    ):
        raise ConfigError(
            f"trainer.val_check_interval is {interval} batches but an epoch has "
            f"limit_train_batches={batches}: validation would never run. Lower it, or set "
            "--trainer.check_val_every_n_epoch null to count batches across epochs"
        )


#: Task options counted in epochs from the start of training: what a value past the end of
#: training does, and whether a value equal to ``max_epochs`` is already past it (a learning-rate
#: warm-up as long as training still reaches ``lr`` at the last step; AWP never starts).
WARMUP_OPTIONS = {
    "warmup_epochs": ("the learning rate would stay below lr for the whole run", False),
    "awp_warmup_epochs": ("AWP would never run", True),
}


def check_warmups_fit(config: Namespace) -> None:
    """Refuse a fit whose warm-ups last as long as training (``max_epochs``): the learning
    rate never reaches ``lr``, or AWP never starts, and the run looks normal.

    Raises:
        ConfigError: naming the option, its value and ``max_epochs``.
    """
    max_epochs = config.trainer.get("max_epochs")
    if max_epochs is None or max_epochs < 1:
        return
    init_args = config.model.get("init_args") or Namespace()
    for option, (effect, equal_is_too_long) in WARMUP_OPTIONS.items():
        value = init_args.get(option)
        if not isinstance(value, (int, float)) or value <= 0:
            continue
        if value > max_epochs or (equal_is_too_long and value == max_epochs):
            limit = "below" if equal_is_too_long else "to at most"
            raise ConfigError(
                f"model.init_args.{option} is {value:g} and trainer.max_epochs is {max_epochs}: "
                f"{effect}. Lower {option} {limit} {max_epochs} or train longer"
            )


#: Model settings the CLI links from the datamodule's attribute of the same name.
LINKED_FROM_DATA = ("num_classes", "in_channels", "mean", "std")


def linked_settings_given(config: Namespace) -> dict[str, Any]:
    """The model settings of :data:`LINKED_FROM_DATA` that the configuration sets to a value
    other than the model class's default: the user gave them, and the link would replace them.

    Args:
        config: The subcommand's configuration (with ``model.class_path``).
    """
    model = config.get("model")
    class_path = model.get("class_path") if isinstance(model, Namespace) else None
    if not class_path:
        return {}
    module, _, name = class_path.rpartition(".")
    try:
        parameters = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return {}
    init_args = model.get("init_args") or Namespace()
    given = {}
    for option in LINKED_FROM_DATA:
        value = init_args.get(option)
        default = parameters[option].default if option in parameters else None
        if value is not None and _as_comparable(value) != _as_comparable(default):
            given[option] = value
    return given


def check_linked_settings(given: dict[str, Any], datamodule: Any) -> None:
    """Refuse model settings the user gave that differ from the data's (the CLI's link from
    ``data.<name>`` would silently replace them: a 5-class request trained 10 classes).

    Args:
        given: From :func:`linked_settings_given`, read before the classes were built.
        datamodule: The built datamodule.

    Raises:
        ConfigError: naming the option, the two values and what to do.
    """
    for option, value in given.items():
        data_value = getattr(datamodule, option, None)
        if data_value is None or _as_comparable(value) == _as_comparable(data_value):
            continue
        raise ConfigError(
            f"model.init_args.{option} is {_show(value)}, but the data ({type(datamodule).__name__}"
            f") has {option} {_show(data_value)}: the model's {option} is linked from the data "
            f"and would silently be replaced. Drop model.init_args.{option} from the "
            f"configuration, or use data whose {option} is {_show(value)}"
        )


def _as_comparable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(round(float(v), 6) for v in value)
    return value


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(f"{float(v):g}" for v in value) + ")"
    return str(value)


#: Lightning's ``max_epochs`` when neither it nor ``max_steps`` is set.
LIGHTNING_DEFAULT_MAX_EPOCHS = 1000


def check_fit_has_work_left(ckpt_path: str | Path, trainer_config: Namespace) -> None:
    """Refuse to resume a fit from a checkpoint that already reached ``max_epochs`` or
    ``max_steps``: Lightning would restore it, train nothing and end normally, and the run would
    look finished at the settings asked for.

    Args:
        ckpt_path: The checkpoint the fit resumes from (``--ckpt_path``, ``last`` resolved).
        trainer_config: The parsed ``trainer`` section.

    Raises:
        ConfigError: naming the epochs (or steps) done and the option to raise.
    """
    from robustart.models.weights import load_checkpoint_file

    checkpoint = load_checkpoint_file(ckpt_path)
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    # an epoch-end checkpoint has the epoch "processed" but not yet "completed"; Lightning
    # resumes after it, so processed epochs are the epochs done
    current = progress.get("current", {})
    epochs_done = current.get("processed", current.get("completed"))
    steps_done = checkpoint.get("global_step")
    max_steps = trainer_config.get("max_steps")
    max_epochs = trainer_config.get("max_epochs")
    if max_epochs is None and max_steps in (None, -1):
        max_epochs = LIGHTNING_DEFAULT_MAX_EPOCHS
    advice = (
        "; evaluate it with `robustart test --ckpt_path FILE`, or start a new run without "
        "--ckpt_path"
    )
    if isinstance(epochs_done, int) and max_epochs not in (None, -1) and epochs_done >= max_epochs:
        raise ConfigError(
            f"--ckpt_path {ckpt_path} has already trained {epochs_done} epochs and "
            f"trainer.max_epochs is {max_epochs}: resuming would train nothing. Raise "
            f"--trainer.max_epochs above {epochs_done} to train further{advice}"
        )
    if isinstance(steps_done, int) and max_steps not in (None, -1) and steps_done >= max_steps:
        raise ConfigError(
            f"--ckpt_path {ckpt_path} has already taken {steps_done} optimizer steps and "
            f"trainer.max_steps is {max_steps}: resuming would train nothing. Raise "
            f"--trainer.max_steps above {steps_done} to train further{advice}"
        )


#: Options of robustart's tasks that initialise the model from trained weights.
TRAINED_WEIGHTS_OPTIONS = ("weights", "pretrained")


#: Task settings a resumed fit may change: how the model was initialised (the checkpoint's
#: weights replace it) and what LightningCLI records about how the task was built.
RESUME_MAY_CHANGE = frozenset({"weights", "weights_sha256", "pretrained", "_instantiator"})


def check_resume_settings(
    ckpt_path: str | Path, hparams: Mapping[str, Any], data_settings: Mapping[str, Any] | None
) -> None:
    """Refuse to resume a fit whose task settings differ from those the checkpoint was trained
    with: Lightning would restore the weights, optimiser and epoch, then go on with the new
    recipe, and the run would report a mix of two trainings under the new settings.

    Compared: the task class and every setting both record (settings a later robustart
    added or dropped are not compared), except :data:`RESUME_MAY_CHANGE`; floats to a
    relative 1e-6 (``mean``/``std`` are computed from the data). Checkpoints without
    recorded settings (another LightningModule's) pass; their weights are checked elsewhere.

    The data settings that shape training (``RobustartDataModule.training_settings``: the
    data module, batch size, augmentation policy, stylized images), recorded by robustart's
    checkpoints, are compared too.

    Args:
        ckpt_path: The checkpoint the fit resumes from (``--ckpt_path``, ``last`` resolved).
        hparams: The built task's hyperparameters (``model.hparams``).
        data_settings: The built data module's training settings (``None``: not compared).

    Raises:
        ConfigError: naming each differing setting with both values, and what to do.
    """
    from robustart.models.weights import load_checkpoint_file

    checkpoint = load_checkpoint_file(ckpt_path)
    saved = checkpoint.get("hyper_parameters")
    saved = saved if isinstance(saved, Mapping) else {}
    differences = []
    saved_task, task = saved.get("_class_path"), hparams.get("_class_path")
    if saved_task and task and saved_task != task:
        differences.append(f"the task is {saved_task} there and {task} here")
    for name in sorted(set(saved) & set(hparams) - RESUME_MAY_CHANGE - {"_class_path"}):
        if not _same_setting(saved[name], hparams[name]):
            differences.append(
                f"model.init_args.{name} is {_show_setting(saved[name])} there and "
                f"{_show_setting(hparams[name])} here"
            )
    record = checkpoint.get("robustart")
    saved_data = record.get("data") if isinstance(record, Mapping) else None
    if isinstance(saved_data, Mapping) and data_settings is not None:
        for name in sorted(set(saved_data) & set(data_settings)):
            there, here = saved_data[name], data_settings[name]
            if _same_setting(there, here):
                continue
            if name == "stylized":
                used = {True: "used", False: "not used"}
                differences.append(
                    f"stylized images (data.init_args.stylized_root) are {used[bool(there)]} "
                    f"there and {used[bool(here)]} here"
                )
            else:
                option = "the data module" if name == "data" else f"data.init_args.{name}"
                differences.append(
                    f"{option} is {_show_setting(there)} there and {_show_setting(here)} here"
                )
    if differences:
        shown = "; ".join(differences[:4])
        more = f"; and {len(differences) - 4} more" if len(differences) > 4 else ""
        raise ConfigError(
            f"--ckpt_path {ckpt_path} resumes a fit trained with other settings: {shown}{more}. "
            "A resumed fit continues the same training: resume with the settings it started "
            "with (the config.yaml in its run folder), or start a new run from these weights "
            f"with --model.init_args.weights {ckpt_path}"
        )


def _same_setting(a: Any, b: Any) -> bool:
    """Equal settings, tuples and lists alike, floats to a relative 1e-6."""
    if isinstance(a, Namespace):
        a = a.as_dict()
    if isinstance(b, Namespace):
        b = b.as_dict()
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_setting(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same_setting(a[k], b[k]) for k in a)
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return not isinstance(b, bool) and math.isclose(a, b, rel_tol=1e-6, abs_tol=0.0)
    return a == b


def _show_setting(value: Any) -> str:
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, tuple):
        value = list(value)
    return repr(value) if isinstance(value, str) else str(value)


def check_trained_weights(config: Namespace, subcommand: str) -> None:
    """Refuse to evaluate a model that was never trained: ``validate`` and ``test`` need a
    ``--ckpt_path`` file or a model initialised from trained weights (``weights``, a file or a
    ``zoo:`` entry, or timm's ``pretrained``); otherwise they would report the metrics of
    random initial weights.

    ``--ckpt_path last`` and ``best`` name checkpoints of an earlier ``fit`` of the same
    trainer, which a new ``robustart validate`` or ``test`` does not have (Lightning would load
    nothing, or fail): they are refused too.

    Args:
        config: The parsed config of the subcommand.
        subcommand: The subcommand; only ``validate`` and ``test`` are checked.

    Raises:
        ConfigError: naming what is missing and the options that give trained weights.
    """
    if subcommand not in ("validate", "test"):
        return
    example = "runs/NAME/version_N/checkpoints/last.ckpt"
    ckpt_path = config.get("ckpt_path")
    if ckpt_path in ("last", "best"):
        raise ConfigError(
            f"--ckpt_path {ckpt_path} names a checkpoint of a fit run by the same trainer, and "
            f"`robustart {subcommand}` starts a new one: pass the checkpoint file instead, "
            f"e.g. --ckpt_path {example}"
        )
    if ckpt_path:
        return
    init_args = config.model.get("init_args") or Namespace()
    if any(init_args.get(option) for option in TRAINED_WEIGHTS_OPTIONS):
        return
    weights = (
        " or initialise the model from trained weights with --model.init_args.weights FILE "
        "(or zoo:NAME)"
        if "weights" in init_args
        else ""
    )
    raise ConfigError(
        f"`robustart {subcommand}` without --ckpt_path would evaluate the model's random "
        f"initial weights: pass --ckpt_path with a checkpoint of `robustart fit` (e.g. "
        f"{example}){weights}"
    )


#: ``WANDB_MODE`` values (and the logger's ``mode``) in which W&B needs no account.
WANDB_OFFLINE_MODES = ("offline", "dryrun", "disabled")


def check_wandb_can_log(trainer_config: Namespace, wandb_loggers: tuple[str, ...]) -> None:
    """Refuse, before anything runs, a W&B logger that would fail to start for want of an
    account: online (no ``WANDB_MODE=offline``, no ``offline: true`` or ``mode: offline`` on
    the logger) without an API key (``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE``, or the
    ``.netrc`` entry that ``wandb login`` writes).

    Args:
        trainer_config: The parsed ``trainer`` section.
        wandb_loggers: The ``class_path`` values of W&B loggers.

    Raises:
        ConfigError: saying to log in or to log offline.
    """
    online = [
        logger
        for logger in loggers_of(trainer_config)
        if isinstance(logger, Namespace)
        and logger.get("class_path") in wandb_loggers
        and not _logs_offline(logger)
    ]
    if not online or os.environ.get("WANDB_MODE", "").lower() in WANDB_OFFLINE_MODES:
        return
    if os.environ.get("WANDB_DISABLED", "").lower() in ("1", "true", "yes"):
        return
    if not wandb_credentials_found():
        raise ConfigError(
            "the W&B logger has no account to log to (not logged in, WANDB_API_KEY unset): "
            "run `wandb login` (or set WANDB_API_KEY), or log offline with WANDB_MODE=offline "
            "(`wandb sync` uploads the runs later)"
        )


def _logs_offline(logger: Namespace) -> bool:
    """Whether a W&B logger's config sets ``offline: true`` or an offline ``mode`` (its own or
    in its ``settings``)."""
    init_args = logger.get("init_args") or Namespace()
    settings = init_args.get("settings")
    modes = [init_args.get("mode"), (logger.get("dict_kwargs") or {}).get("mode")]
    if isinstance(settings, (dict, Namespace)):
        modes.append(settings.get("mode"))
    return bool(init_args.get("offline")) or any(
        str(mode).lower() in WANDB_OFFLINE_MODES for mode in modes
    )


def wandb_credentials_found() -> bool:
    """Whether W&B has credentials for its server (``WANDB_BASE_URL``): an API key or identity
    token in the environment, this process's login, or a ``.netrc`` entry. Read without
    prompting, without the network and without loading W&B's process-wide settings; ``True``
    when the installed wandb keeps its credentials where this cannot look."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        from wandb.errors import AuthenticationError
        from wandb.sdk.lib import wbauth
    except ImportError:  # an older wandb: wandb.init reports missing credentials itself
        return True
    host = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
    try:
        return bool(wbauth.session_credentials(host=host) or wbauth.read_netrc_auth(host=host))
    except AuthenticationError as exc:
        raise ConfigError(f"W&B credentials: {exc} (run `wandb login --relogin`)") from None
    except (AttributeError, TypeError):  # another wandb's internals: let wandb.init decide
        return True


#: Metric-name prefixes of the robustness evaluation (see robustart.evaluation.report, and
#: robustart.evaluation.certification for its ``certification`` option).
ROBUSTNESS_PREFIXES = ("robust/", "robust_ar/", "attack_success/", "corruption/", "certified/")


#: Metric-name prefixes whose values are better when higher (accuracies), and when lower
#: (losses, errors, attack success): the ``mode`` a monitor of them needs.
HIGHER_IS_BETTER = (
    "robust/",
    "robust_ar/",
    "corruption/",
    "certified/",
    "val/acc",
    "val_ema/acc",
    "train/acc",
)
LOWER_IS_BETTER = ("attack_success/", "corruption_error/", "val/loss", "train/loss")


#: Monitors checked by no list here: training metrics (they depend on the objective) and
#: Lightning's own counters.
OTHER_MONITORS = ("train/", "epoch", "step")


def monitor_mode(monitor: str) -> str | None:
    """``"max"`` for an accuracy-like metric, ``"min"`` for a loss or error, ``None`` when
    the name does not say.

    Example:
        >>> monitor_mode("robust/pgd10_linf/eps=8_255"), monitor_mode("val/loss")
        ('max', 'min')
    """
    if monitor.startswith(HIGHER_IS_BETTER):
        return "max"
    if monitor.startswith(LOWER_IS_BETTER):
        return "min"
    return None


def check_evaluation_runs(trainer: Any) -> None:
    """Refuse a fit whose robustness evaluation would never run.

    The evaluation runs at the end of validation epochs; ``limit_val_batches: 0`` turns them
    off and ``check_val_every_n_epoch`` above ``max_epochs`` never reaches one, so the run
    would end with exit status 0 and no ``robustness.json``.

    Raises:
        ConfigError: naming the trainer option and the fix.
    """
    from robustart.callbacks import RobustnessEvaluation

    if not any(isinstance(cb, RobustnessEvaluation) for cb in trainer.callbacks):
        return
    if trainer.limit_val_batches == 0:
        raise ConfigError(
            "--trainer.limit_val_batches 0 turns validation off, and with it the robustness "
            "evaluation, which runs at the end of validation: no robustness would be "
            "measured. Keep some validation batches (e.g. --trainer.limit_val_batches 1)"
        )
    every, epochs = trainer.check_val_every_n_epoch, trainer.max_epochs
    if every is not None and epochs is not None and epochs > 0 and every > epochs:
        raise ConfigError(
            f"--trainer.check_val_every_n_epoch {every} with --trainer.max_epochs {epochs}: "
            "validation, and with it the robustness evaluation, would never run. Lower "
            "check_val_every_n_epoch (the RobustnessEvaluation callback's every_n_epochs sets "
            "how often robustness is measured)"
        )


def check_monitors(trainer: Any, model: Any, image_size: int | None = None) -> None:
    """Refuse a checkpoint or early-stopping ``monitor`` that no evaluation will log, or that
    is only computed on some epochs while the callback acts on others (it would rank a
    checkpoint by a stale value from an earlier epoch).

    Args:
        trainer: The built trainer (its callbacks).
        model: The built task (its logged names depend on its settings).
        image_size: Side of the training images (the datamodule's ``image_size``), where
            known: corruption errors normalised by AlexNet are logged only for ImageNet-scale
            images.

    Raises:
        ConfigError: naming the monitor, the keys that exist (close matches) and the fix.
    """
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from robustart.callbacks import RobustnessEvaluation
    from robustart.registry import close_matches

    names_of = [  # each evaluation's period and metric names
        (cb.every_n_epochs, cb.metric_names(image_size=image_size))
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
        elif monitor not in robustness_keys | task_keys and not monitor.startswith(OTHER_MONITORS):
            # val_loss, test/acc (not logged during fit), corruption_error/mce of a suite
            # without the 15 corruptions: Lightning would fail after the first epoch
            hint = close_matches(monitor, sorted(task_keys | robustness_keys))
            raise ConfigError(
                f"{what}: no evaluation of this run logs this metric"
                + (f"; did you mean {', '.join(hint)}?" if hint else ".")
                + f" The task logs {', '.join(sorted(task_keys))}"
                + (", the robustness evaluation robust/..., corruption/..." if names_of else "")
                + " (and train/... during training)."
            )
        expected = monitor_mode(monitor)
        if expected is not None and callback.mode != expected:
            better = "higher" if expected == "max" else "lower"
            fix = (
                f"--checkpoint.mode {expected}"
                if isinstance(callback, ModelCheckpoint)
                else f"mode: {expected} in the callback's init_args"
            )
            raise ConfigError(
                f"{what} with mode={callback.mode!r}: {monitor} is better when {better}, so "
                "it would keep (or stop at) the worst epoch; Lightning's default mode is "
                f"'min'. Set {fix}"
            )
