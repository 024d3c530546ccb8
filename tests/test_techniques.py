"""Training techniques in the task and as recipe overlays: AugMix's consistency loss, label
smoothing, EMA in checkpoints, dropout/drop-path passthrough, and every digits overlay end to
end on the base recipe (and with adversarial training where the technique allows)."""

from pathlib import Path

import pytest
import torch
import yaml
from adain_fakes import write_fake_adain
from conftest import FAST, RECIPES
from single_thread import one_thread  # noqa: F401  (fixture)

from robustart.cli.compare import recipe_files, run_name
from robustart.errors import ConfigError
from robustart.main import cli_main
from robustart.tasks import AdversarialTrainingTask, ClassificationTask

pytestmark = pytest.mark.usefixtures("one_thread")
DIGITS = RECIPES / "digits"
OVERLAYS = [
    "mixup",
    "cutmix",
    "random_erasing",
    "autoaugment",
    "randaugment",
    "trivialaugment",
    "augmix",
    "label_smooth",
    "ema",
]
#: Beside tests/configs/fast_eval.yaml: small batches and no robustness suite, so that each
#: overlay trains two batches in a few seconds (the suite itself is tested in test_cli.py).
QUICK = ["--trainer.callbacks=[]", "--trainer.num_sanity_val_steps", "0"]
QUICK += ["--data.init_args.batch_size", "16"]


def fit(*configs, extra=()):
    args = ["fit"]
    for config in configs:
        args += ["--config", str(config)]
    return cli_main([*args, "--config", str(FAST), *QUICK, *extra])


