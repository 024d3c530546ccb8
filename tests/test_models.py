"""Model factory, normalisation inside the model and safe weight loading."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

from robustart.errors import CheckpointError, ConfigError, UnknownNameError
from robustart.models import MODELS, create_model, load_weights, sha256_of


@pytest.mark.parametrize(
    "name,millions",
    [
        ("resnet20", 0.27),
        ("resnet32", 0.46),
        ("resnet56", 0.85),
        ("preact_resnet18", 11.17),
        ("wrn16_2", 0.69),  # Zagoruyko & Komodakis, 2016, table 1: 0.7 M
        ("wrn28_10", 36.48),
        ("wrn34_10", 46.16),
        ("vit_tiny_patch8_32", 0.82),
        ("mixer_tiny_patch4_32", 0.46),
        ("mobilenetv2_050_32", 0.70),
    ],
)
def test_published_parameter_counts(name, millions):
    model = create_model(name, num_classes=10)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(millions, abs=0.01)


@pytest.mark.parametrize(
    "name",
    [
        "resnet20",
        "preact_resnet18",
        "resnet18",
        "vit_tiny_patch8_32",
        "mixer_tiny_patch4_32",
        "mobilenetv2_050_32",
    ],
)
def test_every_model_takes_unit_range_images(name):
    model = create_model(name, num_classes=7).eval()
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)


def test_32px_mobilenet_keeps_a_4x4_map_and_timms_weights():
    """The 32-px MobileNetV2 is timm's network with two strides changed: the same parameter
    shapes (timm's weights load into it), and a 32-px image reaches the head as 4 × 4, where
    timm's unchanged network leaves 1 × 1."""
    import timm

    from robustart.models.mobile_models import mobilenetv2_050_32

    ours = mobilenetv2_050_32(num_classes=10).eval()
    theirs = timm.create_model("mobilenetv2_050", pretrained=False, num_classes=10).eval()
    ours.load_state_dict(theirs.state_dict())  # strict: same names and shapes
    x = torch.rand(2, 3, 32, 32)
    assert ours.forward_features(x).shape[-2:] == (4, 4)
    assert theirs.forward_features(x).shape[-2:] == (1, 1)
    # Same weights, different strides: the stride change is the only difference.
    theirs.conv_stem.stride = theirs.blocks[1][0].conv_dw.stride = (1, 1)
    torch.testing.assert_close(ours(x), theirs(x))


def test_normalisation_lives_inside_the_model():
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    model = create_model("resnet20", num_classes=10, mean=mean, std=std).eval()
    x = torch.rand(2, 3, 32, 32)
    normalised = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(model(x), model.backbone(normalised))


def test_unknown_model_suggests_close_matches():
    with pytest.raises(UnknownNameError, match="Did you mean: resnet20") as info:
        create_model("resnt20", num_classes=10)
    assert "timm" in str(info.value)
    assert "resnet20" in MODELS


def test_bad_model_arguments():
    with pytest.raises(ConfigError, match="3 channels"):
        create_model("resnet20", num_classes=10, mean=(0.5,), std=(0.5,))
    with pytest.raises(ConfigError, match="no downloadable weights"):
        create_model("resnet20", num_classes=10, pretrained=True)


@pytest.fixture
def source_model():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    return model


def _same_outputs(a, b):
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(a.eval()(x), b.eval()(x))


def test_round_trip_through_state_dict_safetensors_and_lightning_ckpt(source_model, tmp_path):
    torch.save(source_model.state_dict(), tmp_path / "w.pt")
    save_file(source_model.state_dict(), str(tmp_path / "w.safetensors"))
    lightning = {
        "state_dict": {f"model.{k}": v for k, v in source_model.state_dict().items()},
        "epoch": 3,
    }
    torch.save(lightning, tmp_path / "w.ckpt")
    torch.save(source_model.backbone.state_dict(), tmp_path / "backbone.pt")
    for name in ("w.pt", "w.safetensors", "w.ckpt", "backbone.pt"):
        loaded = create_model("resnet20", num_classes=10, weights=str(tmp_path / name))
        _same_outputs(source_model, loaded)


def test_checksum_is_verified(source_model, tmp_path):
    path = tmp_path / "w.pt"
    torch.save(source_model.state_dict(), path)
    digest = sha256_of(path)
    create_model("resnet20", num_classes=10, weights=str(path), weights_sha256=digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # tamper with one byte
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        create_model("resnet20", num_classes=10, weights=str(path), weights_sha256=digest)


def test_truncated_checkpoint_is_a_clear_error(source_model, tmp_path):
    path = tmp_path / "w.pt"
    torch.save(source_model.state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        create_model("resnet20", num_classes=10, weights=str(path))


def test_weights_of_another_architecture_are_refused(source_model, tmp_path):
    path = tmp_path / "w.pt"
    torch.save(source_model.state_dict(), path)
    with pytest.raises(CheckpointError, match="do not fit model 'resnet32'"):
        create_model("resnet32", num_classes=10, weights=str(path))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        create_model("resnet20", num_classes=100, weights=str(path))


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64, torch.bool])
def test_weights_of_a_non_float_type_are_refused(source_model, tmp_path, dtype):
    """load_state_dict would cast them silently (before: evaluated, accuracy reported)."""
    state = source_model.state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 2)
    state[name] = state[name].to(dtype)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    short = ".".join(name.split(".")[-2:])
    with pytest.raises(CheckpointError, match=rf"1 type mismatches \(e.g. {short}: checkpoint"):
        create_model("resnet20", num_classes=10, weights=str(path))


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weights": Payload()}, path, pickle_module=pickle)
    model = create_model("resnet20", num_classes=10)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_weights(model, str(path))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        create_model("resnet20", num_classes=10, weights=str(tmp_path / "nope.pt"))


