"""The model zoo: named, checksummed weight files listed in ``model_zoo/zoo.yaml``.

A zoo entry names the architecture, the number of classes, the file (relative to the zoo
folder) and its SHA-256. ``create_model(..., weights="zoo:<name>")`` resolves the entry, refuses
a mismatched architecture, and verifies the checksum before loading. Nothing is downloaded:
an entry with a ``url`` whose file is missing says where to put the download.

The zoo folder is ``$ROBUSTART_ZOO`` if set, else the zoo that comes with robustart: the
top-level ``model_zoo/`` folder of the source tree, which an installed wheel carries as
``robustart/model_zoo/`` (package data, see ``pyproject.toml``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from robustart.errors import CheckpointError, UnknownNameError
from robustart.registry import close_matches

ZOO_PREFIX = "zoo:"
REQUIRED_KEYS = ("model", "num_classes", "file", "sha256")
#: A SHA-256 digest as ``sha256sum`` prints it.
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def zoo_dir() -> Path:
    """The folder holding ``zoo.yaml`` and the weight files: ``$ROBUSTART_ZOO`` if set, else
    ``robustart/model_zoo/`` of an installed wheel, else ``model_zoo/`` of the source tree."""
    env = os.environ.get("ROBUSTART_ZOO")
    if env:
        return Path(env).expanduser()
    package = Path(__file__).resolve().parents[1]  # the robustart package folder
    installed = package / "model_zoo"
    return installed if installed.is_dir() else package.parent / "model_zoo"


def load_index(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """The zoo's entries by name, read from ``zoo.yaml`` in ``directory`` (default: the zoo).

    Raises:
        CheckpointError: naming the file, if it is missing, unreadable, not valid YAML, empty,
            not a mapping of entries, or an entry lacks a required key.
    """
    path = (directory or zoo_dir()) / "zoo.yaml"
    if not path.is_file():
        raise CheckpointError(
            f"model zoo index not found: {path}. Set ROBUSTART_ZOO to the "
            "folder that holds zoo.yaml."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"cannot read the model zoo index {path}: {error}") from error
    try:
        index = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or " ".join(str(error).split())
        raise CheckpointError(
            f"the model zoo index {path} is not valid YAML: {problem}{at}"
        ) from error
    if not index:
        raise CheckpointError(
            f"the model zoo index {path} is empty; list entries in it or set ROBUSTART_ZOO "
            "to the folder of another zoo.yaml"
        )
    if not isinstance(index, dict):
        raise CheckpointError(
            f"the model zoo index {path} must map entry names to entries, "
            f"not be a {type(index).__name__}"
        )
    for name, entry in index.items():
        if not isinstance(entry, dict):
            raise CheckpointError(
                f"zoo entry {name!r} in {path} must be a mapping with the keys "
                f"{', '.join(REQUIRED_KEYS)}"
            )
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        if missing:
            raise CheckpointError(f"zoo entry {name!r} in {path} lacks {', '.join(missing)}")
        digest = entry["sha256"]
        if not (isinstance(digest, str) and SHA256_HEX.fullmatch(digest)):
            raise CheckpointError(
                f"zoo entry {name!r} in {path}: sha256 must be the file's 64-hex-digit SHA-256 "
                f"(`sha256sum FILE`), got {digest!r}; without it the weights are not verified"
            )
    return index


def resolve(reference: str, model: str, num_classes: int) -> tuple[str, str]:
    """Turn ``zoo:<name>`` into ``(file path, sha256)`` after checking the architecture.

    Raises:
        UnknownNameError: no such entry (close names suggested).
        CheckpointError: the entry is for another architecture or number of classes, or its
            file is missing.
    """
    name = reference[len(ZOO_PREFIX) :]
    directory = zoo_dir()
    index = load_index(directory)
    if name not in index:
        hint = close_matches(name, index)
        raise UnknownNameError(
            f"no model zoo entry {name!r}."
            + (f" Did you mean: {', '.join(hint)}?" if hint else "")
            + f" Entries: {', '.join(sorted(index))}"
        )
    entry = index[name]
    if entry["model"] != model or int(entry["num_classes"]) != num_classes:
        raise CheckpointError(
            f"zoo entry {name!r} holds a {entry['model']} with {entry['num_classes']} classes, "
            f"but the configuration builds a {model} with {num_classes} classes"
        )
    path = directory / entry["file"]
    if not path.is_file():
        where = f" Download it from {entry['url']} to {path}." if entry.get("url") else ""
        raise CheckpointError(f"zoo weights for {name!r} not found at {path}.{where}")
    return str(path), str(entry["sha256"])
