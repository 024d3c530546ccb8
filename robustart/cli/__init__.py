"""The ``robustart`` command line: one module per subcommand, dispatched from
:data:`SUBCOMMANDS`.

A subcommand's module is imported only when it runs, so ``robustart --help`` and ``robustart
transfer`` do not pay for Lightning, and a subcommand can be added by registering its entry
function here (a ``main(argv)`` taking the arguments after the subcommand's name).
"""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robustart.cli.errors import input_errors_as_one_line, robustart_warnings_as_one_line
from robustart.errors import ConfigError
from robustart.registry import close_matches

__all__ = ["SUBCOMMANDS", "Subcommand", "main", "top_level_help"]

#: LightningCLI's entry: it parses the subcommand's name itself.
LIGHTNING_ENTRY = "robustart.cli.lightning:main"


@dataclass(frozen=True)
class Subcommand:
    """A subcommand of ``robustart``.

    Attributes:
        entry: Its entry function, ``"module:function"``, called with the arguments after the
            subcommand's name (with the name too when ``takes_name``).
        summary: What it does, in one line of the top-level help.
        takes_name: The entry parses the subcommand's name itself (LightningCLI).
    """

    entry: str
    summary: str
    takes_name: bool = False

    def load(self) -> Callable[[list[str]], Any]:
        """Import the entry function.

        Raises:
            ConfigError: the subcommand's module is not installed.
        """
        module_name, _, function = self.entry.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # a dependency of the module is missing: a real error
                raise
            raise ConfigError(f"this installation lacks {module_name}") from None
        return getattr(module, function)


#: Every subcommand of ``robustart``, in the order of the help.
SUBCOMMANDS: dict[str, Subcommand] = {
    "fit": Subcommand(
        LIGHTNING_ENTRY, "train a model from recipe YAML files (LightningCLI)", takes_name=True
    ),
    "validate": Subcommand(
        LIGHTNING_ENTRY, "evaluate a model or checkpoint on the validation split", takes_name=True
    ),
    "test": Subcommand(
        LIGHTNING_ENTRY,
        "evaluate a checkpoint on the test split, robustness evaluation included",
        takes_name=True,
    ),
    "predict": Subcommand(LIGHTNING_ENTRY, "predict with a model or checkpoint", takes_name=True),
    "compare": Subcommand(
        "robustart.cli.compare:main",
        "train and test several recipes, print one robustness table",
    ),
    "study": Subcommand(
        "robustart.cli.study:main",
        "a study: models tagged by family and technique through one suite; leaderboard, "
        "Pareto frontiers, scaling law, transfer matrix",
    ),
    "transfer": Subcommand(
        "robustart.cli.transfer:main",
        "transfer-attack matrix: craft adversarial examples on each model, evaluate on all",
    ),
    "shift": Subcommand(
        "robustart.cli.shift:main",
        "evaluate models on distribution-shift, corruption and noise sets kept on disk",
    ),
    "benchmark": Subcommand(
        "robustart.cli.benchmark:main",
        "any models through one suite (attacks, corruptions, noise, on-disk sets), resumable",
    ),
}

#: Arguments that ask for the top-level help.
HELP_OPTIONS = ("-h", "--help")


def top_level_help() -> str:
    """The text of ``robustart --help``: every subcommand with its one-line summary."""
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {sub.summary}" for name, sub in SUBCOMMANDS.items())
    return textwrap.dedent(
        """\
        usage: robustart SUBCOMMAND [OPTIONS]

        robustart: train image classifiers and measure their robustness.

        subcommands:
        {rows}

        `robustart SUBCOMMAND --help` describes the options of one subcommand."""
    ).format(rows=rows)


def main(argv: list[str]) -> int:
    """Run the ``robustart`` command line ``argv`` (the arguments after ``robustart``).

    Input errors are printed as one ``robustart: error: ...`` line and end the program with
    status 2 (``SystemExit``).

    Returns:
        The exit status, 0.
    """
    with input_errors_as_one_line(), robustart_warnings_as_one_line():
        if argv and argv[0] in HELP_OPTIONS:
            print(top_level_help())
            return 0
        if argv and argv[0].startswith("-"):  # LightningCLI's options before a subcommand
            SUBCOMMANDS["fit"].load()(argv)
            return 0
        subcommand = SUBCOMMANDS.get(argv[0]) if argv else None
        if subcommand is None:
            if not argv:
                print(top_level_help())
            raise ConfigError(_unknown_subcommand(argv[0] if argv else None))
        subcommand.load()(argv if subcommand.takes_name else argv[1:])
    return 0


def _unknown_subcommand(given: str | None) -> str:
    """The error for a missing (``None``) or unknown subcommand: every name, close ones
    first."""
    names = ", ".join(SUBCOMMANDS)
    if given is None:
        return f"give a subcommand, one of {names} (see `robustart --help`)"
    hint = close_matches(given, SUBCOMMANDS)
    suggestion = f" (did you mean {', '.join(hint)}?)" if hint else ""
    return f"unknown subcommand {given!r}{suggestion}; give one of {names} (see `robustart --help`)"
