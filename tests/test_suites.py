"""Named robustness suites (YAML), the test-time suite and the corruption figures and summary."""

import re
from pathlib import Path

import pytest
from lightning.pytorch import Trainer

from robustart.callbacks import RobustnessEvaluation
from robustart.data import DigitsDataModule
from robustart.errors import ConfigError, UnknownNameError
from robustart.evaluation import load_suite, suite_names
from robustart.metrics import ALEXNET_ERRORS
from robustart.tasks import ClassificationTask


def test_every_shipped_suite_loads_and_has_the_promised_content():
    names = suite_names()
    assert {"epoch_end", "autoattack_linf", "autoattack_l2", "digits_final"} <= set(names)
    for name in names:
        assert len(load_suite(name)) > 1, name
    cheap = load_suite("epoch_end")
    assert [e.label for e in cheap.attacks] == ["pgd10_linf", "apgd_ce20_linf"]
    final = load_suite("autoattack_linf")
    autoattack = next(e for e in final.attacks if e.attack.name == "autoattack")
    assert [m.name for m in autoattack.attack.members] == ["apgd", "apgd_t", "fab_t", "square"]
    assert [m.config.get("steps") for m in autoattack.attack.members[:3]] == [100, 100, 100]
    assert autoattack.attack.members[3].queries == 5000
    assert set(ALEXNET_ERRORS) <= set(final.corruption_names)
    assert "robust/worst_case_linf/eps=8_255" in final.worst_case_groups()


def test_suite_from_file_and_mapping_agree(tmp_path):
    spec = {"attacks": [{"name": "fgsm", "eps": ["8/255"]}], "corruptions": ["contrast"]}
    path = tmp_path / "mine.yaml"
    path.write_text("attacks:\n  - {name: fgsm, eps: [8/255]}\ncorruptions: [contrast]\n")
    assert load_suite(spec).keys() == load_suite(path).keys() == load_suite(str(path)).keys()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_suite", "unknown robustness suite 'no_such_suite'.*epoch_end"),
        ("missing/file.yaml", "does not exist"),
        ({"attack": []}, "unknown keys \\['attack'\\]"),
        ({"attacks": [{"name": "pgdd", "eps": 0.1}]}, "pgdd"),
        # wrong types: one line naming the key, not a TypeError from inside the suite
        ({"corruptions": ["contrast"], "severities": 3}, r"list of severities 1..5 \(e.g. \[3\]\)"),
        ({"corruptions": ["contrast"], "severities": "1-5"}, "list of severities"),
        ({"corruptions": ["contrast"], "severities": [2, 2]}, "listed twice"),
        ({"corruptions": ["contrast"], "severities": [0]}, "from 1 to 5"),
        ({"corruptions": [{"name": "contrast", "severity": 2}]}, "entry #1 must be a corruption"),
        ({"corruptions": 5}, "list of corruption names or 'all'"),
    ],
)
def test_bad_suites_are_refused_with_clear_errors(spec, message):
    with pytest.raises((ConfigError, UnknownNameError), match=message):
        load_suite(spec)


