"""The declared dependencies are what robustart imports, and the optional ones fail early.

* Every third-party module imported under ``robustart/`` is a declared dependency, and every
  declared dependency is imported: OpenCV and PyAV only where their extras say, nothing from
  the ``test`` extra (SciPy, scikit-image) at all.
* Without OpenCV, a system-noise variant that needs it is refused when it is built, with a
  message naming the ``system-noise`` extra; the Pillow and torchvision variants still work.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from robustart.errors import ConfigError

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
#: Import name → distribution name, where they differ.
DISTRIBUTIONS = {
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
}
#: Modules only the files of an extra may import: module → (extra, files).
OPTIONAL = {
    "cv2": ("system-noise", {"robustart/system_noise/optional.py"}),
    "av": ("video", {"robustart/data/imagenet_p.py"}),
}


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module → the files under robustart/ importing it (not stdlib, not robustart)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "robustart").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("robustart", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_dependencies_are_exactly_the_run_time_imports():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = requirement_names(project["dependencies"])
    extras = {k: requirement_names(v) for k, v in project["optional-dependencies"].items()}
    imports = third_party_imports()
    core = {m for m in imports if m not in OPTIONAL}
    assert {DISTRIBUTIONS.get(m, m).lower() for m in core} == required
    for module, (extra, files) in OPTIONAL.items():
        assert imports.get(module, set()) <= files, (module, imports.get(module))
        assert DISTRIBUTIONS.get(module, module).lower() in extras[extra]
        assert DISTRIBUTIONS.get(module, module).lower() not in required
    assert {"scipy", "scikit-image", "opencv-python-headless"} <= extras["test"]


@pytest.fixture
def without_opencv(monkeypatch):
    """``import cv2`` raises ImportError, as on an install without the system-noise extra."""
    monkeypatch.setitem(sys.modules, "cv2", None)


def test_opencv_variants_are_refused_when_built(without_opencv):
    from robustart.system_noise import (
        DECODERS,
        RESIZERS,
        SystemNoiseVariant,
        imagenet_s_variants,
    )

    extra = re.escape('pip install "robustart[system-noise]"')
    with pytest.raises(ConfigError, match=rf"'opencv-pil_bilinear' needs OpenCV.*{extra}"):
        SystemNoiseVariant("opencv", "pil_bilinear")
    with pytest.raises(ConfigError, match=extra):
        SystemNoiseVariant("pil", "cv2_area")
    with pytest.raises(ConfigError, match=extra):
        imagenet_s_variants()  # the default ImageNet-S set includes OpenCV
    with pytest.raises(ConfigError, match=extra):
        RESIZERS.get("cv2_area")(np.zeros((8, 8, 3), np.uint8), (4, 4))
    with pytest.raises(ConfigError, match=extra):
        DECODERS.get("opencv")(b"not an image")
    # the other libraries' variants do not need OpenCV
    variants = imagenet_s_variants(["pil", "torchvision"], ["pil_bilinear", "pil_box"])
    assert len(variants) == 4
