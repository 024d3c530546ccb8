"""Loading the models that the evaluation commands compare (``robustart benchmark``,
``robustart transfer``, ``robustart shift``), their display names and the device they run on.

A model is named by a *spec*:

=============================  ===============================================================
``zoo:NAME``                   a model-zoo entry (checksum verified)
``run/checkpoints/last.ckpt``  a Lightning checkpoint written by ``robustart fit`` (the
                               architecture and normalisation are read from it)
``weights.pt`` + ``arch``      a plain state dict (or ``.safetensors``) of a robustart or timm
                               architecture (``--arch resnet20``)
``timm:NAME@FILE``             any timm architecture with local weights
``torchvision:NAME@FILE``      any torchvision classification architecture with local weights
``package.module:factory``     a function returning an ``nn.Module`` (optionally ``@FILE``
                               weights loaded into it)
=============================  ===============================================================

Every model returned takes images in [0, 1] (NCHW) and returns logits: timm, torchvision and
state-dict models are wrapped in a :class:`~robustart.models.NormalizedClassifier` with the
data's mean and std; factories must normalise themselves. Checkpoints are untrusted input: they
are read with ``weights_only=True`` (or safetensors) and checked against the architecture and
the evaluation data.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from robustart.errors import CheckpointError, ConfigError

__all__ = [
    "DataFacts",
    "check_model_outputs",
    "display_names",
    "load_model",
    "load_models",
    "model_identity",
    "model_names",
    "resolve_device",
    "state_checksum",
]

#: ``package.module:function`` (dotted identifiers on both sides of one colon).
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def load_model(
    spec: str,
    num_classes: int,
    in_channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    dataset: str | None = None,
    dataset_hint: str = "evaluate it on {trained_on} data",
    arch: str | None = None,
    image_size: int | None = None,
) -> nn.Module:
    """Load the classifier named by ``spec`` (see the module docstring), in eval mode.

    A factory's model records neither its classes nor its input, so it is run once on two
    constant images of the data's shape (:func:`check_model_outputs`) when ``image_size`` is
    known.

    Args:
        spec: ``zoo:NAME``, a Lightning ``.ckpt``, a plain weights file (with ``arch``),
            ``timm:NAME@FILE``, ``torchvision:NAME@FILE`` or ``package.module:factory[@FILE]``.
        num_classes: Classes of the evaluation data; the model must have as many.
        in_channels: Image channels of the evaluation data.
        mean: Normalisation mean of the data (zoo, timm, torchvision and state-dict models).
        std: Normalisation std of the data.
        dataset: Name of the evaluation data, checked against a zoo entry's ``dataset``.
        dataset_hint: What to do when a zoo entry was trained on other data, appended to the
            error; ``{trained_on}`` is replaced by the entry's dataset.
        arch: Architecture of a plain weights file (a robustart or timm model name).
        image_size: Side of the evaluation images (``None``: a factory's model is not run).

    Returns:
        An ``nn.Module`` mapping (N, C, H, W) images in [0, 1] to logits (N, ``num_classes``).

    Raises:
        UnknownNameError: an unknown zoo entry or architecture (close names suggested).
        CheckpointError: a missing, unsafe, corrupt or mismatched weights file.
        ConfigError: a model made for another number of classes, channels or dataset, a
            malformed spec, a factory that fails or whose model fails on the data's images.
    """
    kind, _, rest = spec.partition(":")
    if kind == "zoo" and rest:
        return _load_zoo(spec, num_classes, in_channels, mean, std, dataset, dataset_hint)
    if kind in _FOREIGN_LOADERS and rest:
        name, weights = _name_and_weights(spec, rest)
        backbone = _FOREIGN_LOADERS[kind](name, num_classes, in_channels)
        return _with_weights(backbone, weights, spec, num_classes, mean, std)
    if _FACTORY.match(spec.partition("@")[0]) and not Path(spec).exists():
        model = _load_factory(spec)
        if "@" not in spec:  # weights given as @FILE were checked when loaded
            from robustart.models.weights import check_finite_state

            check_finite_state(model.state_dict(), f"model {spec!r}")
        if image_size is not None:
            check_model_outputs(
                model, f"model {spec!r}", num_classes, (in_channels, image_size, image_size)
            )
        return model
    return _load_file(Path(spec), num_classes, in_channels, mean, std, arch)


class DataFacts(Protocol):
    """What loading needs to know of the evaluation data: a robustart datamodule or a
    benchmark's :class:`~robustart.evaluation.benchmarks.ModelData` has it."""

    num_classes: int
    in_channels: int
    mean: Sequence[float]
    std: Sequence[float]


def load_models(
    specs: Mapping[str, str],
    data: DataFacts,
    dataset: str | None = None,
    dataset_hint: str = "evaluate it on {trained_on} data",
    arch: str | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, nn.Module]:
    """``{name: spec}`` → ``{name: model}`` with :func:`load_model`, each on ``device``; every
    model is loaded (and checked) before the caller evaluates any. A factory's model is run
    once on the data's image shape when ``data`` has an ``image_size`` (a datamodule does)."""
    if arch is not None:  # checked even when no spec is a plain weights file that needs it
        from robustart.models.factory import check_model_name

        check_model_name(arch)
    image_size = getattr(data, "image_size", None)
    return {
        name: load_model(
            spec,
            data.num_classes,
            data.in_channels,
            data.mean,
            data.std,
            dataset,
            dataset_hint,
            arch=arch,
            image_size=None if image_size is None else int(image_size),
        ).to(device)
        for name, spec in specs.items()
    }


def _name_and_weights(spec: str, rest: str) -> tuple[str, str]:
    name, sep, weights = rest.partition("@")
    if not name or not sep or not weights:
        kind = spec.partition(":")[0]
        raise ConfigError(
            f"model {spec!r}: give the local weights file as {kind}:NAME@FILE (e.g. "
            f"{kind}:resnet18@weights.safetensors); robustart never downloads weights"
        )
    return name, weights


def _timm_backbone(name: str, num_classes: int, in_channels: int) -> nn.Module:
    import timm

    from robustart.models.factory import create_backbone

    if not timm.is_model(name):
        create_backbone(name, num_classes, in_channels)  # raises with close matches
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)