def test_malformed_suite_file_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("attacks: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_suite(path)
    path.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_suite(path)


def test_suite_and_explicit_attacks_are_exclusive():
    with pytest.raises(ConfigError, match="either suite or attacks"):
        RobustnessEvaluation(suite="epoch_end", attacks=[])


def test_test_suite_runs_at_test_time_with_figures_and_corruption_summary(trained_model, tmp_path):
    fit_suite = {"attacks": [{"name": "pgd", "eps": ["8/255"], "steps": 2}], "corruptions": []}
    test_suite = {
        "attacks": [
            {"name": "fgsm", "eps": ["8/255"]},
            {"name": "pgd", "eps": ["8/255"], "steps": 3},
        ],
        "corruptions": ["gaussian_noise", "contrast"],
        "severities": [1, 5],
    }
    callback = RobustnessEvaluation(
        suite=fit_suite,
        test_suite=test_suite,
        num_images=16,
        batch_size=8,
        progress=False,
        save_dir=str(tmp_path),
    )
    task = ClassificationTask(model="resnet20", mean=(0.3,) * 3, std=(0.33,) * 3)
    task.model.load_state_dict(trained_model.state_dict())
    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        default_root_dir=tmp_path,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
        limit_test_batches=1,
    )
    datamodule = DigitsDataModule(batch_size=32)
    trainer.validate(task, datamodule=datamodule)
    assert "robust/pgd2_linf/eps=8_255" in trainer.callback_metrics
    assert not (tmp_path / "corruption_heatmap.png").exists()  # no corruptions during fit

    trainer.test(task, datamodule=datamodule)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert "test_robust/pgd3_linf/eps=8_255" in logged
    assert "test_robust/worst_case_linf/eps=8_255" in logged
    assert logged["test_robust/worst_case_linf/eps=8_255"] <= min(
        logged["test_robust/pgd3_linf/eps=8_255"], logged["test_robust/fgsm_linf/eps=8_255"]
    )
    # corruption summary of 32-px digits: the unnormalised mCE (mean error, percent); no CE
    # normalised by AlexNet's ImageNet-C errors, which belong to 224-px ImageNet images
    pairs = {k: v for k, v in logged.items() if re.fullmatch(r"test_corruption/\w+/\d", k)}
    expected = 100 * sum(1 - a for a in pairs.values()) / len(pairs)
    assert logged["test_corruption_error/unnormalized_mce"] == pytest.approx(expected, rel=1e-5)
    assert not any(k.startswith("test_corruption_error/gaussian_noise") for k in logged)
    assert "test_corruption_error/mce" not in logged
    for name in ("corruption_heatmap_test.png", "corruption_gallery.png"):
        assert Path(tmp_path / name).stat().st_size > 1000, name


def test_final_evaluation_layer_keeps_the_recipe_callback_and_adds_the_test_suite(capsys):
    import yaml

    from robustart.main import cli_main

    root = Path(__file__).resolve().parents[1] / "recipes"
    args = ["test", "--config", str(root / "digits" / "pgd_at.yaml")]
    args += ["--config", str(root / "evaluation" / "digits_final.yaml"), "--print_config"]
    with pytest.raises(SystemExit):
        cli_main(args)
    (callback,) = yaml.safe_load(capsys.readouterr().out)["trainer"]["callbacks"]
    assert callback["init_args"]["test_suite"] == "digits_final"
    assert callback["init_args"]["every_n_epochs"] == 4  # from the recipe
    RobustnessEvaluation(**{k: v for k, v in callback["init_args"].items()})  # builds


@pytest.mark.parametrize("name", suite_names())
def test_every_shipped_suite_corrupts_at_every_severity_on_a_fresh_install(name, monkeypatch):
    """The final suites used to stop at frost (no photographs on a fresh install) after hours of
    attacks; with the shipped photographs every corruption of every suite runs."""
    import torch

    from robustart.utils import make_generator

    monkeypatch.delenv("ROBUSTART_FROST_DIR", raising=False)  # the shipped photographs
    suite = load_suite(name)
    size = 224 if "imagenet" in name else 32
    images = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    for corruption_name, corruption in suite.corruptions.items():
        for severity in suite.severities:
            out = corruption(images, severity, make_generator(severity))
            assert out.shape == images.shape and torch.isfinite(out).all(), corruption_name


def test_budgets_that_round_to_one_metric_name_are_refused():
    """0.12345671 and 0.12345674 were two budgets with one metric name (eps=0.123457): the
    second result overwrote the first in every report."""
    with pytest.raises(ConfigError, match="round to the same metric name"):
        load_suite({"attacks": [{"name": "fgsm", "eps": [0.12345671, 0.12345674]}]})
    suite = load_suite({"attacks": [{"name": "fgsm", "eps": [1e-5, 1.1e-5, "8/255"]}]})
    assert len(set(suite.keys())) == 4


def test_an_evaluation_attack_with_the_kl_loss_is_refused_when_the_suite_is_built():
    """loss: kl was accepted and failed at the first batch with a plain ValueError."""
    with pytest.raises(ConfigError, match="loss kl needs soft labels"):
        load_suite({"attacks": [{"name": "pgd", "eps": "8/255", "loss": "kl"}]})
