"""``robustart compare`` refuses what would make its table wrong: a stored run reused after a
file its recipe names has changed (the run is trained again instead), and recipes tested on
different evaluations (refused before any training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import RECIPES, expect_cli_error

from robustart.cli.compare import check_recipes
from robustart.errors import ConfigError
from robustart.main import cli_main

STANDARD = RECIPES / "digits" / "standard.yaml"
MIXUP = RECIPES / "digits" / "mixup.yaml"
FREE_AT = RECIPES / "digits" / "free_at.yaml"

#: A tiny run: one training batch, one test batch, 8 images tested by the suite ``{suite}``.
LAYER = """\
trainer:
  max_epochs: 1
  limit_train_batches: 1
  limit_val_batches: 1
  limit_test_batches: 1
  enable_progress_bar: false
  enable_model_summary: false
  callbacks:
    - class_path: robustart.callbacks.RobustnessEvaluation
      init_args:
        num_images: {num_images}
        batch_size: 8
        progress: false
        attacks: []
        corruptions: []
        test_suite: {suite}
checkpoint:
  monitor: null
"""


def fgsm_suite(eps: str, steps: int | None = None) -> str:
    """A suite of one attack: FGSM at ``eps``, or PGD with ``steps``."""
    attack = "fgsm" if steps is None else f"pgd, steps: {steps}"
    return f"attacks:\n  - {{name: {attack}, norm: linf, eps: [{eps}]}}\n"


def write_layer(path: Path, suite: str, num_images: int = 8) -> Path:
    path.write_text(LAYER.format(suite=suite, num_images=num_images))
    return path


def compare(capsys, *args) -> tuple[str, str]:
    """Run ``robustart compare`` (into ``cmp``) and return its stdout and stderr."""
    assert cli_main(["compare", "--output", "cmp", *map(str, args)]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def table_columns() -> list[str]:
    return json.loads(Path("cmp/comparison.json").read_text())["table"]["headers"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --------------------------------------------------------------------------- stored runs
def test_a_changed_suite_file_is_tested_again_not_reused(workdir, capsys):
    """The recipe names its test suite by a (relative) path: when the file changes, the stored
    run is stale and the recipe is trained and tested again; unchanged, it is reused."""
    suite = workdir / "suite.yaml"
    suite.write_text(fgsm_suite("8/255"))
    layer = write_layer(workdir / "layer.yaml", "suite.yaml")
    compare(capsys, STANDARD, "--common", layer)
    assert "fgsm_linf 8/255" in table_columns()

    suite.write_text(fgsm_suite("2/255"))
    out, err = compare(capsys, STANDARD, "--common", layer)
    assert "reusing" not in err
    assert "fgsm_linf 2/255" in out and "fgsm_linf 8/255" not in out
    assert table_columns()[-1] == "fgsm_linf 2/255"

    _, err = compare(capsys, STANDARD, "--common", layer)
    assert err.count("reusing") == 1


def test_a_changed_named_suite_or_fit_argument_is_tested_again(workdir, capsys, monkeypatch):
    """A suite named by its name (``test_suite: mini``, found in the suites folder) is part of
    the identity too, and so are the arguments after ``--``."""
    suites = workdir / "suites"
    suites.mkdir()
    monkeypatch.setenv("ROBUSTART_SUITES", str(suites))
    (suites / "mini.yaml").write_text(fgsm_suite("8/255"))
    layer = write_layer(workdir / "layer.yaml", "mini")
    compare(capsys, STANDARD, "--common", layer)

    (suites / "mini.yaml").write_text(fgsm_suite("4/255"))
    out, err = compare(capsys, STANDARD, "--common", layer)
    assert "reusing" not in err and "fgsm_linf 4/255" in out

    _, err = compare(capsys, STANDARD, "--common", layer, "--", "--trainer.max_epochs", "2")
    assert "reusing" not in err


# --------------------------------------------------------------------------- one evaluation
def test_recipes_tested_on_different_suites_are_refused_before_training(workdir, capsys):
    (workdir / "fgsm.yaml").write_text(fgsm_suite("8/255"))
    (workdir / "pgd.yaml").write_text(
        fgsm_suite("8/255", steps=2) + "corruptions: [brightness]\nseverities: [1]\n"
    )
    first = write_layer(workdir / "a.yaml", "fgsm.yaml")
    second = write_layer(workdir / "b.yaml", "pgd.yaml")
    line = expect_cli_error(
        capsys,
        "compare",
        f"{STANDARD}+{first}",
        f"{STANDARD}+{second}",
        "--output",
        "cmp",
        match=f"recipes {STANDARD}+{first} and {STANDARD}+{second} are tested on different",
    )
    assert "attacks [fgsm_linf at 8/255] vs [pgd2_linf at 8/255]" in line
    assert "corruptions [] vs ['brightness']" in line
    assert not list(workdir.glob("**/*.ckpt")) and not (workdir / "cmp").exists()


def test_a_different_subset_or_attack_setting_is_named(workdir):
    """A subset of another size is named; attacks alike by label and budget but not by
    setting are named with the settings that differ."""
    (workdir / "a.yaml").write_text(fgsm_suite("8/255", steps=2))
    (workdir / "b.yaml").write_text(
        "attacks:\n  - {name: pgd, norm: linf, eps: [8/255], steps: 2, step_size: 1/255}\n"
    )
    first = Path(f"{STANDARD}+{write_layer(workdir / 'first.yaml', 'a.yaml')}")
    bigger = Path(f"{STANDARD}+{write_layer(workdir / 'big.yaml', 'a.yaml', num_images=16)}")
    with pytest.raises(ConfigError, match=r"\(num images 8 vs 16\)"):
        check_recipes([first, bigger], [], [])
    other = Path(f"{STANDARD}+{write_layer(workdir / 'second.yaml', 'b.yaml')}")
    with pytest.raises(
        ConfigError, match=r"\(attacks pgd2_linf at 8/255: step_size 1.25\*eps vs "
    ) as info:
        check_recipes([first, other], [], [])
    assert "num images" not in str(info.value) and "steps" not in str(info.value)


def test_recipes_that_differ_only_in_training_are_accepted(workdir):
    """A technique overlay, or another training method whose evaluation differs only during
    fit (free_at evaluates every epoch), is tested on the same suite: accepted, each with its
    own identity."""
    recipes = [STANDARD, Path(f"{STANDARD}+{MIXUP}"), FREE_AT]
    digests = check_recipes(recipes, [], [])
    assert len(set(digests)) == 3
    assert check_recipes(recipes, [], []) == digests  # the same configuration, the same identity


def test_a_warm_up_longer_than_training_is_refused_before_any_recipe_trains(workdir):
    """Before: `compare` trained and tested the first recipe (104 s here, hours with the
    CIFAR recipes), then refused the second recipe's warm-up of 20 epochs in a 1-epoch run."""
    layer = write_layer(workdir / "layer.yaml", "a.yaml")
    (workdir / "a.yaml").write_text(fgsm_suite("8/255"))
    (workdir / "warm.yaml").write_text("model:\n  init_args:\n    warmup_epochs: 20\n")
    warm = Path(f"{STANDARD}+{layer}+{workdir / 'warm.yaml'}")
    with pytest.raises(ConfigError, match="warmup_epochs is 20"):
        check_recipes([Path(f"{STANDARD}+{layer}"), warm], [], [])


