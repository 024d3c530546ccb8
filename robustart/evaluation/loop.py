"""The one loop of every evaluation: a model's logits over a dataset, batch by batch.

Every evaluation of robustart (the epoch-end suites, ``robustart benchmark``, the on-disk
benchmark families, transfer and system noise) gets its images and logits from here, so eval
mode, the device, inference mode, progress, finite-logit checks and DDP sharding are written
once.

Sharding: a dataset is cut into fixed-size chunks of consecutive items (global chunk ids);
process ``rank`` of ``world_size`` takes the chunks ``rank, rank + world_size, ...``. Counts
summed over processes (:func:`sum_over_processes`) are therefore exactly those of one device,
with no ``DistributedSampler`` padding, and randomness seeded by chunk id is the same wherever a
chunk runs.

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> data = TensorDataset(torch.rand(5, 3, 8, 8), torch.tensor([0, 1, 0, 1, 0]))
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))
    >>> [tuple(logits.shape) for logits, _ in iterate_logits(model, data, batch_size=2)]
    [(2, 2), (2, 2), (1, 2)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from robustart.attacks.base import as_model_input
from robustart.errors import ConfigError
from robustart.utils import (
    Progress,
    check_finite_logits,
    check_logits_shape,
    check_model_consistency,
    preserve_mode,
    track_progress,
    warn_if_one_class,
)

#: ``(chunk_id, images (N, C, H, W), labels (N,))`` of one chunk.
Chunk = tuple[int, Tensor, Tensor]
#: Applied to a model's logits before they are scored (e.g. restricting 1000 ImageNet classes
#: to the 200 of ImageNet-R).
OutputTransform = Callable[[Tensor], Tensor]
#: Applied to a batch of images on the model's device before the forward pass; may add a
#: variant dimension, (B, C, H, W) → (B, V, C, H, W).
InputTransform = Callable[[Tensor], Tensor]


def model_device(model: nn.Module, device: torch.device | str | None = None) -> torch.device:
    """``device`` if given, else the device of the model's first parameter (CPU without one)."""
    if device is not None:
        return torch.device(device)
    parameter = next(iter(model.parameters()), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def distributed_rank_and_size() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` without ``torch.distributed``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def sum_over_processes(tensor: Tensor) -> Tensor:
    """``tensor`` summed over all DDP processes (itself on one process)."""
    if distributed_rank_and_size()[1] > 1:
        tensor = tensor.clone()
        torch.distributed.all_reduce(tensor)
    return tensor


# ----------------------------------------------------------------------------- subsets
def evenly_spaced_indices(total: int, limit: int | None) -> list[int]:
    """``limit`` indices spread evenly over ``range(total)``, starting at 0 (all of them when
    ``limit`` is ``None`` or at least ``total``).

    Example:
        >>> evenly_spaced_indices(10, 4)
        [0, 2, 5, 7]
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"the image limit must be >= 1, got {limit}")
    if limit is None or limit >= total:
        return list(range(total))
    return [i * total // limit for i in range(limit)]


def limit_dataset(dataset: Dataset, limit: int | None) -> Dataset:
    """At most ``limit`` items of ``dataset``, evenly spaced (:func:`evenly_spaced_indices`), for
    quick runs; ``dataset`` itself when it is not larger.

    Evenly spaced rather than the first ``limit``: class folders are read in class order, so the
    first items would cover only the first classes. Datasets of the same length give the same
    positions, so a corruption set and its clean test set keep matching images.
    """
    total = len(dataset)  # type: ignore[arg-type]
    if limit is None or limit >= total:
        evenly_spaced_indices(total, limit)  # checks the value
        return dataset
    return Subset(dataset, evenly_spaced_indices(total, limit))


# ----------------------------------------------------------------------------- chunks
def chunk_ids_for_rank(num_items: int, chunk_size: int, rank: int, world_size: int) -> list[int]:
    """Global chunk indices that process ``rank`` of ``world_size`` evaluates.

    Example:
        >>> chunk_ids_for_rank(10, 3, rank=1, world_size=2)
        [1, 3]
    """
    num_chunks = -(-num_items // chunk_size)
    return list(range(rank, num_chunks, world_size))


def iterate_batches(
    dataset: Dataset,
    chunk_size: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(chunk_id, batch)`` for this rank's chunks of ``dataset`` (batches as a
    ``DataLoader`` collates them)."""
    n = len(dataset)  # type: ignore[arg-type]
    ids = chunk_ids_for_rank(n, chunk_size, rank, world_size)
    indices = [i for c in ids for i in range(c * chunk_size, min((c + 1) * chunk_size, n))]
    if not indices:
        return
    loader = DataLoader(
        Subset(dataset, indices), batch_size=chunk_size, shuffle=False, num_workers=num_workers
    )
    # All chunks but the globally last one are full, so loader batch k is chunk ids[k].
    yield from zip(ids, loader)


def iterate_chunks(
    dataset: Dataset,
    chunk_size: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
) -> Iterator[Chunk]:
    """Yield ``(chunk_id, images, labels)`` for this rank's chunks of a dataset of
    ``(image, label)`` items."""
    for chunk_id, (images, labels) in iterate_batches(
        dataset, chunk_size, rank, world_size, num_workers
    ):
        yield chunk_id, images, torch.as_tensor(labels)


class CachedChunks:
    """Keeps the chunks of a subset in host memory after the first pass (small subsets)."""

    def __init__(self, make: Callable[[], Iterable[Chunk]], max_bytes: int = 1 << 30) -> None:
        self.make = make
        self.max_bytes = max_bytes
        self._cache: list[Chunk] | None = None

    def __iter__(self) -> Iterator[Chunk]:
        if self._cache is not None:
            yield from self._cache
            return
        kept: list[Chunk] = []
        size = 0
        for chunk in self.make():
            size += chunk[1].numel() * chunk[1].element_size()
            if size <= self.max_bytes:
                kept.append(chunk)
            yield chunk
        if size <= self.max_bytes:
            self._cache = kept


# ----------------------------------------------------------------------------- logits
def batch_logits(model: Callable[[Tensor], Tensor], images: Tensor, what: str = "") -> Tensor:
    """Logits (N, K) of one batch already on the model's device: an ``nn.Module`` in eval mode
    (restored afterwards), no gradients, checked finite.

    Raises:
        NonFiniteError: NaN or infinite logits (``what`` names the model and the images).
    """
    with torch.no_grad():
        if isinstance(model, nn.Module):
            with preserve_mode(model, train=False):
                logits = model(as_model_input(model, images))
        else:
            logits = model(images)
    check_logits_shape(logits, len(images))
    check_finite_logits(logits, f"the logits of {what}" if what else "the model's logits")
    return logits


def iterate_logits(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    output_transform: OutputTransform | None = None,
    progress: Progress | None = None,
    input_transform: InputTransform | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield ``(logits, labels)`` per batch of ``dataset``, with the model in eval mode (restored
    afterwards), on its device and under ``torch.inference_mode``.

    Items are ``(image, label)`` or a bare image tensor (``labels`` is then ``None``). An item
    may hold several images, e.g. the frames of a perturbation sequence (F, C, H, W) or the
    variants of a system-noise image: the model sees them flattened and the logits come back
    as (B, F, K).

    Args:
        model: Images in [0, 1] → logits (N, K).
        dataset: The items, in a fixed order.
        batch_size: Items per forward pass (and per DDP chunk).
        device: Where the model runs (default: the device of its parameters).
        num_workers: DataLoader workers.
        output_transform: Applied to the logits (N, K) before they are checked and yielded.
        progress: A bar advanced once per batch (see :func:`~robustart.utils.track_progress`).
        input_transform: Applied to each batch of images on the device before the model.
        rank: This process's rank; it evaluates only its chunks (:func:`chunk_ids_for_rank`).
        world_size: Number of processes sharing the dataset.

    Yields:
        ``(logits (B, K) or (B, F, K), labels (B,) or None)``, both on the model's device.

    Raises:
        NonFiniteError: the model's logits are NaN or infinite for some image.
        CorruptImageError: an image file of ``dataset`` cannot be decoded (from a worker
            process its message carries the worker's traceback).
    """
    device = model_device(model, device)
    num_chunks = len(chunk_ids_for_rank(len(dataset), batch_size, rank, world_size))  # type: ignore[arg-type]
    batches = iterate_batches(dataset, batch_size, rank, world_size, num_workers)
    first = True
    with preserve_mode(model, train=False), torch.inference_mode():
        for _, batch in track_progress(batches, progress, total=num_chunks):
            if isinstance(batch, Tensor):
                images, labels = batch, None
            else:
                images, labels = batch[0], torch.as_tensor(batch[1]).to(device)
            images = images.to(device, non_blocking=True)
            if input_transform is not None:
                images = input_transform(images)
            lead = images.shape[:-3]
            flat = images.flatten(0, len(lead) - 1) if len(lead) > 1 else images
            logits = model(as_model_input(model, flat))
            check_logits_shape(logits, len(flat))
            if first:  # once per evaluation: two forward passes of two images
                check_model_consistency(model, flat, logits, "the model's outputs")
                if labels is not None and len(lead) == 1:
                    warn_if_one_class(logits, labels, "the first batch's images")
                first = False
            if output_transform is not None:
                logits = output_transform(logits)
            check_finite_logits(logits)
            yield logits.view(*lead, logits.shape[-1]), labels