def _torchvision_backbone(name: str, num_classes: int, in_channels: int) -> nn.Module:
    from torchvision import models

    from robustart.errors import UnknownNameError
    from robustart.registry import close_matches

    known = models.list_models(module=models)
    if name not in known:
        hint = close_matches(name, known)
        raise UnknownNameError(
            f"unknown torchvision classification model {name!r}"
            + (f"; did you mean: {', '.join(hint)}?" if hint else "")
        )
    if in_channels != 3:
        raise ConfigError(f"torchvision models take 3-channel images, the data has {in_channels}")
    return models.get_model(name, weights=None, num_classes=num_classes)


#: ``kind`` of ``kind:NAME@FILE`` → builds the bare architecture (no weights, no normalisation).
_FOREIGN_LOADERS = {"timm": _timm_backbone, "torchvision": _torchvision_backbone}


def _with_weights(
    backbone: nn.Module,
    weights: str,
    spec: str,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> nn.Module:
    """Load ``weights`` into ``backbone`` strictly and wrap it with the data's normalisation."""
    from robustart.models.factory import NormalizedClassifier
    from robustart.models.weights import extract_state_dict, load_checkpoint_file, load_into

    state = extract_state_dict(load_checkpoint_file(weights))
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    load_into(backbone, state, weights, spec)
    return NormalizedClassifier(backbone, mean, std).eval()


def _factory_function(spec: str) -> tuple[object, str]:
    """The function a ``package.module:function[@FILE]`` spec names, and that name.

    Raises:
        ConfigError: the module cannot be imported, or has no such callable.
    """
    module_name, _, function_name = spec.partition("@")[0].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"model {spec!r}: cannot import {module_name!r} ({err})") from None
    factory = module
    for part in function_name.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ConfigError(f"model {spec!r}: {module_name!r} has no {function_name!r}")
    if not callable(factory):
        raise ConfigError(f"model {spec!r}: {function_name!r} is not callable")
    return factory, function_name


