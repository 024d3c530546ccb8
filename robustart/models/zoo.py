"""The model zoo: named, checksummed weight files listed in ``model_zoo/zoo.yaml``.

A zoo entry names the architecture, the number of classes, the file (relative to the zoo
folder) and its SHA-256. ``create_model(..., weights="zoo:<name>")`` resolves the entry, refuses
a mismatched architecture, and verifies the checksum before loading. Nothing is downloaded:
an entry with a ``url`` whose file is missing says where to put the download.

The zoo folder is ``$ROBUSTART_ZOO`` if set, else the ``model_zoo/`` folder of the source tree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from robustart.errors import CheckpointError, UnknownNameError
from robustart.registry import close_matches

ZOO_PREFIX = "zoo:"
REQUIRED_KEYS = ("model", "num_classes", "file", "sha256")


def zoo_dir() -> Path:
    """The folder holding ``zoo.yaml`` and the weight files."""
    env = os.environ.get("ROBUSTART_ZOO")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "model_zoo"


def load_index(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """The zoo's entries by name."""
    path = (directory or zoo_dir()) / "zoo.yaml"
    if not path.is_file():
        raise CheckpointError(
            f"model zoo index not found: {path}. Set ROBUSTART_ZOO to the "
            "folder that holds zoo.yaml."
        )
    index = yaml.safe_load(path.read_text()) or {}
    for name, entry in index.items():
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        if missing:
            raise CheckpointError(f"zoo entry {name!r} in {path} lacks {', '.join(missing)}")
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
