"""Every evaluation path gives the numbers recorded before the evaluation engine was
restructured (``tools/reference_numbers.py``): the suite runner with each attack family and
every corruption, the minimal-ε search, transfer, shift-style classification and calibration,
OOD detection, perturbation sequences and both kinds of system noise, on the zoo's models."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_evaluation_path_gives_the_recorded_numbers(monkeypatch):
    monkeypatch.delenv("ROBUSTART_FROST_DIR", raising=False)  # the shipped photographs
    spec = importlib.util.spec_from_file_location(
        "reference_numbers", ROOT / "tools" / "reference_numbers.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    recorded = json.loads(tool.REFERENCE.read_text())
    computed = json.loads(json.dumps(tool.compute()))
    for key in recorded:
        assert computed[key] == recorded[key], key
    assert set(computed) == set(recorded)
