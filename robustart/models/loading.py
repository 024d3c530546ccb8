"""Loading the models that the evaluation commands compare (``robustart transfer``,
``robustart shift``): Lightning checkpoints or model-zoo entries, their display names and the
device they run on.

Checkpoints are untrusted input: they are read with ``weights_only=True`` and their recorded
architecture and number of classes are checked against their weights and the evaluation data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from robustart.errors import CheckpointError, ConfigError

__all__ = ["display_names", "load_model", "model_names", "resolve_device"]


def load_model(
    spec: str,
    num_classes: int,
    in_channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    dataset: str | None = None,
    dataset_hint: str = "evaluate it on {trained_on} data",
) -> nn.Module:
    """Load a classifier from a Lightning checkpoint or a model-zoo entry, in eval mode.

    Args:
        spec: ``zoo:<name>`` (checksum verified; normalised with ``mean``/``std``) or a
            Lightning ``.ckpt`` written by ``robustart fit`` (read with ``weights_only=True``;
            the architecture comes from the checkpoint and is checked against its weights;
            the normalisation is the one the model was trained with).
        num_classes: Classes of the evaluation data; the model must have as many.
        in_channels: Image channels of the evaluation data.
        mean: Normalisation mean of the data (zoo models).
        std: Normalisation std of the data (zoo models).
        dataset: Name of the evaluation data, checked against a zoo entry's ``dataset``.
        dataset_hint: What to do when a zoo entry was trained on other data, appended to the
            error; ``{trained_on}`` is replaced by the entry's dataset (``robustart transfer``
            says ``pass --data {trained_on}``).

    Raises:
        UnknownNameError: an unknown zoo entry (close names suggested).
        CheckpointError: a missing, unsafe, corrupt or mismatched checkpoint.
        ConfigError: a model made for another number of classes or dataset.
    """
    from robustart.models import create_model, zoo
    from robustart.models.weights import extract_state_dict, load_checkpoint_file, load_into
    from robustart.tasks.classification import check_checkpoint_matches

    if spec.startswith(zoo.ZOO_PREFIX):
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
                f"zoo model {name!r} has {entry['num_classes']} classes but the data has "
                f"{num_classes}"
            )
        model = create_model(
            entry["model"], num_classes, in_channels, mean=mean, std=std, weights=spec
        )
        return model.eval()

    path = Path(spec)
    checkpoint = load_checkpoint_file(path)  # weights_only; CheckpointError if missing/unsafe
    if "state_dict" not in checkpoint:
        keys = [k for k, v in checkpoint.items() if isinstance(v, torch.Tensor)]
        what = (
            f"a plain state dict ({len(keys)} tensors, e.g. {', '.join(keys[:3])}) that does not "
            "record its architecture"
            if keys
            else "no 'state_dict'"
        )
        raise CheckpointError(
            f"{path} is not a Lightning checkpoint ({what}); pass a .ckpt written by "
            "`robustart fit` or a zoo:<name> entry. "
            "To evaluate plain weights, train or fine-tune from them with `robustart fit "
            "--model.init_args.weights FILE` (which checks them against the architecture) and "
            "pass the resulting checkpoint."
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
    model = create_model(arch, num_classes, channels, **(hparams.get("model_kwargs") or {}))
    # The whole wrapper is loaded, normalisation buffers included: the checkpoint normalises
    # its input the way it was trained to.
    load_into(model, extract_state_dict(checkpoint), str(path), arch)
    return model.eval()


def model_names(specs: Sequence[str]) -> list[str]:
    """Short unique display names: a zoo entry's name, or the checkpoint's run folder and file
    stem (``digits_pgd_at/version_0:last``)."""
    names: list[str] = []
    for spec in specs:
        if spec.startswith("zoo:"):
            name = spec[len("zoo:") :]
        else:
            path = Path(spec)
            if path.parent.name == "checkpoints" and len(path.parents) >= 3:
                name = f"{path.parents[2].name}/{path.parents[1].name}:{path.stem}"
            else:
                name = path.stem
        base, k = name, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    return names


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
