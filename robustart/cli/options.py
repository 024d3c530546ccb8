"""Options shared by the evaluation subcommands (``benchmark``, ``transfer``, ``shift``), so
that every command spells them the same way."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from robustart.errors import ConfigError
from robustart.utils import MAX_SEED, check_seed

#: What a ``MODEL`` argument may be (see :mod:`robustart.models.loading`).
MODEL_HELP = (
    "models: zoo:NAME, a checkpoint written by `robustart fit`, a weights file (.pt, "
    ".safetensors) with --arch, timm:NAME@FILE, torchvision:NAME@FILE, or "
    "package.module:factory[@FILE] (a function returning an nn.Module that takes images in "
    "[0, 1] and normalises them itself). Files are read with weights_only=True or safetensors; "
    "nothing is downloaded"
)


def add_model_options(parser: argparse.ArgumentParser, what: str = "") -> None:
    """Add the positional ``MODEL...`` and ``--names``/``--arch`` to ``parser``.

    Args:
        parser: The subcommand's parser.
        what: Appended to the ``MODEL`` help (e.g. which classes the models must predict).
    """
    parser.add_argument(
        "models", nargs="+", metavar="MODEL", help=MODEL_HELP + (f"; {what}" if what else "")
    )
    parser.add_argument(
        "--names",
        default=None,
        metavar="A,B,...",
        help="comma-separated display names, one per model (default: the zoo or architecture "
        "name, or the checkpoint's run folder and file stem)",
    )
    parser.add_argument(
        "--arch",
        default=None,
        metavar="NAME",
        help="architecture of plain weights files among the models (a robustart model such as "
        "resnet20 or any timm model); normalised with the data's mean and std",
    )


def positive_int(least: int) -> Callable[[str], int]:
    """An argparse type: an integer ≥ ``least``, else a usage error naming the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def seed_value(text: str) -> int:
    """An argparse type: a seed from 0 to 2**32 - 1 (:func:`~robustart.utils.check_seed`)."""
    try:
        return check_seed(int(text))
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(
            f"expected a seed from 0 to {MAX_SEED} (2**32 - 1), got {text!r}"
        ) from None


seed_value.__name__ = "seed"


def add_data_options(
    parser: argparse.ArgumentParser, num_images: int, seed_help: str = "and of random tests"
) -> None:
    """Add ``--data``, ``--data-root``, ``--split``, ``--num-images`` and ``--seed``: the
    evaluation images as a fixed, seeded subset of a named dataset's split."""
    from robustart.data.named import DATAMODULES

    parser.add_argument(
        "--data",
        choices=DATAMODULES.names(),
        default="digits",
        help="evaluation dataset; the models must predict its classes (default: %(default)s)",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        metavar="DIR",
        help="folder holding the dataset's files (CIFAR: the folder with cifar-10-batches-py/ "
        "or cifar-100-python/, default data; ImageNet: the folder with train/ and val/); "
        "unused for digits",
    )
    parser.add_argument(
        "--split",
        choices=["test", "val", "train"],
        default="test",
        help="split the images come from (default: %(default)s)",
    )
    parser.add_argument(
        "--num-images",
        type=positive_int(0),
        default=None,
        metavar="N",
        help="size of the fixed, seeded subset of the split, at most the split's size; 0 = all "
        f"(default: {num_images}, or the whole split when it is smaller)",
    )
    parser.set_defaults(num_images_default=num_images)
    parser.add_argument(
        "--seed",
        type=seed_value,
        default=0,
        metavar="N",
        help=f"seed of the image subset {seed_help} (default: %(default)s)",
    )


def num_images_request(args: argparse.Namespace) -> tuple[int | None, bool]:
    """``(num_images, whole_split_if_smaller)`` of the options :func:`add_data_options` added:
    ``--num-images N`` is a request (more than the split holds is refused), 0 means the whole
    split, and without the option the command's default is an upper bound.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_data_options(parser, num_images=1000)
        >>> num_images_request(parser.parse_args([]))
        (1000, True)
        >>> num_images_request(parser.parse_args(["--num-images", "0"]))
        (None, False)
    """
    if args.num_images is None:
        return args.num_images_default, True
    return args.num_images or None, False


def add_run_options(
    parser: argparse.ArgumentParser,
    *,
    batch_size: int,
    batch_help: str,
    output: str | None,
    output_help: str,
) -> None:
    """Add ``--batch-size``, ``--num-workers``, ``--device``, ``--output`` and
    ``--no-progress``.

    Args:
        parser: The subcommand's parser.
        batch_size: Default of ``--batch-size``.
        batch_help: What a batch is for this command.
        output: Default of ``--output`` (``None``: the command picks one).
        output_help: What the command writes there.
    """
    parser.add_argument(
        "--batch-size",
        type=positive_int(1),
        default=batch_size,
        metavar="N",
        help=f"{batch_help} (default: %(default)s)",
    )
    parser.add_argument(
        "--num-workers",
        type=positive_int(0),
        default=0,
        metavar="N",
        help="DataLoader worker processes reading the images (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="where to run: auto (CUDA when available), cpu, cuda or cuda:N (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None if output is None else Path(output),
        metavar="DIR",
        help=f"{output_help} (default: {output or 'see above'})",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bars (they go to stderr)"
    )
