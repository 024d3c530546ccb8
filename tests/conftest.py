"""Shared fixtures: digits tensors, a briefly trained ResNet-20 and recipe paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from robustart.data.digits import load_digits_tensors
from robustart.models import create_model

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
FAST = Path(__file__).resolve().parent / "configs" / "fast_eval.yaml"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# Two cores at most per test process; under pytest-xdist the cores are shared by its workers.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))


@pytest.fixture(scope="session", autouse=True)
def synthetic_frost(tmp_path_factory):
    """Tiny synthetic frost PNGs for the frost corruption (no download, no optional package)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("frost")
    g = torch.Generator().manual_seed(0)
    for i, (h, w) in enumerate([(180, 200), (170, 240), (300, 260)]):  # two below 224 px
        crystals = F.interpolate(torch.rand(1, 3, h // 4, w // 4, generator=g), size=(h, w))
        pixels = (0.5 + 0.5 * crystals[0]).permute(1, 2, 0).mul(255).byte().numpy()
        Image.fromarray(pixels).save(folder / f"frost{i}.png")
    previous = os.environ.get("ROBUSTART_FROST_DIR")
    os.environ["ROBUSTART_FROST_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("ROBUSTART_FROST_DIR", None)
    else:
        os.environ["ROBUSTART_FROST_DIR"] = previous


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as (N, 3, 32, 32) images in [0, 1] and labels."""
    return load_digits_tensors(32)


@pytest.fixture(scope="session")
def trained_model():
    """A ResNet-20 trained for four epochs on the first 1,500 digits, eval mode (the stored
    weights classify all of the next 128 digits, ``heldout``, correctly); see
    ``tests/trained_model.py``."""
    from trained_model import trained_resnet20

    return trained_resnet20()


@pytest.fixture(scope="session")
def standard():
    """The zoo's standard digits ResNet-20 (eval mode) and the first 64 test digits, all of which
    it classifies correctly."""
    from robustart.data import DigitsDataModule

    data = DigitsDataModule()
    model = create_model(
        "resnet20", 10, mean=data.mean, std=data.std, weights="zoo:digits_resnet20_standard"
    ).eval()
    images, labels = data.dataset("test")[:64]
    return model, images, labels


@pytest.fixture(scope="session")
def heldout(digits):
    """128 held-out digits the trained model did not see."""
    images, labels = digits
    return images[1500:1628], labels[1500:1628]


def accuracy(model, images, labels) -> float:
    with torch.no_grad():
        return (model(images).argmax(1) == labels).float().mean().item()


def expect_cli_error(capsys, *args, match: str) -> str:
    """Run the robustart command line in-process on ``args`` and assert that it refuses: exit
    status 2, exactly one ``robustart: error: ...`` line containing ``match``, no traceback and
    no usage dump. Returns the error line."""
    from robustart.main import cli_main

    with pytest.raises(SystemExit) as info:
        cli_main([str(a) for a in args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("robustart: error:")]
    assert len(lines) == 1, err[-3000:]
    assert match in lines[0], lines[0]
    assert "Traceback" not in err and "usage:" not in err, err[-3000:]
    return lines[0]
