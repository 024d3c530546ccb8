"""Read an offline W&B run back with the wandb SDK's own reader.

``wandb leet inspect --json RUN_DIR`` (shipped with the ``wandb`` package, run by its Go core)
prints every record of the run's ``.wandb`` transaction log as one JSON object per line; this
module collects them into the run's header (name, group, job type), config, history rows,
summary, and the tables and images those rows point to under ``files/media``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class WandbRun:
    """What one offline run holds.

    Attributes:
        folder: The run folder (``offline-run-<time>-<id>``).
        run: The run record (``display_name``, ``run_group``, ``job_type``, ...).
        config: The config after every update, with nested keys as nested dicts.
        history: Every ``log`` call in order, keys as logged (media as nested dicts).
        summary: The last value of every summary key.
        exited: Whether the run was finished.
    """

    folder: Path
    run: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exited: bool = False

    def rows_with(self, key: str) -> list[dict[str, Any]]:
        """The history rows that logged ``key``."""
        return [row for row in self.history if key in row]

    def table(self, row: dict[str, Any], key: str) -> dict[str, Any]:
        """The ``{"columns": [...], "data": [[...]]}`` of the table logged as ``key`` in
        ``row`` (read from the run's ``files/``)."""
        value = row[key]
        assert value["_type"] in ("table-file", "table"), value
        return json.loads((self.folder / "files" / value["path"]).read_text())

    def records(self, row: dict[str, Any], key: str) -> list[dict[str, Any]]:
        """The rows of the table logged as ``key`` in ``row``, as ``{column: value}``."""
        table = self.table(row, key)
        return [dict(zip(table["columns"], values)) for values in table["data"]]

    def image(self, row: dict[str, Any], key: str) -> Path:
        """The PNG logged as ``key`` in ``row``."""
        value = row[key]
        assert value["_type"] == "image-file", value
        return self.folder / "files" / value["path"]


def _media(flat: dict[str, Any]) -> dict[str, Any]:
    """Regroup the flattened fields of logged media (``key._type``, ``key.path``, ...) as
    ``{key: {"_type": ..., "path": ...}}``; other keys (``robust/pgd10_l2/eps=0.5``) as they
    are."""
    owners = [k.removesuffix("._type") for k in flat if k.endswith("._type")]
    out: dict[str, Any] = {}
    for key, value in flat.items():
        owner = next((o for o in owners if key.startswith(f"{o}.")), None)
        if owner is None:
            out[key] = value
        else:
            out.setdefault(owner, {})[key[len(owner) + 1 :]] = value
    return out


def read_run(folder: Path) -> WandbRun:
    """Read an offline run folder with ``wandb leet inspect --json``."""
    folder = Path(folder)
    result = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(folder)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    run = WandbRun(folder=folder)
    for line in result.stdout.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        kind = record.get("type")
        body = record.get(kind, {})
        if kind == "run":
            run.run = body
        elif kind == "config":
            for key, value in body.get("update", {}).items():
                run.config[key] = value
        elif kind == "history":
            run.history.append(_media(body.get("item", {})))
        elif kind == "summary":
            run.summary.update(body.get("update", {}))
        elif kind == "exit":
            run.exited = True
    return run


def offline_runs(save_dir: Path) -> list[WandbRun]:
    """Every offline run under ``<save_dir>/wandb``, oldest first."""
    return [read_run(p) for p in sorted(Path(save_dir, "wandb").glob("offline-run-*"))]
