"""Untrusted or broken model files are refused with one line, before any evaluation.

Found by a fourth audit (evaluation paths): an infinite BatchNorm mean behind a ReLU left the
logits finite, so a broken model got a leaderboard row; a checkpoint's recorded
``model_kwargs`` went straight into the architecture (``pretrained: true`` made timm try to
download, an unknown key ended in a traceback); a pickled ``os.system`` was refused but described
as a truncated file; ``--arch`` was never checked when no plain weights file needed it.
"""

from __future__ import annotations

import os

import pytest
import torch
from conftest import expect_cli_error
from safetensors.torch import save_file

from robustart.errors import CheckpointError, UnknownNameError
from robustart.evaluation.benchmarks import ModelData
from robustart.models import create_model
from robustart.models.loading import load_model, load_models

DIGITS = {"num_classes": 10, "in_channels": 3, "mean": (0.5,) * 3, "std": (0.25,) * 3}


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return dict(create_model("resnet20", 10).backbone.state_dict())


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_weights_with_non_finite_entries_are_refused(tmp_path, value):
    state = _state()
    state["bn1.running_mean"][0] = value
    path = tmp_path / "broken.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r"NaN or infinite values in 1 tensor\(s\)"):
        load_model(str(path), **DIGITS, arch="resnet20")
    state["bn1.running_mean"][0] = 0.0
    save_file(state, str(path))
    assert load_model(str(path), **DIGITS, arch="resnet20") is not None


def _lightning_checkpoint(path, model_kwargs) -> None:
    state = {f"model.backbone.{k}": v for k, v in _state().items()}
    model = create_model("resnet20", 10)
    state.update({f"model.{k}": v for k, v in model.state_dict().items() if "backbone" not in k})
    hparams = {"model": "resnet20", "num_classes": 10, "model_kwargs": model_kwargs}
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)


@pytest.mark.parametrize(
    ("model_kwargs", "match"),
    [
        ({"pretrained": True}, "would make the model download or read other files"),
        ({"checkpoint_path": "/etc/passwd"}, "would make the model download"),
        ({"bogus_kw": 1}, "that model 'resnet20' does not take"),
        ([1, 2], "not a mapping of settings"),
    ],
)
def test_a_checkpoints_recorded_model_settings_are_checked(tmp_path, model_kwargs, match):
    path = tmp_path / "run.ckpt"
    _lightning_checkpoint(path, model_kwargs)
    with pytest.raises(CheckpointError, match=match):
        load_model(str(path), **DIGITS)


def test_a_checkpoint_with_harmless_recorded_settings_loads(tmp_path):
    path = tmp_path / "run.ckpt"
    _lightning_checkpoint(path, {"pretrained": False})
    assert load_model(str(path), **DIGITS) is not None


class _RunsACommand:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_function_call_is_refused_as_unsafe_not_as_damaged(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": _RunsACommand(str(marker))}}, path)
    with pytest.raises(CheckpointError, match=r"stores Python objects .*GLOBAL (posix|nt)\.system"):
        load_model(str(path), **DIGITS)
    assert not marker.exists()


def test_an_unknown_arch_is_refused_even_when_no_spec_needs_it():
    data = ModelData(**DIGITS, dataset=None)
    with pytest.raises(UnknownNameError, match="unknown model 'resnet999'"):
        load_models({"zoo": "zoo:digits_resnet20_standard"}, data, arch="resnet999")


def test_the_benchmark_refuses_an_unknown_arch(tmp_path, capsys):
    expect_cli_error(
        capsys,
        "benchmark",
        "zoo:digits_resnet20_standard",
        "--arch",
        "resnet999",
        "--output",
        tmp_path / "out",
        match="unknown model 'resnet999'",
    )


def test_test_and_resume_refuse_a_checkpoint_with_non_finite_weights(tmp_path):
    from robustart.models.weights import check_checkpoint_file

    path = tmp_path / "diverged.ckpt"
    _lightning_checkpoint(path, {})
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"]["model.backbone.fc.weight"][0, 0] = float("nan")
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=r"NaN or infinite .*model\.backbone\.fc\.weight"):
        check_checkpoint_file(path, "resnet20")
