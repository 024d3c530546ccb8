"""Small helpers shared across robustart: input checks, budgets, seeds, atomic files and
progress reporting."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from robustart.errors import ConfigError, InputRangeError, OutputError, RobustartWarning

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
    if channels_last_layout(images):
        raise InputRangeError(
            f"{what} look channels-last (N, H, W, C): got shape {tuple(images.shape)}. robustart "
            "expects (N, C, H, W); convert with `images.permute(0, 3, 1, 2)`"
        )
    if images.shape[1] == 0 or images.shape[2] == 0 or images.shape[3] == 0:
        raise InputRangeError(
            f"{what} have an empty side: shape {tuple(images.shape)} (N, C, H, W) needs at "
            "least one channel and one pixel in each direction"
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


#: Channel counts robustart's images can have (grey, grey + alpha, RGB, RGBA).
CHANNEL_COUNTS = (1, 2, 3, 4)


def channels_last_layout(images: Tensor) -> bool:
    """Whether a 4-D batch is laid out (N, H, W, C) rather than (N, C, H, W).

    True when the last dimension is a channel count (1..4) and dimension 1 is not: e.g.
    (8, 32, 32, 3). A batch whose dimension 1 is a channel count is taken as NCHW.
    """
    return (
        images.ndim == 4
        and images.shape[1] not in CHANNEL_COUNTS
        and images.shape[-1] in CHANNEL_COUNTS
    )


def check_labels(
    labels: Tensor, num_images: int, num_classes: int | None = None, what: str = "labels"
) -> None:
    """Check class labels before they are scored.

    Args:
        labels: Integer tensor of shape (N,) with values in [0, num_classes).
        num_images: N, the number of images the labels belong to.
        num_classes: Number of classes of the model (the width of its logits); ``None`` skips
            the upper bound.
        what: Name used in the error message.

    Raises:
        InputRangeError: soft or float labels, a wrong shape, or values out of range (which
            would otherwise be scored silently as wrong predictions).
    """
    if not isinstance(labels, Tensor):
        raise InputRangeError(f"{what} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise InputRangeError(
            f"{what} must be integer class indices, got dtype {labels.dtype}"
            + (
                "; soft labels (N, K) are for training losses, not for scoring"
                if labels.ndim == 2
                else ""
            )
        )
    if labels.ndim != 1 or labels.shape[0] != num_images:
        raise InputRangeError(
            f"{what} must have shape ({num_images},), one per image, got {tuple(labels.shape)}"
        )
    if labels.numel() == 0:
        return
    lo, hi = (int(v) for v in torch.aminmax(labels.detach()))
    if lo < 0 or (num_classes is not None and hi >= num_classes):
        bound = (
            f"lie in [0, {num_classes - 1}] for a model with {num_classes} classes"
            if num_classes is not None
            else "be >= 0"
        )
        raise InputRangeError(
            f"{what} must {bound}, got values in [{lo}, {hi}]. Check that the dataset and the "
            "model agree on the classes (a 1000-class label on a 200-class model, or -1 for "
            "'unlabelled')."
        )


def check_logits_shape(logits: Any, num_images: int, what: str = "the model's outputs") -> None:
    """Refuse model outputs that are not logits ``(N, K)`` of ``N`` images and ``K ≥ 2``
    classes, before they are scored.

    A tuple or dict (auxiliary heads, Hugging Face outputs), a flat ``(N,)`` vector or integer
    outputs otherwise end in an ``IndexError`` deep in a metric; one output column is worse:
    ``argmax`` over it is always class 0, so every accuracy would be the share of label 0
    (100 % on a set labelled 0, under every attack).

    Args:
        logits: What the model returned for ``num_images`` images.
        num_images: N.
        what: Names the outputs in the message.

    Raises:
        InputRangeError: naming what was returned and what is expected.

    Example:
        >>> check_logits_shape(torch.zeros(4, 10), 4)  # fine
        >>> try:
        ...     check_logits_shape(torch.zeros(4, 1), 4)
        ... except InputRangeError as error:
        ...     print(str(error)[:45])
        the model's outputs have one column per image
    """
    if not isinstance(logits, Tensor):
        raise InputRangeError(
            f"{what} must be a tensor of logits (N, classes), got a {type(logits).__name__}: "
            "return the logits only (e.g. the first element of a tuple, or `outputs.logits`)"
        )
    if not logits.is_floating_point():
        raise InputRangeError(
            f"{what} must be floating-point logits (N, classes), got dtype {logits.dtype}: "
            "return the logits, not predicted classes"
        )
    if logits.ndim != 2 or logits.shape[0] != num_images:
        raise InputRangeError(
            f"{what} must be logits of shape (N, classes) = ({num_images}, K) for {num_images} "
            f"images, got {tuple(logits.shape)}"
        )
    if logits.shape[1] < 2:
        raise InputRangeError(
            f"{what} have one column per image: a classifier needs one logit per class (at "
            "least two); argmax over one column is always class 0, so every accuracy would be "
            "the share of label 0. For a binary model with one logit z, return "
            "torch.cat([-z, z], dim=1) / 2"
        )


def check_finite_logits(
    logits: Tensor,
    what: str = "the model's logits",
    advice: str = "Evaluate an earlier, finite checkpoint.",
) -> None:
    """Refuse to score predictions made from NaN or infinite logits.

    ``argmax`` of a NaN row is an arbitrary class, so an accuracy computed from such logits is
    a number for a broken model.

    Raises:
        NonFiniteError: naming how many rows are affected and what to do.
    """
    from robustart.errors import NonFiniteError

    bad = (
        ~torch.isfinite(logits.detach()).all(dim=-1)
        if logits.ndim > 1
        else ~torch.isfinite(logits.detach())
    )
    count = int(bad.sum())
    if count:
        raise NonFiniteError(
            f"{what} are NaN or infinite for {count} of {bad.numel()} images: the model is "
            "numerically broken (diverged training, or weights/inputs out of range), so no "
            f"accuracy is reported. {advice}"
        )


#: How far (relative to the largest logit, plus 1) the logits of images evaluated alone may
#: differ from the same images' logits within their batch, or from a second run on the same
#: images: float rounding and TF32 stay far below; batch statistics (BatchNorm in training
#: mode) and dropout left on go far above.
CONSISTENCY_TOLERANCE = 0.05


def check_model_consistency(
    forward: Callable[[Tensor], Tensor], images: Tensor, logits: Tensor, what: str
) -> None:
    """Refuse a model whose outputs are not a function of each image alone.

    Three faults make every accuracy of a model meaningless while it still looks plausible:

    * it normalises its input **in place**, so the images a suite goes on to attack or
      corrupt are no longer the images in [0, 1] (and autograd fails later, far from the
      cause);
    * its outputs are **random** from one run to the next on the same images (dropout or
      stochastic depth left on in eval mode): each number is one draw, and attacks see a
      moving target, which overstates robustness unless the gradients are averaged (EOT);
    * its output for an image **depends on the other images of the batch** (BatchNorm in
      training mode or without running statistics, logits centred on the batch): it would
      score differently at every ``--batch-size``.

    The first two images are run alone, twice, on copies (two extra forward passes of two
    images) and compared with each other and with their logits within the batch; in a batch
    of one or two images, the first image is run beside its negative ``1 - image`` instead.

    Args:
        forward: The model's forward pass, images (n, C, H, W) → logits (n, K).
        images: (N, C, H, W) batch the ``logits`` were computed on.
        logits: (N, K) logits of ``images``.
        what: Names the model's outputs in the message.

    Raises:
        InputRangeError: the model changed its input, or the logits differ by more than
            :data:`CONSISTENCY_TOLERANCE` of the largest logit (plus 1) between two runs or
            between alone and within the batch.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
        >>> images = torch.rand(4, 3, 2, 2)
        >>> check_model_consistency(model, images, model(images), "the outputs")  # fine
        >>> _ = model.append(torch.nn.Dropout(0.5).train())
        >>> try:
        ...     check_model_consistency(model, images, model(images), "the outputs")
        ... except InputRangeError as error:
        ...     print(str(error)[:44])
        the outputs change from one run to the next
    """
    if len(images) < 1 or logits.ndim != 2 or len(logits) != len(images):
        return  # other checks name outputs that are not (N, K) logits
    if len(images) >= 3:  # the first two images alone: another batch than theirs
        pair, compared = images[:2].detach().clone(), 2
    else:  # a batch of one or two: the first image beside its negative
        pair, compared = torch.stack([images[0], 1 - images[0]]).detach(), 1
    original = pair.clone()
    within = logits[:compared].detach().float()
    if not bool(torch.isfinite(within).all()):
        return  # the NaN check names this
    with torch.no_grad():
        first = forward(pair).detach().float()
        if not torch.equal(pair, original):
            raise InputRangeError(
                f"the model changes its input images in place (e.g. `x.sub_(mean)` in its "
                f"forward), so {what} would be computed on other images than the ones attacked "
                "or corrupted. Make its normalisation out of place (`x = (x - mean) / std`)"
            )
        second = forward(original.clone()).detach().float()
    if first.shape != (2, within.shape[1]) or not bool(torch.isfinite(first).all()):
        return  # other checks name an output shape that depends on the batch, or NaN logits
    first, second = first[:compared], second.reshape(2, -1)[:compared]
    scale = float(within.abs().max()) + 1.0
    rerun = float((first - second).abs().max())
    if not rerun <= CONSISTENCY_TOLERANCE * scale:
        raise InputRangeError(
            f"{what} change from one run to the next on the same images (up to {rerun:.3g} "
            "apart): the model is random in eval mode (dropout or stochastic depth forced on, "
            "noise in its forward), so each accuracy would be one draw and attacks would "
            "overstate its robustness. Evaluate a deterministic model (module.eval() keeping "
            "dropout off)"
        )
    difference = float((first - within).abs().max())
    if not difference <= CONSISTENCY_TOLERANCE * scale:
        raise InputRangeError(
            f"{what} depend on the other images of the batch (the same image in another batch "
            f"gets logits up to {difference:.3g} away from its logits within this batch of "
            f"{len(images)}): the model uses batch statistics (BatchNorm in training mode, or "
            "without running statistics), so its accuracy would change with the batch size. "
            "Evaluate it in eval mode with running statistics"
        )


#: :func:`warn_if_one_class`: the share of the images predicted as one class that is read as a
#: model ignoring its input, where no label holds more than :data:`ONE_CLASS_LABEL_SHARE`.
ONE_CLASS_SHARE = 0.9
ONE_CLASS_LABEL_SHARE = 0.5
#: Fewest images (and distinct labels) :func:`warn_if_one_class` judges.
ONE_CLASS_MIN_IMAGES, ONE_CLASS_MIN_LABELS = 16, 3


def warn_if_one_class(logits: Tensor, labels: Tensor, what: str = "the clean images") -> bool:
    """Warn (:class:`~robustart.errors.RobustartWarning`) when a model predicts one class for
    almost every image of a batch whose labels are spread over several classes.

    Such a model ignores its input: most often it expects other pixels than robustart gives
    it (0–255 values, or images normalised outside the model, where robustart passes [0, 1]
    images and normalisation belongs inside the model), or it is untrained. Every accuracy
    it gets is then that class's share of the labels, under attack and corruption alike,
    which reads as a chance-level but otherwise plausible model. A warning, not an error: a
    model early in training can legitimately do this.

    Args:
        logits: (N, K) outputs on clean images.
        labels: (N,) integer labels.
        what: Names the images in the message.

    Returns:
        Whether it warned.

    Example:
        >>> import warnings
        >>> labels = torch.arange(20) % 5
        >>> with warnings.catch_warnings(record=True):
        ...     warnings.simplefilter("always")
        ...     warn_if_one_class(torch.eye(5)[labels], labels), warn_if_one_class(
        ...         torch.eye(5)[torch.zeros(20, dtype=torch.long)], labels)
        (False, True)
    """
    if len(labels) < ONE_CLASS_MIN_IMAGES or logits.ndim != 2:
        return False
    predictions = logits.detach().argmax(dim=1)
    classes, counts = torch.unique(predictions, return_counts=True)
    label_counts = torch.unique(labels, return_counts=True)[1]
    share, label_share = counts.max().item() / len(labels), label_counts.max().item() / len(labels)
    if (
        share < ONE_CLASS_SHARE
        or len(label_counts) < ONE_CLASS_MIN_LABELS
        or label_share > ONE_CLASS_LABEL_SHARE
    ):
        return False
    top = int(classes[counts.argmax()])
    warnings.warn(
        f"the model predicts class {top} for {share:.0%} of {what} ({len(labels)} images whose "
        f"labels span {len(label_counts)} classes, none over {label_share:.0%}): it ignores its "
        "input, so its accuracies are that class's share of the labels. robustart gives models "
        "images in [0, 1] with normalisation inside the model; a model expecting 0-255 pixels "
        "or normalised inputs sees near-constant images (wrap it: "
        "robustart.models.NormalizedClassifier(model, mean, std)), or it is untrained",
        RobustartWarning,
        stacklevel=2,
    )
    return True


def check_flag(owner: str, name: str, value: Any, accepted: str = "true or false") -> bool:
    """An on/off setting: ``True`` or ``False`` (``1``/``0`` and NumPy booleans too).

    ``bool("false")`` is ``True``, so a string is refused rather than read as on.

    Args:
        owner: What the setting belongs to, for the message (``"augmix"``, ``"attack 'pgd'"``).
        name: The setting's name.
        value: The setting.
        accepted: What the message says is accepted.

    Raises:
        ConfigError: naming the owner, the setting and the value.

    Example:
        >>> check_flag("augmix", "all_ops", 0)
        False
    """
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's boolean too
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{owner}: {name} must be {accepted}, got {value!r}")


def as_tensor_argument(value: Any, name: str) -> Tensor:
    """A metric's array argument as a tensor: tensors pass unchanged, NumPy arrays, lists and
    numbers are converted with NumPy's dtypes (float64 for Python floats).

    Args:
        value: The argument.
        name: Its name, for the error.

    Raises:
        ConfigError: ``value`` holds no numbers (strings, objects, ragged lists).

    Example:
        >>> import numpy as np
        >>> as_tensor_argument(np.array([0.5, 1.0]), "confidence")
        tensor([0.5000, 1.0000], dtype=torch.float64)
        >>> as_tensor_argument([True, False], "correct")
        tensor([ True, False])
        >>> as_tensor_argument([0.1, 0.2], "sizes").dtype
        torch.float64
    """
    if isinstance(value, Tensor):
        return value
    try:  # through NumPy, whose dtypes (float64 for Python floats) keep the values exact
        tensor = torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError) as error:
        raise ConfigError(
            f"{name} must be a tensor, a NumPy array or a list of numbers, got "
            f"{type(value).__name__} ({error})"
        ) from None
    if not (tensor.is_floating_point() or tensor.dtype in _NUMERIC_DTYPES):
        raise ConfigError(f"{name} must hold numbers, got dtype {tensor.dtype}")
    return tensor


_NUMERIC_DTYPES = (
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint16,
    torch.uint32,
    torch.uint64,
)


def looks_like_probabilities(scores: Tensor) -> bool:
    """Whether every row of (N, K) ``scores`` is a probability vector: values in [0, 1] that
    sum to 1, to the rounding of the scores' dtype (1e-4 for float32 and float64, two of its
    epsilons for half precision: a float16 softmax over 1,000 classes sums to 1 ± 5e-4).

    Example:
        >>> logits = torch.randn(4, 1000)
        >>> looks_like_probabilities(logits), looks_like_probabilities(logits.half().softmax(1))
        (False, True)
    """
    if scores.ndim != 2 or scores.numel() == 0:
        return False
    tolerance = max(1e-4, 2 * torch.finfo(scores.dtype).eps) if scores.is_floating_point() else 0
    values = scores.detach().double()
    in_range = bool(((values >= 0) & (values <= 1)).all())
    return in_range and bool(((values.sum(dim=1) - 1).abs() <= tolerance).all())


def check_not_probabilities(logits: Tensor, what: str = "the model's outputs") -> None:
    """Refuse outputs that are probabilities (softmax) instead of logits, where attacks run.

    Attacks and their losses apply their own softmax: on probabilities the cross-entropy
    saturates and its gradients nearly vanish, so attacks fail and the robust accuracy is
    overstated (gradient masking; Carlini et al., 2019). Outputs whose every row is
    non-negative and sums to 1 (within 1e-4) are taken for probabilities. Accuracy alone is
    unaffected, so only the attack paths call this.

    Args:
        logits: (N, K) outputs of one batch.
        what: Names the outputs in the message.

    Raises:
        InputRangeError: all rows look like probability vectors.

    Example:
        >>> check_not_probabilities(torch.tensor([[2.0, -1.0], [0.3, 0.1]]))  # logits: fine
        >>> try:
        ...     check_not_probabilities(torch.tensor([[0.9, 0.1], [0.4, 0.6]]))
        ... except InputRangeError:
        ...     print("refused")
        refused
    """
    if logits.ndim != 2 or len(logits) == 0 or logits.shape[1] < 2:
        return
    if looks_like_probabilities(logits):
        raise InputRangeError(
            f"{what} are probabilities (every row is >= 0 and sums to 1), not logits: attacks "
            "apply their own softmax, and on probabilities their gradients nearly vanish, so "
            "the robust accuracy would be overstated. Return the scores before the softmax "
            "(or their log_softmax)."
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


def eps_key(eps: float, norm: str = "linf") -> str:
    """Write a budget for metric names, without a ``/`` (W&B groups names by ``/``):
    ``8_255`` for L∞ multiples of 1/255 (read "8/255"), else ``%g``.

    Example:
        >>> eps_key(8 / 255)
        '8_255'
        >>> eps_key(0.5, "l2")
        '0.5'
    """
    return format_eps(eps, norm).replace("/", "_")


#: The seeds robustart accepts: those of NumPy and Lightning's ``seed_everything``, which
#: PyTorch's generators also take.
MAX_SEED = 2**32 - 1


def check_seed(seed: Any, what: str = "seed") -> int:
    """Check a user-given seed: an integer from 0 to :data:`MAX_SEED`.

    A larger one made PyTorch's ``manual_seed`` raise an overflow, or Lightning's
    ``seed_everything`` refuse it, only when the first generator was made (for an epoch-end
    evaluation, after the first training epoch).

    Raises:
        ConfigError: naming ``what`` and the range.

    Example:
        >>> check_seed(7)
        7
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(
            f"{what} must be an integer from 0 to {MAX_SEED} (2**32 - 1, the seeds NumPy and "
            f"Lightning accept), got {seed!r}"
        )
    return seed


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


