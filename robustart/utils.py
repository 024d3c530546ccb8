"""Small helpers shared across robustart: input checks, budgets, seeds, atomic files and
progress reporting."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor, nn

from robustart.errors import ConfigError, InputRangeError

#: Values a little outside [0, 1] that float arithmetic can produce are tolerated.
RANGE_TOLERANCE = 1e-5

T = TypeVar("T")


def check_images(images: Tensor, what: str = "images") -> None:
    """Check that ``images`` is a float NCHW batch with values in [0, 1].

    Args:
        images: Tensor of shape (N, C, H, W).
        what: Name used in the error message.

    Raises:
        InputRangeError: on a wrong dtype, rank or value range, with what to do about it.
    """
    if not isinstance(images, Tensor):
        raise InputRangeError(f"{what} must be a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise InputRangeError(
            f"{what} must be a float tensor in [0, 1], got dtype {images.dtype}; "
            "convert uint8 images with `images.float() / 255`"
        )
    if images.ndim != 4:
        raise InputRangeError(
            f"{what} must have shape (N, C, H, W), got shape {tuple(images.shape)}; "
            "add a batch dimension with `images.unsqueeze(0)`"
        )
    if images.numel() == 0:
        return
    lo, hi = torch.aminmax(images.detach())
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputRangeError(f"{what} contain NaN or infinite values")
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise InputRangeError(
            f"{what} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]. robustart expects "
            "un-normalised images: the model normalises its input itself. Remove Normalize() "
            "from your transforms and pass mean/std to the model instead."
        )


def parse_fraction(value: float | int | str, what: str = "value") -> float:
    """Parse a number written as a float or as a fraction string such as ``"8/255"``.

    Example:
        >>> parse_fraction("8/255") == 8 / 255
        True
        >>> parse_fraction(0.5)
        0.5
    """
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            if "/" in text:
                num, den = text.split("/")
                return float(num) / float(den)
            return float(Fraction(text))
        except (ValueError, ZeroDivisionError):
            pass
    raise ConfigError(f"{what} must be a number or a fraction like '8/255', got {value!r}")


def parse_eps(value: float | int | str, what: str = "eps") -> float:
    """Parse a perturbation budget (``0.03``, ``"8/255"``) and check that it is ≥ 0."""
    eps = parse_fraction(value, what)
    if not math.isfinite(eps) or eps < 0:
        raise ConfigError(f"{what} must be a finite number >= 0, got {value!r}")
    return eps


def format_eps(eps: float, norm: str = "linf") -> str:
    """Format a budget for metric names: ``8/255`` for L∞ multiples of 1/255, else ``%g``.

    Example:
        >>> format_eps(8 / 255)
        '8/255'
        >>> format_eps(0.5, "l2")
        '0.5'
    """
    scaled = eps * 255
    if norm == "linf" and eps > 0 and abs(scaled - round(scaled)) < 1e-6:
        return f"{round(scaled)}/255"
    return f"{eps:g}"


def stable_seed(*parts: Any) -> int:
    """A 31-bit seed derived deterministically from ``parts`` (stable across processes)."""
    text = "/".join(str(p) for p in parts)
    return zlib.crc32(text.encode()) & 0x7FFFFFFF


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator | None:
    """A :class:`torch.Generator` on ``device`` seeded with ``seed`` (``None`` → ``None``)."""
    if seed is None:
        return None
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(int(seed))
    return generator


@contextlib.contextmanager
def preserve_mode(model: nn.Module, train: bool | None) -> Iterator[nn.Module]:
    """Temporarily set ``model`` to train (``True``) or eval (``False``) mode.

    The ``training`` flag of every submodule is restored afterwards, including submodules that
    were deliberately left in a different mode than their parent. ``train=None`` changes nothing.
    """
    flags = [(m, m.training) for m in model.modules()]
    try:
        if train is not None:
            model.train(train)
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: readers see the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``.

    Example:
        >>> with atomic_output("plot.png") as tmp:  # doctest: +SKIP
        ...     figure.savefig(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def as_tuple(values: float | Sequence[float], length: int, what: str) -> tuple[float, ...]:
    """Broadcast a scalar to a ``length``-tuple, or check a sequence has that length."""
    if isinstance(values, (int, float)):
        return (float(values),) * length
    values = tuple(float(v) for v in values)
    if len(values) != length:
        raise ConfigError(f"{what} must have {length} values, got {len(values)}: {values}")
    return values


class Progress(Protocol):
    """What the evaluation loops need of a progress bar (a ``tqdm`` bar has it)."""

    total: float | None

    def update(self, n: float | None = 1) -> bool | None: ...


def track_progress(
    batches: Iterable[T], progress: Progress | None, total: int | None = None
) -> Iterator[T]:
    """Yield the items of ``batches``, advancing ``progress`` by one after each.

    The number of batches (``total``, else ``len(batches)``) is first added to
    ``progress.total``, so one bar can follow several loops whose sizes are only known when they
    start (e.g. the 75 corruption × severity subsets of a -C benchmark).

    Args:
        batches: A sized iterable (a ``DataLoader``, a ``range``) or any iterable with ``total``.
        progress: A bar such as ``tqdm(total=0)``; ``None`` just yields the items.
        total: Number of items, if ``batches`` has no length.

    Example:
        >>> import io
        >>> from tqdm import tqdm
        >>> with tqdm(total=0, file=io.StringIO()) as bar:
        ...     items = list(track_progress(range(3), bar))
        >>> items, bar.total, bar.n
        ([0, 1, 2], 3, 3)
    """
    if progress is None:
        yield from batches
        return
    progress.total = (progress.total or 0) + (len(batches) if total is None else total)  # type: ignore[arg-type]
    for batch in batches:
        yield batch
        progress.update(1)


class FixedTotal:
    """A :class:`Progress` for an evaluation whose number of batches is known in advance.

    It sets the bar's total once and ignores what :func:`track_progress` adds as each loop
    starts, so the bar shows the share of the whole evaluation done rather than of the loops
    started so far.

    Args:
        bar: The progress bar (e.g. ``tqdm``).
        total: Batches of the whole evaluation.
    """

    def __init__(self, bar: Progress, total: int) -> None:
        self.bar = bar
        bar.total = total

    @property
    def total(self) -> float | None:
        return self.bar.total

    @total.setter
    def total(self, value: float | None) -> None:
        pass  # fixed in advance

    def update(self, n: float | None = 1) -> bool | None:
        return self.bar.update(n)


def fixed_total(progress: Progress | None, total: int) -> Progress | None:
    """``progress`` wrapped in :class:`FixedTotal` (``None`` stays ``None``)."""
    return None if progress is None else FixedTotal(progress, total)