def test_a_consistency_weight_without_augmix_is_refused_before_any_recipe_trains(workdir):
    """The AugMix weight is read only on multi-view batches: set on a recipe without AugMix it
    would be ignored; `compare` refuses it with the other recipes' checks, before training."""
    (workdir / "jsd.yaml").write_text("model:\n  init_args:\n    consistency_weight: 6.0\n")
    with pytest.raises(ConfigError, match="consistency_weight 6 weighs AugMix"):
        check_recipes([STANDARD, Path(f"{STANDARD}+{workdir / 'jsd.yaml'}")], [], [])
    augmix = RECIPES / "digits" / "augmix.yaml"
    check_recipes([Path(f"{STANDARD}+{augmix}+{workdir / 'jsd.yaml'}")], [], [])


def test_other_frost_photographs_change_a_recipes_identity(workdir, monkeypatch):
    """Before: `compare` reused a stored run after $ROBUSTART_FROST_DIR changed (21.9 reused
    against 25.0 afresh): the photographs are read outside the configuration."""
    from PIL import Image

    from robustart.corruptions.frost import FROST_ENV

    (workdir / "frost.yaml").write_text("corruptions: [frost]\nseverities: [1]\n")
    recipe = Path(f"{STANDARD}+{write_layer(workdir / 'layer.yaml', 'frost.yaml')}")
    first = check_recipes([recipe], [], [])
    assert check_recipes([recipe], [], []) == first
    (workdir / "white").mkdir()
    Image.new("RGB", (300, 300), (255, 255, 255)).save(workdir / "white" / "frost1.png")
    monkeypatch.setenv(FROST_ENV, str(workdir / "white"))
    assert check_recipes([recipe], [], []) != first


def test_a_repeated_seed_is_refused(workdir, capsys):
    """Before: `--seeds 1 1` quietly ran one seed and reported no spread."""
    expect_cli_error(
        capsys, "compare", STANDARD, "--seeds", "1", "1", match="--seeds lists 1 more than once"
    )
    assert not (workdir / "comparison").exists()
