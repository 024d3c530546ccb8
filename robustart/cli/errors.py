"""Input errors on the command line: one ``robustart: error: ...`` line, exit status 2.

Errors caused by input (missing data, unknown names, bad checkpoints, bad values) are
:class:`~robustart.errors.RobustartError`s; :func:`input_errors_as_one_line` prints them without
a traceback, whatever wrapped them on the way up (jsonargparse, Lightning, DataLoader workers).
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from robustart.errors import RobustartError, RobustartWarning
from robustart.utils import one_line, read_yaml_file

#: Exit status of a command refused because of its input (argparse's usage-error status).
INPUT_ERROR_STATUS = 2
#: Exit status of a command interrupted by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED_STATUS = 130


@contextmanager
def input_errors_as_one_line() -> Iterator[None]:
    """Run the body; an input error in it is printed as one ``robustart: error: ...`` line on
    stderr and ends the program with status 2. An interruption (Ctrl-C) is one line too,
    with status 130: the commands store their results as they go and resume. Other
    exceptions (bugs) propagate."""
    try:
        yield
    except KeyboardInterrupt:
        print(
            "robustart: interrupted: the results written so far are kept; run the same "
            "command again to resume",
            file=sys.stderr,
        )
        raise SystemExit(INTERRUPTED_STATUS) from None
    except Exception as exc:
        err = find_input_error(exc)
        if err is None:
            raise
        print(f"robustart: error: {error_message(err)}", file=sys.stderr)
        raise SystemExit(INPUT_ERROR_STATUS) from None


@contextmanager
def robustart_warnings_as_one_line() -> Iterator[None]:
    """Run the body; robustart's warnings in it (:class:`~robustart.errors.RobustartWarning`)
    are printed as one ``robustart: warning: ...`` line on stderr, like its errors, instead of
    Python's ``file:line: UserWarning: ...`` and a source line. Other libraries' warnings keep
    Python's format. Each distinct warning is printed once per command (a study repeats the
    same check for every item of every model)."""
    default = warnings.showwarning
    shown: set[str] = set()

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, RobustartWarning):
            text = f"robustart: warning: {one_line(str(message))}"
            if text not in shown:
                shown.add(text)
                print(text, file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = default


def find_input_error(exc: BaseException) -> BaseException | None:
    """The input error behind ``exc``, if any: a :class:`RobustartError`, or Lightning's
    ``MisconfigurationException`` (its refusal of a setting, e.g. ``checkpoint.mode: maxx``).

    jsonargparse wraps errors raised while instantiating classes from the config (a
    ``ValueError`` whose ``__cause__`` is ours), and Lightning may re-raise from hooks.
    """
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (RobustartError, MisconfigurationException)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def error_message(err: BaseException) -> str:
    """The one-line message of an input error.

    Errors raised in a DataLoader worker process come back re-raised by torch with the
    worker's traceback in their message; only the original message is kept.
    """
    text = str(err)
    if "Original Traceback" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        name = type(err).__name__
        for line in reversed(lines):
            head, sep, rest = line.partition(": ")
            if sep and head.rsplit(".", 1)[-1] == name:
                text = rest
                break
    return one_line(text)


def tidy_parser_message(message: str) -> str:
    """A jsonargparse error as one readable line: the key, what was wrong and the value,
    without the list of union subtypes it tried."""
    key = re.search(r'Parser key "([^"]+)"', message)
    option = re.search(
        r"Problem with given class_path '([^']+)':(.*?)(?:\n\s{4}- |\Z)", message, re.S
    )
    if key and option:
        return f"{key.group(1)} ({option.group(1)}): {one_line(option.group(2))}"
    expected = re.findall(r"Expected an? <class '([^']+)'>", message)
    given = re.search(r"Given value: ([^\n]+)", message)
    if key and expected and given:
        kinds = " or ".join(dict.fromkeys(expected))
        return f"{key.group(1)}: expected {kinds}, got {given.group(1).strip()!r}"
    return one_line(message)


def instantiation_message(message: str) -> str | None:
    """A jsonargparse refusal of a value met while building the classes, as one line.

    Values linked from one class into another (e.g. ``data.num_classes`` into the model) are
    checked against the target's type only when the classes are built, and jsonargparse then
    raises a ``ValueError`` listing the union subtypes it tried. This keeps the class and the
    reason (``model (robustart.tasks.ClassificationTask): Expected argument `num_classes` to
    be an integer larger than 1, but got 1``); ``None`` for other messages.
    """
    if "Does not validate against any of the Union subtypes" not in message:
        return None
    classes = re.findall(r"<class '([^']+)'>", message.partition("Errors:")[0])
    reasons = [
        line.strip()[2:].strip()
        for line in message.partition("Errors:")[2].splitlines()
        if line.strip().startswith("- ") and "NoneType" not in line
    ]
    # jsonargparse words its type checks "Expected ..."; anything else raised while building
    # a class (a NameError, a bug) must stay a traceback, not pass for bad input
    if not reasons or not reasons[0].startswith("Expected "):
        return None
    owner = next((name for name in classes if name != "NoneType"), "a configured class")
    return f"{owner}: {one_line(reasons[0])}"


def check_config_arguments(argv: list[str]) -> None:
    """Check every ``--config`` file of a LightningCLI command line before parsing, so that a
    missing, empty or unparsable file is named in a one-line error.

    Raises:
        ConfigError: naming the file (and the line of a YAML syntax error).
    """
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--config="):
            value = arg.partition("=")[2]
        else:
            continue
        if Path(value).exists() or not value.lstrip().startswith(("{", "[")):
            read_yaml_file(value, "--config file")
