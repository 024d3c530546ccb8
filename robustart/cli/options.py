"""Options shared by the evaluation subcommands (``benchmark``, ``transfer``, ``shift``), so
that every command spells them the same way."""

from __future__ import annotations

import argparse

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