def current_umask() -> int:
    """The process's file-mode creation mask (read without changing it where the OS allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no thread-safe read elsewhere: set and restore at once
    os.umask(mask)
    return mask


def publish_mode(path: str | os.PathLike, replaces: str | os.PathLike | None = None) -> None:
    """Give a temporary file the mode a plain ``open(replaces, "w")`` would leave: the mode of
    the file it replaces if that exists, else 0666 minus the umask (``tempfile.mkstemp``
    creates 0600 files, unreadable to collaborators)."""
    try:
        mode = os.stat(replaces).st_mode & 0o7777 if replaces is not None else None
    except FileNotFoundError:
        mode = None
    os.chmod(path, 0o666 & ~current_umask() if mode is None else mode)


def _temporary_affixes(path: Path) -> dict[str, tuple[str, str]]:
    """``(prefix, suffix)`` of the temporary files (``tempfile.mkstemp``) beside ``path`` of
    :func:`atomic_write_text` (``text``) and :func:`atomic_output` (``output``, keeping the
    extension that writers such as matplotlib choose the format by)."""
    return {"text": (f".{path.name}.", ".tmp"), "output": (f".{path.stem}.", path.suffix)}


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that a killed :func:`atomic_write_text` or
    :func:`atomic_output` of ``path`` left beside it (a kill skips their clean-up); call it
    before writing ``path`` again. Returns the removed files.

    Only names of exactly that form go (``.<name>.<8 random characters>.tmp``,
    ``.<stem>.<8 random characters><suffix>``); a write of ``path`` in progress in another
    process would lose its temporary file, so results folders are not shared between runs
    that write at once.

    Example:
        >>> import pathlib, tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     stale = pathlib.Path(folder) / ".plot.k2j_9xq1.png"
        ...     _ = stale.write_bytes(b"")
        ...     [p.name for p in remove_stale_temporaries(pathlib.Path(folder) / "plot.png")]
        ['.plot.k2j_9xq1.png']
    """
    path = Path(path)
    patterns = [
        re.compile(f"{re.escape(prefix)}[a-z0-9_]{{8}}{re.escape(suffix)}")
        for prefix, suffix in _temporary_affixes(path).values()
    ]
    removed = []
    if path.parent.is_dir():
        for candidate in path.parent.iterdir():
            if any(p.fullmatch(candidate.name) for p in patterns) and candidate.is_file():
                candidate.unlink(missing_ok=True)
                removed.append(candidate)
    return removed