def metric_columns(run_dir):
    return (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")


# ----------------------------------------------------------------------------- task level
def test_multi_view_loss_is_clean_cross_entropy_plus_weighted_jsd():
    torch.manual_seed(0)
    task = ClassificationTask(num_classes=10, consistency_weight=12.0).eval()
    image, labels = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
    identical = torch.stack([image] * 3, dim=1)  # (N, 3 views, C, H, W)
    loss, logits, targets = task.multi_view_loss(identical, labels)
    clean = task.criterion(task.model(image), labels)
    assert loss.item() == pytest.approx(clean.item(), abs=1e-5)  # JSD of equal views is 0
    assert logits.shape == (4, 10) and torch.equal(targets, labels)
    views = torch.stack([image, torch.rand_like(image), torch.rand_like(image)], dim=1)
    assert task.multi_view_loss(views, labels)[0].item() > clean.item()


def test_multi_view_batches_refuse_adversarial_training_and_mixing():
    with pytest.raises(ConfigError, match="AdversarialTrainingTask replaces the training loss"):
        AdversarialTrainingTask(steps=1).check_multi_view_support(3)
    AdversarialTrainingTask(steps=1).check_multi_view_support(1)  # AugMix views: 1 is fine
    task = ClassificationTask(batch_augment=[{"name": "cutmix"}])
    with pytest.raises(ConfigError, match="cutmix mixes different images"):
        task.multi_view_loss(torch.rand(2, 3, 3, 32, 32), torch.tensor([0, 1]))


def test_label_smoothing_cannot_be_set_twice():
    ClassificationTask(label_smoothing=0.1, batch_augment=[{"name": "mixup"}])
    with pytest.raises(ConfigError, match="label smoothing is set twice"):
        ClassificationTask(
            label_smoothing=0.1, batch_augment=[{"name": "mixup", "label_smoothing": 0.1}]
        )
    with pytest.raises(ConfigError, match="consistency_weight"):
        ClassificationTask(consistency_weight=-1)


def test_dropout_and_drop_path_reach_a_timm_model():
    torch.manual_seed(0)
    task = ClassificationTask(
        model="resnet10t", num_classes=10, model_kwargs={"drop_rate": 0.3, "drop_path_rate": 0.2}
    )
    backbone = task.model.backbone
    assert backbone.drop_rate == 0.3
    drop_probs = [m.drop_prob for m in backbone.modules() if type(m).__name__ == "DropPath"]
    assert drop_probs and max(drop_probs) == pytest.approx(0.2)
    images = torch.rand(4, 3, 32, 32)
    task.eval()
    assert torch.equal(task(images), task(images))  # both off in evaluation
    task.train()
    assert not torch.allclose(task(images), task(images))  # stochastic in training


# ----------------------------------------------------------------------------- overlays
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_digits_overlay_trains_end_to_end(overlay, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert fit(DIGITS / "standard.yaml", DIGITS / f"{overlay}.yaml") == 0
    run_dir = tmp_path / "runs" / f"digits_{overlay}" / "version_0"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["init_args"]["model"] == "resnet20"  # the base recipe is kept
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2
    columns = metric_columns(run_dir)
    assert "train/loss" in columns and "val/acc" in columns
    if overlay == "augmix":
        assert "train/loss_consistency" in columns
    if overlay == "ema":
        check_ema_checkpoint(run_dir, checkpoint, columns)


def check_ema_checkpoint(run_dir, checkpoint, columns):
    """The EMA weights are saved in the checkpoint, restored on load and evaluated."""
    assert "val_ema/acc" in columns
    state = checkpoint["state_dict"]
    ema_keys = [k for k in state if k.startswith("ema.module.")]
    assert ema_keys and int(state["ema.num_updates"]) == 2
    key = "ema.module.backbone.fc.weight"
    assert not torch.equal(state[key], state["model.backbone.fc.weight"])
    restored = ClassificationTask.load_from_checkpoint(
        run_dir / "checkpoints" / "last.ckpt", weights_only=True
    )
    assert restored.ema is not None and restored.hparams.ema_decay == 0.99
    assert torch.equal(restored.ema.module.backbone.fc.weight, state[key])
    assert int(restored.ema.num_updates) == 2


def test_stylize_overlay_with_local_fake_weights(tmp_path, monkeypatch):
    """The overlay's paths are placeholders: it fails clearly as is, and trains once tiny fake
    AdaIN weights and styles are given on the command line."""
    monkeypatch.chdir(tmp_path)
    recipes = (DIGITS / "standard.yaml", DIGITS / "stylize.yaml")
    with pytest.raises(SystemExit) as info:
        fit(*recipes)
    assert info.value.code == 2
    fake = write_fake_adain(tmp_path / "adain")
    spec = {"name": "stylize", **fake, "prob": 1.0}
    assert fit(*recipes, extra=["--model.init_args.batch_augment", f"[{spec}]"]) == 0
    checkpoint = torch.load(
        tmp_path / "runs" / "digits_stylize" / "version_0" / "checkpoints" / "last.ckpt",
        weights_only=True,
    )
    assert not any("stylize" in k or "batch_augment" in k for k in checkpoint["state_dict"])


def test_overlay_composes_with_adversarial_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = ["--trainer.logger.init_args.name", "digits_pgd_at_mixup"]
    extra += ["--model.init_args.steps", "1"]  # one PGD step keeps the test quick
    assert fit(DIGITS / "pgd_at.yaml", DIGITS / "mixup.yaml", extra=extra) == 0
    run_dir = tmp_path / "runs" / "digits_pgd_at_mixup" / "version_0"
    assert "train/loss_adv" in metric_columns(run_dir)


def test_augmix_with_adversarial_training_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        fit(DIGITS / "pgd_at.yaml", DIGITS / "augmix.yaml")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "AdversarialTrainingTask replaces the training loss" in err and "views: 1" in err
    assert "Traceback" not in err


def print_config(capsys, *configs):
    args = ["fit"]
    for config in configs:
        args += ["--config", str(config)]
    with pytest.raises(SystemExit):
        cli_main([*args, "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("base", ["standard", "pgd_at"])
def test_overlays_merge_nested_keys_instead_of_replacing_sections(base, capsys):
    """jsonargparse merges an overlay's ``model.init_args`` / ``data.init_args`` /
    ``trainer.logger.init_args`` into the base recipe's: only the technique (and the run name)
    changes."""
    reference = print_config(capsys, DIGITS / f"{base}.yaml")
    for overlay in [*OVERLAYS, "stylize"]:
        merged = print_config(capsys, DIGITS / f"{base}.yaml", DIGITS / f"{overlay}.yaml")
        changed = {
            f"{section}.{key}"
            for section in ("model", "data")
            for key, value in merged[section]["init_args"].items()
            if reference[section]["init_args"].get(key) != value
        }
        expected = {
            "mixup": {"model.batch_augment"},
            "cutmix": {"model.batch_augment"},
            "random_erasing": {"model.batch_augment"},
            "stylize": {"model.batch_augment"},
            "autoaugment": {"data.augment_policy"},
            "randaugment": {"data.augment_policy"},
            "trivialaugment": {"data.augment_policy"},
            "augmix": {"data.augment_policy"},  # consistency_weight: 12 is the default
            "label_smooth": {"model.label_smoothing"},
            "ema": {"model.ema_decay"},
        }[overlay]
        assert changed == expected, overlay
        assert merged["model"]["class_path"] == reference["model"]["class_path"]
        assert merged["data"]["class_path"] == reference["data"]["class_path"]
        assert merged["trainer"]["max_epochs"] == reference["trainer"]["max_epochs"]
        assert merged["trainer"]["callbacks"] == reference["trainer"]["callbacks"]
        logger = merged["trainer"]["logger"]
        assert logger["init_args"]["name"] == f"digits_{overlay}"
        assert logger["init_args"]["save_dir"] == "runs"


def test_overlay_then_wandb_layer_keeps_the_run_name(capsys):
    merged = print_config(
        capsys, DIGITS / "standard.yaml", DIGITS / "mixup.yaml", RECIPES / "loggers" / "wandb.yaml"
    )
    logger = merged["trainer"]["logger"]
    assert logger["class_path"].endswith("WandbLogger")
    assert logger["init_args"]["name"] == "digits_mixup"
    assert merged["model"]["init_args"]["batch_augment"] == [{"name": "mixup", "alpha": 1.0}]


@pytest.mark.parametrize("dataset", ["cifar10", "imagenet"])
def test_cifar_and_imagenet_overlays_parse(dataset, capsys):
    for overlay in sorted((RECIPES / dataset).glob("*.yaml")):
        if "class_path" in yaml.safe_load(overlay.read_text()).get("model", {}):
            continue  # a full recipe (standard, the adversarial-training family), not an overlay
        merged = print_config(capsys, RECIPES / dataset / "standard.yaml", overlay)
        assert merged["trainer"]["logger"]["init_args"]["name"] == f"{dataset}_{overlay.stem}"


def test_compare_accepts_base_plus_overlay_recipes():
    combo = Path(f"{DIGITS / 'standard.yaml'}+{DIGITS / 'mixup.yaml'}")
    assert recipe_files(combo) == [DIGITS / "standard.yaml", DIGITS / "mixup.yaml"]
    taken: set[str] = set()
    assert run_name(DIGITS / "standard.yaml", taken) == "standard"
    assert run_name(combo, taken) == "standard+mixup"
    assert run_name(combo, taken) == "digits/standard+mixup"
