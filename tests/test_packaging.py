"""The wheel carries what robustart reads at run time, and works outside the source tree.

The wheel is built from a copy of the source files in a temporary folder (without network and
without build isolation, with the setuptools of the test environment), so the checkout gets no
``build/`` or ``*.egg-info``. It is installed with ``pip --target`` into another temporary
folder and used by a subprocess that runs there, with ``PYTHONPATH`` putting the installed copy
before this environment's editable install. Also here: where a checkout finds the zoo and the
suites, errors for a broken zoo index, and the permissions and clean-up of atomic file writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from robustart.corruptions.frost import REFERENCE_TEXTURES
from robustart.errors import CheckpointError
from robustart.evaluation import suite_names, suites_dir
from robustart.models import create_model
from robustart.models.zoo import load_index, zoo_dir
from robustart.utils import atomic_output, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
#: What the build reads: the metadata, the package, and the folders mapped into it.
BUILD_INPUTS = ("pyproject.toml", "setup.cfg", "README.md", "robustart", "model_zoo", "recipes")
#: Variables that would send robustart to other folders than the installed ones.
LOCATION_VARIABLES = ("ROBUSTART_FROST_DIR", "ROBUSTART_ZOO", "ROBUSTART_SUITES", "PYTHONPATH")


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300):
    """Run ``command``; on failure, fail the test with its output."""
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    return result


def pip(*args: str) -> list[str]:
    """A pip command of this environment that neither reaches an index nor checks its version."""
    return [sys.executable, "-m", "pip", *args, "--no-index", "--disable-pip-version-check"]


def build_outputs() -> set[str]:
    """The checkout's build folders and egg-info (an editable install writes one)."""
    return {
        p.name for p in ROOT.iterdir() if p.name in ("build", "dist") or p.suffix == ".egg-info"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The robustart wheel, built from a copy of the checkout."""
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in (*BUILD_INPUTS, "MANIFEST.in"):
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        elif path.is_file():
            shutil.copy2(path, source / name)
    before = build_outputs()
    out = tmp_path_factory.mktemp("wheelhouse")
    run(pip("wheel", ".", "--no-deps", "--no-build-isolation", "-w", os.fspath(out)), source)
    assert build_outputs() == before  # nothing new in the checkout
    (built,) = out.glob("robustart-*.whl")
    return built


def test_the_wheel_holds_the_code_zoo_suites_and_frost_photographs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    index = yaml.safe_load((ROOT / "model_zoo" / "zoo.yaml").read_text())
    weights = sorted(entry["file"] for entry in index.values())
    assert len(weights) >= 3 and all(w.endswith(".safetensors") for w in weights)
    expected = {"robustart/model_zoo/zoo.yaml"}
    expected |= {f"robustart/model_zoo/{w}" for w in weights}
    suites = sorted((ROOT / "recipes" / "suites").glob("*.yaml"))
    assert suites
    expected |= {f"robustart/suites/{p.name}" for p in suites}
    frost = "robustart/corruptions/frost_textures"
    expected |= {f"{frost}/{name}" for name in (*REFERENCE_TEXTURES, "LICENSE", "README.md")}
    # every module of the source tree (the package list in pyproject.toml is written out)
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "robustart").rglob("*.py")}
    assert sorted(expected - names) == []
    assert not any(n.startswith(("tests/", "model_zoo/", "recipes/")) for n in names)
    assert f"{frost}/frost6.jpg" not in names
    licences = [n for n in names if ".dist-info/licenses/" in n]
    assert licences and all(n.endswith("frost_textures/LICENSE") for n in licences)


INSTALLED_CHECK = """
import json, os, sys
import torch
import robustart
from robustart.corruptions import corrupt, create_corruption
from robustart.corruptions.frost import frost_texture_files
from robustart.data import DigitsDataModule
from robustart.evaluation import load_suite, suite_names
from robustart.models import create_model
from robustart.models.zoo import zoo_dir

data = DigitsDataModule()
model = create_model(
    "resnet20", 10, mean=data.mean, std=data.std, weights="zoo:digits_resnet20_standard"
).eval()
images, labels = data.dataset("test")[:64]
with torch.no_grad():
    accuracy = (model(images).argmax(1) == labels).float().mean().item()
suite = load_suite("digits_final")
create_corruption("frost").check_available()
batch = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
frosted = corrupt(batch, "frost", 3)
print(json.dumps({
    "robustart": robustart.__file__,
    "zoo": str(zoo_dir()),
    "frost": [str(p) for p in frost_texture_files()],
    "suites": suite_names(),
    "suite_keys": len(suite.keys()),
    "accuracy": accuracy,
    "frost_changed": bool((frosted - batch).abs().amax() > 0.05),
    "frost_in_range": bool(frosted.min() >= 0 and frosted.max() <= 1),
    "from_source": sorted(
        name for name, module in list(sys.modules.items())
        if os.path.realpath(getattr(module, "__file__", None) or os.sep).startswith(sys.argv[1])
    ),
}))
"""


def test_the_installed_wheel_works_outside_the_source_tree(wheel, tmp_path):
    site = tmp_path / "site"
    run(pip("install", "--no-deps", "--target", os.fspath(site), os.fspath(wheel)), tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in LOCATION_VARIABLES}
    env["PYTHONPATH"] = os.fspath(site)  # ahead of site-packages and its editable finder
    source_package = os.path.join(os.path.realpath(ROOT / "robustart"), "")
    command = [sys.executable, "-c", INSTALLED_CHECK, source_package]
    report = json.loads(run(command, work, env).stdout.strip().splitlines()[-1])
    installed = site.resolve() / "robustart"
    assert Path(report["robustart"]).resolve() == installed / "__init__.py"
    assert Path(report["zoo"]).resolve() == installed / "model_zoo"
    frost = installed / "corruptions" / "frost_textures"
    assert [Path(p).resolve() for p in report["frost"]] == [frost / n for n in REFERENCE_TEXTURES]
    expected_suites = sorted(p.stem for p in (ROOT / "recipes" / "suites").glob("*.yaml"))
    assert report["suites"] == expected_suites and report["suite_keys"] > 0
    assert report["accuracy"] > 0.9  # the zoo's weights, not a fresh initialisation
    assert report["frost_changed"] and report["frost_in_range"]
    assert report["from_source"] == []  # no module of the checkout's robustart/ was imported


# --------------------------------------------------------------------------- data locations
def test_the_checkout_finds_its_top_level_zoo_and_suites(monkeypatch):
    """In a source checkout (and an editable install) the top-level folders are used; the
    environment variables win over them."""
    for name in ("ROBUSTART_ZOO", "ROBUSTART_SUITES"):
        monkeypatch.delenv(name, raising=False)
    assert zoo_dir() == ROOT / "model_zoo" and "digits_resnet20_standard" in load_index()
    assert suites_dir() == ROOT / "recipes" / "suites" and "epoch_end" in suite_names()
    monkeypatch.setenv("ROBUSTART_ZOO", "/somewhere/zoo")
    monkeypatch.setenv("ROBUSTART_SUITES", "/somewhere/suites")
    assert zoo_dir() == Path("/somewhere/zoo") and suites_dir() == Path("/somewhere/suites")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("digits: {model: resnet20\n  file: [unclosed\n", "not valid YAML: .* at line 2"),
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        ("- a\n- b\n", "must map entry names"),
        ("digits: resnet20\n", "must be a mapping"),
        ("digits: {model: resnet20, num_classes: 10}\n", "lacks file, sha256"),
    ],
)
def test_a_broken_zoo_index_names_the_file(tmp_path, monkeypatch, text, complaint):
    (tmp_path / "zoo.yaml").write_text(text)
    monkeypatch.setenv("ROBUSTART_ZOO", os.fspath(tmp_path))
    with pytest.raises(CheckpointError, match=complaint) as info:
        create_model("resnet20", 10, weights="zoo:digits")
    assert str(tmp_path / "zoo.yaml") in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_atomic_writes_respect_the_umask_and_leave_no_temporary_file(tmp_path, umask):
    previous = os.umask(umask)
    try:
        text_file = atomic_write_text(tmp_path / "notes.txt", "first\n")
        assert text_file.read_text() == "first\n"
        with atomic_output(tmp_path / "figure.png") as temporary:
            assert temporary.parent == tmp_path and temporary.name != "figure.png"
            temporary.write_bytes(b"image")
        for name in ("notes.txt", "figure.png"):
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name

        # failures midway keep the old file (or none) and remove the temporary file
        with pytest.raises(UnicodeEncodeError):
            atomic_write_text(tmp_path / "notes.txt", "second \ud800")  # lone surrogate
        for name, partial in (("figure.png", b"half an ima"), ("new.csv", b"a,b\n")):
            with pytest.raises(RuntimeError, match="midway"):  # noqa: SIM117 (what raises)
                with atomic_output(tmp_path / name) as temporary:
                    temporary.write_bytes(partial)
                    raise RuntimeError("failed midway")
    finally:
        os.umask(previous)
    assert (tmp_path / "notes.txt").read_text() == "first\n"
    assert (tmp_path / "figure.png").read_bytes() == b"image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "notes.txt"]