# --------------------------------------------------------------------------- model zoo
def test_zoo_entries_load_with_verified_checksums():
    from robustart.data import DigitsDataModule

    dm = DigitsDataModule()
    images, labels = dm.dataset("test")[:]
    for name in ("digits_resnet20_standard", "digits_resnet20_pgd_at"):
        model = create_model("resnet20", 10, mean=dm.mean, std=dm.std, weights=f"zoo:{name}")
        accuracy = (model.eval()(images).argmax(1) == labels).float().mean().item()
        assert accuracy > 0.95, name


def test_zoo_refuses_unknown_mismatched_and_tampered_entries(tmp_path, monkeypatch):
    import shutil

    from robustart.models.zoo import zoo_dir

    for f in ("zoo.yaml", "digits_resnet20_standard.safetensors"):
        shutil.copy(zoo_dir() / f, tmp_path / f)
    monkeypatch.setenv("ROBUSTART_ZOO", str(tmp_path))
    with pytest.raises(UnknownNameError, match="Did you mean: digits_resnet20_standard"):
        create_model("resnet20", 10, weights="zoo:digits_resnet20_standart")
    with pytest.raises(CheckpointError, match="holds a resnet20"):
        create_model("resnet56", 10, weights="zoo:digits_resnet20_standard")
    with pytest.raises(CheckpointError, match="not found"):
        create_model("resnet20", 10, weights="zoo:digits_resnet20_pgd_at")
    path = tmp_path / "digits_resnet20_standard.safetensors"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        create_model("resnet20", 10, weights="zoo:digits_resnet20_standard")


def test_export_tool_writes_a_loadable_zoo_entry(source_model, tmp_path):
    import subprocess
    import sys

    import yaml
    from conftest import ROOT

    ckpt = tmp_path / "last.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in source_model.state_dict().items()},
            "robustart": {"model": "resnet20", "num_classes": 10},
        },
        ckpt,
    )
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "export_weights.py"),
            str(ckpt),
            str(tmp_path / "m.safetensors"),
            "--name",
            "m",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    entry = yaml.safe_load(out)["m"]
    assert entry["model"] == "resnet20" and entry["sha256"] == sha256_of(tmp_path / "m.safetensors")
    loaded = create_model(
        "resnet20", 10, weights=str(tmp_path / "m.safetensors"), weights_sha256=entry["sha256"]
    )
    _same_outputs(source_model, loaded)


def test_model_settings_the_architecture_does_not_take_are_refused():
    """Before: a TypeError traceback from `--model.init_args.model_kwargs "{drop_rate: 0.1}"`
    on resnet20 (the README's "dropout / drop-path pass through" is about timm models)."""
    with pytest.raises(ConfigError, match="'resnet20' takes no setting drop_rate"):
        create_model("resnet20", 10, drop_rate=0.1)
    with pytest.raises(ConfigError, match="'resnet18' does not take one of drop_rat"):
        create_model("resnet18", 10, drop_rat=0.1)
    assert create_model("resnet18", 10, drop_rate=0.1) is not None