@contextlib.contextmanager
def writing_to(path: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` into an :class:`OutputError` that says
    what happened: the output folder was checked before the work, so it changed while the
    command ran (removed and replaced by a file, full, permissions taken away).

    Raises:
        OutputError: naming the path, the system's reason and what to do.
    """
    try:
        yield
    except OutputError:
        raise
    except OSError as error:
        raise OutputError(
            f"cannot write {os.fspath(path)} ({error.strerror or error}): the output folder "
            "changed while the command ran (removed or replaced by a file, full, or no longer "
            "writable). Results written so far are kept: fix the folder and rerun the same "
            "command to resume"
        ) from None


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: readers see the old or the new file, never half.

    The file gets the permissions of an ordinary write (the user's umask applies), and no
    temporary file is left behind, also when writing fails.

    Raises:
        OutputError: the file cannot be written (:func:`writing_to`).
    """
    path = Path(path)
    with (
        _replaced_atomically(path, "text") as tmp,
        writing_to(path),
        open(tmp, "w", encoding="utf-8") as f,
    ):
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return path


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``.

    Example:
        >>> import pathlib, tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     target = pathlib.Path(folder) / "plot.png"
        ...     with atomic_output(target) as tmp:  # e.g. figure.savefig(tmp)
        ...         _ = tmp.write_bytes(b"png")
        ...     print(target.read_bytes())
        b'png'
    """
    with _replaced_atomically(Path(path), "output") as tmp:
        yield tmp


@contextlib.contextmanager
def _replaced_atomically(path: Path, kind: str) -> Iterator[Path]:
    """A fresh temporary file beside ``path`` (named as :func:`_temporary_affixes` says for
    ``kind``); when the body succeeds it replaces ``path`` with an ordinary file's
    permissions, else it is removed. Folder and rename failures are :class:`OutputError`."""
    with writing_to(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix, suffix = _temporary_affixes(path)[kind]
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
        os.close(fd)
    try:
        yield Path(tmp)
        with writing_to(path):
            publish_mode(tmp, replaces=path)
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Check, before any work starts, that results can be written under ``path``.

    The folder may exist or not; it is not created here. Refused: a path that is a regular
    file, a path below a regular file, and an existing folder (or nearest existing ancestor)
    that is not writable or in which no folder can be made (tried with a temporary folder,
    removed at once).

    Raises:
        ConfigError: naming the path and what to do.
    """
    path = Path(path).expanduser()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is" if probe == path else f"is below {probe}, which is"
        raise ConfigError(
            f"{what} {path} {where} a file, not a folder; choose another path or remove the file"
        )
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{what} {path}: cannot write in {probe} (permission denied); choose a writable path"
        )
    if probe.is_dir():
        # os.access says yes to root everywhere, also in /proc or /sys, where no folder can
        # be made: try making one (and remove it at once).
        try:
            made = tempfile.mkdtemp(prefix=".robustart-write-check-", dir=probe)
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise ConfigError(
                f"{what} {path}: cannot create folders in {probe} ({reason}); choose a "
                "writable path"
            ) from None
        os.rmdir(made)
    return path


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


class CommandParser(argparse.ArgumentParser):
    """``argparse`` for robustart's own subcommands: a usage error raises
    :class:`~robustart.errors.ConfigError`, which the command line prints as one
    ``robustart: error: ...`` line (exit status 2) instead of the usage followed by the error.
    ``--help`` is unchanged."""

    def error(self, message: str) -> Any:  # argparse's signature; never returns
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


#: How every command's last line starts (:func:`announce_results`).
RESULTS_PREFIX = "robustart: results in "


def announce_results(path: str | os.PathLike) -> None:
    """Print where a command's results are, as its last line on stdout:
    ``robustart: results in <path>``.

    Every robustart command (``fit``, ``validate``, ``test``, ``compare``, ``transfer``,
    ``shift``, ``benchmark``) ends with this line, so scripts and people find the outputs in
    the same way. Call it once, on one process (rank zero under DDP).

    Args:
        path: The folder holding the command's outputs.
    """
    print(f"{RESULTS_PREFIX}{os.fspath(path)}", flush=True)


def one_line(message: str) -> str:
    """``message`` on one line: its non-empty lines stripped and joined."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


def read_yaml_file(path: str | os.PathLike, what: str, mapping: bool = True) -> Any:
    """Read a YAML file, refusing a missing, unreadable, unparsable or empty one with a
    one-line :class:`~robustart.errors.ConfigError` that names the file (and the line).

    Args:
        path: The file.
        what: What it is, for messages (``"--config file"``, ``"recipe"``).
        mapping: Also refuse a document that is not a mapping.

    Returns:
        The parsed document.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder, not a YAML file; give the file's path")
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or one_line(str(exc))
        raise ConfigError(f"{what} {path} is not valid YAML{at}: {problem}") from None
    if data is None:
        raise ConfigError(f"{what} {path} is empty; it should be a YAML mapping of settings")
    if mapping and not isinstance(data, dict):
        raise ConfigError(
            f"{what} {path} holds a YAML {type(data).__name__}, not a mapping of settings"
        )
    return data
