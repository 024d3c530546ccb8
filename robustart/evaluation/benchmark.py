"""``robustart.benchmark``: any models, one suite, one call; resumable, and the same numbers on
one device or under DDP.

A benchmark runs every *item* of a suite on every model and stores each (model, item) result
as soon as it finishes, keyed by everything that defines it. The items of a suite:

============================  =================================================================
``clean``                     clean accuracy (always run first)
``attack/<label>``            one attack at each of its budgets (``attacks:`` of the suite)
``corruption/<name>``         one corruption at each severity, generated on the fly
``<section>/<label>``         any further section of the robustness suite (e.g. the minimal-ε
                              search)
``system_noise``              resize round trips (24-48 px, three interpolations) of the images
``shift/<benchmark>``         an on-disk set of :mod:`robustart.evaluation.benchmarks`
                              (CIFAR-10-C, ImageNet-A, ..., ``optional: true`` to skip it with a
                              note when its files are missing)
============================  =================================================================

A benchmark suite (:mod:`robustart.evaluation.items`) is a robustness suite with two more
keys::

    attacks: [{name: pgd, norm: linf, eps: [8/255], steps: 10}]
    corruptions: [gaussian_noise, fog]
    severities: [1, 3, 5]
    system_noise: true
    shift:
      - {benchmark: cifar10-c, data_root: data/CIFAR-10-C, optional: true}

Resuming: a result is stored under ``<output>/items/<weights checksum>/<item hash>.json`` where
the hash covers the model (its weights, its spec without the weights file, its structure and the
source of its classes and factory: :func:`~robustart.models.loading.model_identity`), the
item's settings (with every default of the attack), the data, split, subset size, seed, chunk
size and robustart's version. An interrupted benchmark continues where it
stopped; a changed setting recomputes only the items it affects. Randomness is seeded per
(seed, test, chunk), so a resumed or sharded benchmark gives exactly the numbers of an
uninterrupted single-device one.

Example:
    >>> import robustart
    >>> from robustart.models import create_model
    >>> model = create_model("resnet20", 10, weights="zoo:digits_resnet20_pgd_at")
    >>> result = robustart.benchmark(model, "digits", "quick", num_images=64)  # doctest: +SKIP
    >>> print(result.leaderboard().text())  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from robustart.errors import ConfigError, EmptyInputError
from robustart.evaluation.items import (
    BenchmarkSuite,
    CheckedLogits,
    Context,
    Item,
    build_items,
    check_items_run,
    load_benchmark_suite,
    to_json,
)
from robustart.evaluation.loop import distributed_rank_and_size, limit_dataset
from robustart.evaluation.results import BenchmarkResult, ItemStore, ModelResult, library_versions
from robustart.utils import check_output_dir

__all__ = ["BenchmarkResult", "BenchmarkSuite", "benchmark", "load_benchmark_suite"]


ModelLike = nn.Module | str


def benchmark(
    models: ModelLike | Sequence[ModelLike] | Mapping[str, ModelLike],
    data: str | Any = "digits",
    suite: str | os.PathLike | Mapping[str, Any] | BenchmarkSuite = "quick",
    *,
    data_root: str | None = None,
    split: str = "test",
    num_images: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device | None = None,
    output: str | os.PathLike | None = None,
    arch: str | None = None,
    num_workers: int = 0,
    progress: bool = True,
    on_item: Callable[[str, str, dict[str, Any]], None] | None = None,
    whole_split_if_smaller: bool = False,
) -> BenchmarkResult:
    """Evaluate ``models`` on every item of ``suite``.

    Args:
        models: An ``nn.Module`` mapping images in [0, 1] (N, C, H, W) to logits (normalising
            itself), a model spec (``zoo:NAME``, a checkpoint, ``timm:NAME@FILE``, ... see
            :mod:`robustart.models.loading`), or a list or ``{name: model}`` mapping of them.
        data: A dataset name (``digits``, ``cifar10``, ``cifar100``, ``imagenet``), a robustart
            datamodule, or a ``Dataset`` of ``(image (C, H, W) in [0, 1], label)`` items.
        suite: A shipped suite's name (``quick``, ``autoattack_linf``, ...), a YAML file, a
            mapping or a :class:`BenchmarkSuite`.
        data_root: Where the dataset's files are (CIFAR, ImageNet).
        split: The datamodule's split to evaluate.
        num_images: Size of the fixed seeded subset of the split (``None``: all images); more
            than the split holds is refused.
        batch_size: Images per chunk (part of the results' identity: randomness is per chunk).
        seed: Seed of the subset and of every random test.
        device: ``"auto"``/``None`` (CUDA when available), ``"cpu"``, ``"cuda:1"``, ...
        output: Folder of the results; item results are stored there as they finish, and a
            later call with the same folder reuses every result whose settings are unchanged.
        arch: Architecture of plain state-dict files among ``models``.
        num_workers: DataLoader workers.
        progress: Show progress bars.
        on_item: Called as ``(model name, item key, result)`` after each item (computed or
            reused).
        whole_split_if_smaller: Take ``num_images`` as an upper bound (a default, not a
            request): a smaller split is evaluated whole instead of being refused.

    Returns:
        A :class:`BenchmarkResult`; with ``output`` it is also written there (rank zero).

    Raises:
        ConfigError: an unknown suite item or dataset, a bad model spec, a model whose outputs
            do not match the data's classes (or a shift entry's), a suite with nothing beside
            clean accuracy, more images than the split holds, a missing non-optional on-disk
            set; all checked before any model is evaluated. Also a model whose output width
            changes with the batch (when it happens).
        DatasetNotFoundError: every item beside clean accuracy was skipped (optional on-disk
            sets that are missing).
        NonFiniteError: a model's logits are NaN or infinite (no accuracy is reported).
    """
    from robustart.models.loading import (
        check_model_outputs,
        load_models,
        model_identity,
        model_names,
        resolve_device,
        state_checksum,
    )

    suite = suite if isinstance(suite, BenchmarkSuite) else load_benchmark_suite(suite)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if num_images is not None and num_images < 1:
        raise ConfigError(f"num_images must be >= 1, got {num_images}")
    device = resolve_device("auto" if device is None else str(device))
    if output is not None:
        check_output_dir(output, "the benchmark's output folder")
    entries = _model_entries(models)
    datamodule, subset, data_name = evaluation_data(
        data, data_root, split, num_images, seed, whole_split_if_smaller
    )
    if len(subset) == 0:  # type: ignore[arg-type]
        raise EmptyInputError(f"the {split} split of {data_name} holds no images")
    items = build_items(suite, num_images, batch_size, device)
    checked = [(item, item.check()) for item in items]  # every on-disk set, before any work
    notes = [note for _, note in checked if note]
    items = [item for item, note in checked if not note]  # a note means: skipped
    check_items_run(suite.name, items, notes)
    rank, world = distributed_rank_and_size()
    settings = {
        "suite": suite.name,
        "data": data_name,
        "split": split,
        "num_images": len(subset),  # type: ignore[arg-type]
        "seed": seed,
        "batch_size": batch_size,
        "world_size": world,
        "device": str(device),
        "suite_spec": to_json(suite.spec),
    }
    common = {
        "data": data_name,
        "split": split,
        "num_images": len(subset),  # type: ignore[arg-type]
        "seed": seed,
        "chunk_size": batch_size,
        "robustart": library_versions()["robustart"],
    }
    store = ItemStore(None if output is None else Path(output) / "items")

    # Load every model before evaluating any (a bad spec fails now, not after hours).
    spec_names = model_names([s if isinstance(s, str) else "model" for _, s in entries])
    loaded: dict[str, tuple[str, nn.Module, dict[str, str], int]] = {}
    for (given, source), default in zip(entries, spec_names):
        name = given or (default if isinstance(source, str) else _module_name(source, loaded))
        if isinstance(source, str):
            if datamodule is None:
                raise ConfigError(
                    f"model {source!r} is a spec: give data as a dataset name or datamodule "
                    "(its classes and normalisation are needed to load it)"
                )
            (model,) = load_models(
                {name: source}, datamodule, data_name, "pass --data {trained_on}", arch=arch
            ).values()
            identity = model_identity(source, model)
        else:
            model, source = source, f"<{type(source).__name__}>"
            if datamodule is not None:  # it records neither its classes nor its input
                image, _ = subset[0]
                check_model_outputs(
                    model, f"model {name!r}", _num_classes(datamodule), tuple(image.shape)
                )
            identity = model_identity(None, model)
        if name in loaded:
            raise ConfigError(f"two models are named {name!r}: give distinct names")
        classes = _num_classes(datamodule) or _output_width(model, subset)
        for item in items:  # e.g. a shift set of other classes, refused before any work
            item.check_model(classes, f"model {name!r}")
        loaded[name] = (source, model, identity, classes)

    from tqdm.auto import tqdm

    results: dict[str, ModelResult] = {}
    reused: list[str] = []
    for name, (source, model, model_id, classes) in loaded.items():
        model = model.to(device)  # the loops set eval mode and restore the model's own
        checksum = state_checksum(model)
        result = ModelResult(name, source, checksum, sum(p.numel() for p in model.parameters()))
        checked_model = CheckedLogits(model, classes, f"model {name!r}")
        context = Context(
            checked_model, subset, device, seed, batch_size, num_workers, progress, classes
        )
        bar = tqdm(items, desc=name, disable=not progress or rank != 0, dynamic_ncols=True)
        for item in bar:
            bar.set_postfix_str(item.key, refresh=False)
            identity = store.identity(item, common, checksum, model_id)
            record = _shared(store.load(identity) if rank == 0 else None)
            if record is None:
                record = _run_item(item, context, rank)
                if rank == 0:
                    store.save(identity, record)
            else:
                reused.append(f"{name}/{item.key}")
            result.items[item.key] = {k: record[k] for k in ("settings", "result", "seconds")}
            if on_item is not None:
                on_item(name, item.key, record["result"])
        results[name] = result
    outcome = BenchmarkResult(settings, results, notes, reused)
    if output is not None and rank == 0:
        outcome.save(output)
    return outcome


def _run_item(item: Item, context: Context, rank: int) -> dict[str, Any]:
    start = time.perf_counter()
    if item.sharded:
        value = item.run(context)
    else:  # rank zero evaluates; the others receive its result
        value = _shared(item.run(context) if rank == 0 else None)
    return {"settings": item.settings, "result": value, "seconds": time.perf_counter() - start}


def _shared(value: Any) -> Any:
    """``value`` of rank zero, on every process (itself without DDP)."""
    if distributed_rank_and_size()[1] == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _model_entries(models: Any) -> list[tuple[str | None, ModelLike]]:
    if isinstance(models, (nn.Module, str)):
        return [(None, models)]
    if isinstance(models, Mapping):
        return [(str(k), v) for k, v in models.items()]
    entries = [(None, m) for m in models]
    if not entries:
        raise ConfigError("no models to benchmark")
    return entries


def _module_name(model: nn.Module, taken: Mapping[str, Any]) -> str:
    base = type(model).__name__
    name, k = base, 2
    while name in taken:
        name, k = f"{base}#{k}", k + 1
    return name


def evaluation_data(
    data: Any,
    root: str | None,
    split: str,
    num_images: int | None,
    seed: int,
    whole_split_if_smaller: bool = False,
) -> tuple[Any, Dataset, str]:
    """``(datamodule or None, the evaluated subset, the data's name)``.

    Raises:
        ConfigError: an unknown dataset or split, or ``num_images`` larger than the split
            (unless ``whole_split_if_smaller``).
    """
    from robustart.data.base import RobustartDataModule
    from robustart.data.named import create_datamodule

    if isinstance(data, str):
        name, data = data, create_datamodule(data, root)
    elif isinstance(data, RobustartDataModule):
        name = type(data).__name__.removesuffix("DataModule").lower()
    elif isinstance(data, Dataset):
        name = type(data).__name__
        limited = limit_dataset(data, num_images)
        _check_subset_size(limited, num_images, whole_split_if_smaller, f"the {name}")
        return None, limited, name
    else:
        raise ConfigError(
            f"data must be a dataset name, a robustart datamodule or a Dataset, got {data!r}"
        )
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split must be train, val or test, got {split!r}")
    return data, evaluation_subset(data, split, num_images, seed, whole_split_if_smaller), name


def evaluation_subset(
    datamodule: Any,
    split: str,
    num_images: int | None,
    seed: int,
    whole_split_if_smaller: bool = False,
) -> Dataset:
    """The datamodule's fixed, seeded subset of ``num_images`` images of ``split``.

    Args:
        datamodule: A robustart datamodule.
        split: ``train``, ``val`` or ``test``.
        num_images: Images (``None``: the whole split).
        seed: Seed of the selection.
        whole_split_if_smaller: ``num_images`` is a default upper bound, not a request: a
            smaller split is taken whole.

    Raises:
        ConfigError: ``num_images`` is larger than the split (unless
            ``whole_split_if_smaller``): a silently smaller subset would be reported as the
            requested one.
    """
    subset = datamodule.robustness_subset(split, num_images, seed)
    what = f"the {split} split of {type(datamodule).__name__.removesuffix('DataModule')}"
    _check_subset_size(subset, num_images, whole_split_if_smaller, what)
    return subset


def _check_subset_size(
    subset: Dataset, num_images: int | None, whole_split_if_smaller: bool, what: str
) -> None:
    size = len(subset)  # type: ignore[arg-type]
    if num_images is not None and num_images > size and not whole_split_if_smaller:
        raise ConfigError(
            f"{num_images} images requested but {what} holds only {size}: ask for at most "
            f"{size} (or for all of them)"
        )


def _num_classes(datamodule: Any) -> int:
    return int(getattr(datamodule, "num_classes", 0) or 0)


def _output_width(model: nn.Module, subset: Dataset) -> int:
    """The classes ``model`` predicts (the width of its logits on the first image), for data
    that does not say how many classes it has."""
    from robustart.attacks.base import as_model_input
    from robustart.utils import preserve_mode

    image, _ = subset[0]
    first = next(iter(model.parameters()), None)
    device = torch.device("cpu") if first is None else first.device
    images = torch.as_tensor(image, device=device).float()[None]
    with preserve_mode(model, False), torch.no_grad():
        logits = model(as_model_input(model, images))
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ConfigError(f"the model returned {got} for one image, not logits (1, classes)")
    return int(logits.shape[1])