def _load_factory(spec: str) -> nn.Module:
    factory, function_name = _factory_function(spec)
    weights = spec.partition("@")[2]
    try:
        signature = inspect.signature(factory)
        signature.bind()
    except TypeError:
        signature = signature.replace(return_annotation=inspect.Signature.empty)
        raise ConfigError(
            f"model {spec!r}: {function_name}{signature} needs arguments, but "
            "a factory is called with none: name a function without arguments that builds the "
            "model (e.g. def make(): return "
            f"{function_name}(...))"
        ) from None
    except ValueError:  # no signature (a builtin or C extension): let the call tell
        pass
    try:
        model = factory()
    except Exception as err:
        raise ConfigError(
            f"model {spec!r}: {function_name}() raised {type(err).__name__}: "
            f"{_first_line(err)}; fix the factory (robustart calls it without arguments)"
        ) from err
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model {spec!r}: {function_name}() returned a {type(model).__name__}, not an "
            "nn.Module mapping images in [0, 1] to logits"
        )
    if weights:
        from robustart.models.weights import extract_state_dict, load_checkpoint_file, load_into

        load_into(model, extract_state_dict(load_checkpoint_file(weights)), weights, spec)
    return model.eval()


def _first_line(err: BaseException, limit: int = 300) -> str:
    text = (str(err).strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_model_outputs(
    model: nn.Module, what: str, num_classes: int, image_shape: tuple[int, int, int]
) -> None:
    """Run ``model`` once, in eval mode and without gradients, on two constant float32 images
    of ``image_shape`` in [0, 1], and check that it returns float logits ``(2, num_classes)``.

    For models that record neither their classes nor their input (factories, modules passed to
    :func:`robustart.benchmark`): a model for other classes, channels, image sizes or dtypes
    is refused before any evaluation instead of being scored or failing mid-run.

    Args:
        model: The model (its device is that of its first parameter or buffer).
        what: How the model is named in errors (``"model 'pkg.mod:make'"``).
        num_classes: Classes of the evaluation data.
        image_shape: ``(channels, height, width)`` of the evaluation images.

    Raises:
        ConfigError: the forward pass fails, or its output is not float logits of
            ``num_classes`` classes.

    Example:
        >>> check_model_outputs(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), "m", 3, (3, 2, 2))
        >>> five = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
        >>> try:
        ...     check_model_outputs(five, "m", 3, (3, 2, 2))
        ... except ConfigError as err:
        ...     print(str(err).split(":")[0])
        m has 5 outputs but the data has 3 classes
    """
    tensors = itertools.chain(model.parameters(), model.buffers())
    first = next(tensors, None)
    device = torch.device("cpu") if first is None else first.device
    channels, height, width = image_shape
    expected = f"float32 (N, {channels}, {height}, {width}) images in [0, 1]"
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.full((2, *image_shape), 0.5, device=device))
    except Exception as err:
        low = sorted(
            {str(p.dtype) for p in model.parameters() if p.dtype in (torch.float16, torch.bfloat16)}
        )
        advice = (
            f"its parameters are {', '.join(low)}: return model.float()"
            if low
            else f"it must take the data's {expected} and return logits (N, {num_classes})"
        )
        raise ConfigError(
            f"{what} fails on {expected} ({type(err).__name__}: {_first_line(err, 200)}); {advice}"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise ConfigError(
            f"{what} returns a {type(out).__name__}, not a tensor of logits (N, {num_classes})"
        )
    if not out.is_floating_point():
        raise ConfigError(
            f"{what} returns {out.dtype} outputs, not float logits (N, {num_classes}); return "
            "the logits, not class indices"
        )
    if out.ndim == 2 and out.shape[0] == 2 and out.shape[1] != num_classes:
        raise ConfigError(
            f"{what} has {out.shape[1]} outputs but the data has {num_classes} classes: give "
            f"a model predicting the data's {num_classes} classes, or evaluate it on data with "
            f"{out.shape[1]}"
        )
    if tuple(out.shape) != (2, num_classes):
        raise ConfigError(
            f"{what} returns outputs of shape {tuple(out.shape)} for 2 images, not logits "
            f"(2, {num_classes})"
        )


def _load_zoo(
    spec: str,
    num_classes: int,
    in_channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    dataset: str | None,
    dataset_hint: str,
) -> nn.Module:
    from robustart.models import create_model, zoo

    name = spec[len(zoo.ZOO_PREFIX) :]
    index = zoo.load_index()
    if name not in index:
        zoo.resolve(spec, "", num_classes)  # raises UnknownNameError with close matches
    entry = index[name]
    if dataset and entry.get("dataset") and entry["dataset"] != dataset:
        raise ConfigError(
            f"zoo model {name!r} was trained on {entry['dataset']!r}, not on {dataset!r}: "
            + dataset_hint.format(trained_on=entry["dataset"])
        )
    if int(entry["num_classes"]) != num_classes:
        raise ConfigError(
            f"zoo model {name!r} has {entry['num_classes']} classes but the data has {num_classes}"
        )
    model = create_model(entry["model"], num_classes, in_channels, mean=mean, std=std, weights=spec)
    return model.eval()


def _load_file(
    path: Path,
    num_classes: int,
    in_channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    arch: str | None,
) -> nn.Module:
    from robustart.models import create_model
    from robustart.models.weights import (
        check_checkpoint_matches,
        extract_state_dict,
        load_checkpoint_file,
        load_into,
    )

    checkpoint = load_checkpoint_file(path)  # weights_only; CheckpointError if missing/unsafe
    if "state_dict" not in checkpoint:
        if arch is not None:  # a plain state dict of a named architecture
            model = create_model(arch, num_classes, in_channels, mean=mean, std=std)
            from robustart.models.factory import load_weights

            return load_weights(model, str(path), arch=arch).eval()
        keys = [k for k, v in checkpoint.items() if isinstance(v, torch.Tensor)]
        what = (
            f"a plain state dict ({len(keys)} tensors, e.g. {', '.join(keys[:3])}) that does not "
            "record its architecture"
            if keys
            else "no 'state_dict'"
        )
        raise CheckpointError(
            f"{path} is not a Lightning checkpoint ({what}); name its architecture with --arch "
            "(a robustart or timm model, e.g. --arch resnet20), or pass a .ckpt written by "
            "`robustart fit`, a zoo:<name> entry, timm:NAME@FILE or torchvision:NAME@FILE."
        )
    hparams = checkpoint.get("hyper_parameters") or {}
    info = checkpoint.get("robustart") or {}
    arch = hparams.get("model", info.get("model"))
    classes = hparams.get("num_classes", info.get("num_classes"))
    if not isinstance(arch, str) or classes is None:
        raise CheckpointError(
            f"{path} does not record its architecture (no 'model' and 'num_classes' in its "
            "hyper-parameters); it was not written by `robustart fit`"
        )
    check_checkpoint_matches(checkpoint, arch, int(classes), source=str(path))
    if int(classes) != num_classes:
        raise ConfigError(
            f"{path} holds a model with {classes} classes but the data has {num_classes}"
        )
    channels = int(hparams.get("in_channels", info.get("in_channels", in_channels)))
    if channels != in_channels:
        raise ConfigError(
            f"{path} holds a model for {channels}-channel images but the data has {in_channels}"
        )
    model = _create_recorded_model(path, arch, num_classes, channels, hparams.get("model_kwargs"))
    # The whole wrapper is loaded, normalisation buffers included: the checkpoint normalises
    # its input the way it was trained to.
    load_into(model, extract_state_dict(checkpoint), str(path), arch)
    return model.eval()


#: Model settings a checkpoint may not bring: they make timm download or read other files.
UNTRUSTED_MODEL_KWARGS = frozenset(
    {"pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir"}
)


def _create_recorded_model(
    path: Path, arch: str, num_classes: int, channels: int, model_kwargs: object
) -> nn.Module:
    """The architecture a checkpoint records, built with its recorded ``model_kwargs``.

    The checkpoint is untrusted input: settings that would download or read other files are
    refused, and settings the architecture does not take are a one-line error.

    Raises:
        CheckpointError: ``model_kwargs`` that is not a mapping, holds a refused setting, or
            does not fit the architecture.
    """
    from robustart.models import create_model

    if model_kwargs is None:
        model_kwargs = {}
    if not isinstance(model_kwargs, Mapping):
        raise CheckpointError(
            f"{path} records model_kwargs {model_kwargs!r}, not a mapping of settings; it was "
            "not written by `robustart fit`"
        )
    refused = sorted(k for k, v in model_kwargs.items() if k in UNTRUSTED_MODEL_KWARGS and v)
    if refused:
        raise CheckpointError(
            f"{path} records model_kwargs {', '.join(f'{k}={model_kwargs[k]!r}' for k in refused)}"
            ", which would make the model download or read other files when it is built; "
            "robustart does not take such settings from a checkpoint. Re-save the checkpoint "
            "without them (its weights are all the model needs)."
        )
    try:
        return create_model(arch, num_classes, channels, **model_kwargs)
    except (TypeError, ConfigError) as err:
        if isinstance(err, ConfigError) and not str(err).startswith("model_kwargs:"):
            raise
        raise CheckpointError(
            f"{path} records model_kwargs {dict(model_kwargs)!r} that model {arch!r} does not "
            f"take ({_first_line(err)}); it was written for another version of the model"
        ) from None


def model_names(specs: Sequence[str]) -> list[str]:
    """Short unique display names: a zoo entry's name, a timm/torchvision architecture's name,
    a factory's function name, or the checkpoint's run folder and file stem
    (``digits_pgd_at/version_0:last``; for a W&B run, whose folder is named by its id, the
    run's name from its ``config.yaml`` first: ``digits_pgd_at/k3vsm2jq:last``)."""
    names: list[str] = []
    for spec in specs:
        kind, _, rest = spec.partition(":")
        if kind in ("zoo", *_FOREIGN_LOADERS) and rest:
            name = rest.partition("@")[0]
        elif _FACTORY.match(spec.partition("@")[0]) and not Path(spec).exists():
            name = spec.partition("@")[0].rpartition(":")[2]
        else:
            path = Path(spec)
            if path.parent.name == "checkpoints" and len(path.parents) >= 3:
                run = path.parents[1]
                group = _run_name(run / "config.yaml") or path.parents[2].name
                name = f"{group}/{run.name}:{path.stem}"
            else:
                name = path.stem
        base, k = name, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    return names


def _run_name(config: Path) -> str | None:
    """The W&B run name (``trainer.logger.init_args.name``) in a run folder's ``config.yaml``,
    if the run logged to W&B; ``None`` otherwise or when the file cannot be read."""
    import yaml

    try:
        logger = yaml.safe_load(config.read_text())["trainer"]["logger"]
        logger = logger[0] if isinstance(logger, list) else logger
        if str(logger.get("class_path", "")).endswith("WandbLogger"):
            name = logger.get("init_args", {}).get("name")
            return str(name) if name else None
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return None
    return None


def display_names(specs: Sequence[str], names: str | None) -> list[str]:
    """The names shown for ``specs``: :func:`model_names`, or the comma-separated ``names``
    given on the command line (``--names``), one per model and distinct.

    Raises:
        ConfigError: if ``names`` does not give one distinct, non-empty name per model.
    """
    if names is None:
        return model_names(specs)
    chosen = [n.strip() for n in names.split(",")]
    if len(chosen) != len(specs) or len(set(chosen)) != len(chosen) or "" in chosen:
        raise ConfigError(f"--names needs {len(specs)} distinct names, got {names!r}")
    return chosen


def state_checksum(model: nn.Module) -> str:
    """SHA-256 over the names, dtypes, shapes and values of ``model``'s state dict: the identity
    of a model's weights, whatever file (or no file) they came from.

    Example:
        >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> _ = b.load_state_dict(a.state_dict())
        >>> state_checksum(a) == state_checksum(b)
        True
    """
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_identity(spec: str | None, model: nn.Module) -> dict[str, str]:
    """What, besides its weights (:func:`state_checksum`), decides what ``model`` computes: two
    models with equal weights but another identity never share stored results.

    A zoo entry, a checkpoint, a weights file and a module given directly are identified by
    what they compute: equal weights, structure and code are the same model, whatever file
    they came from. A factory is also identified by its dotted name and its module's source:
    its code may compute anything from the same weights.

    Args:
        spec: What loaded the model (see the module docstring), or ``None`` for a module
            given directly.
        model: The loaded model.

    Returns:
        ``{"factory": ..., "structure": ..., "code": ...}``: a factory's
        ``package.module:function`` (``""`` for other specs), a SHA-256 of ``repr(model)``
        and of its modules' plain settings (numbers, strings and flags that are not
        parameters or buffers, e.g. a normalisation constant), and a SHA-256 over the source
        files of its classes and of a factory's module (an edited ``forward`` changes it).

    Example:
        >>> a = model_identity(None, nn.Sequential(nn.Flatten(), nn.Dropout(0.1)))
        >>> b = model_identity(None, nn.Sequential(nn.Flatten(), nn.Dropout(0.2)))
        >>> a == model_identity(None, nn.Sequential(nn.Flatten(), nn.Dropout(0.1))), a == b
        (True, False)
    """
    sources: set[str] = set()
    factory = ""
    target = "" if spec is None else spec.partition("@")[0]
    kind = target.partition(":")[0]
    if (
        spec is not None
        and kind not in ("zoo", *_FOREIGN_LOADERS)
        and _FACTORY.match(target)
        and not Path(spec).exists()
    ):
        factory = target
        sources.add(_source_of(importlib.import_module(kind)))
    sources.update(_source_of(type(m)) for m in model.modules())
    code = hashlib.sha256()
    for source in sorted(sources):
        code.update(source.encode())
    structure = hashlib.sha256(repr(model).encode())
    for name, module in model.named_modules():
        settings = {k: v for k, v in vars(module).items() if _plain_setting(k, v)}
        structure.update(f"{name}:{sorted(settings.items())!r};".encode())
    return {"factory": factory, "structure": structure.hexdigest(), "code": code.hexdigest()}


def _plain_setting(key: str, value: object) -> bool:
    """Whether an attribute of a module is a setting its ``forward`` may read and whose
    ``repr`` is stable across runs: a public number, string, flag or tuple/list of them."""
    if key.startswith("_") or key == "training":
        return False
    if isinstance(value, (tuple, list)):
        return all(_plain_setting("x", v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _source_of(obj: object) -> str:
    """A digest of the source file defining ``obj`` (a module or class), else of its source
    text, else its qualified name."""
    try:
        path = inspect.getsourcefile(obj)  # type: ignore[arg-type]
        if path is not None:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except (TypeError, OSError):
        pass
    try:
        return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()  # type: ignore[arg-type]
    except (TypeError, OSError):
        return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', obj)}"


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA if available, else CPU) or a torch device name (``cpu``, ``cuda:1``).

    Raises:
        ConfigError: for a malformed name, or CUDA requested where there is none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"--device: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but CUDA is not available")
    return device
