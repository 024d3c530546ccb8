"""Evaluation set-ups that must be refused before any work: a changed model behind unchanged
weights never reuses stored results, replicates with identical weights, factory models that do
not fit the data, a study's W&B section that cannot log, more images than the split holds."""

import json
import re

import pytest
import torch
from torch import nn

from robustart.errors import CheckpointError, ConfigError
from robustart.evaluation.benchmark import benchmark
from robustart.evaluation.study import load_study, run_study
from robustart.main import cli_main

SUITE = {"corruptions": ["contrast"], "severities": [1]}


class Shifted(nn.Module):
    """A linear classifier behind ``(x - shift)``: two shifts, the same parameters."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = shift
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - self.shift)


def unshifted() -> nn.Module:
    return Shifted(0.0)


def shifted() -> nn.Module:
    return Shifted(0.5)


def twelve_classes() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 12))


def grey() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10))


def half() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).half()


def exploding() -> nn.Module:
    raise RuntimeError("factory exploded")


def thousand_classes_at_32_px() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 1000))


def needs_width(width: int) -> nn.Module:
    return nn.Linear(width, 10)


def _cli_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("robustart: error:"), err
    return err[0]


# ----------------------------------------------------------------------------- resume key
def test_equal_weights_behind_another_factory_do_not_reuse_results(tmp_path):
    kwargs = dict(suite=SUITE, num_images=16, batch_size=16, device="cpu", progress=False)
    first = benchmark({"m": "test_evaluation_refusals:unshifted"}, output=tmp_path, **kwargs)
    second = benchmark({"m": "test_evaluation_refusals:shifted"}, output=tmp_path, **kwargs)
    assert first.models["m"].checksum == second.models["m"].checksum  # same weights
    assert second.reused == []
    assert first.models["m"].item("clean") != second.models["m"].item("clean")
    again = benchmark({"m": "test_evaluation_refusals:shifted"}, output=tmp_path, **kwargs)
    assert len(again.reused) == 2  # the same model still resumes
    assert again.models["m"].item("clean") == second.models["m"].item("clean")


# ----------------------------------------------------------------------------- factories
@pytest.mark.parametrize(
    ("factory", "match"),
    [
        ("twelve_classes", "has 12 outputs but the data has 10 classes"),
        ("grey", r"fails on float32 \(N, 3, 32, 32\) images .*shapes cannot be multiplied"),
        ("half", r"its parameters are torch.float16: return model.float\(\)"),
        ("exploding", r"exploding\(\) raised RuntimeError: factory exploded"),
        ("needs_width", r"needs_width\(width: int\) needs arguments"),
    ],
)
def test_factories_that_do_not_fit_the_data_are_refused_by_benchmark(
    capsys, tmp_path, factory, match
):
    spec = f"test_evaluation_refusals:{factory}"
    args = ["--suite", "quick", "--num-images", "4", "--device", "cpu"]
    err = _cli_error(capsys, ["benchmark", spec, *args, "--output", str(tmp_path / "b")])
    assert spec in err
    assert re.search(match, err), err
    assert not (tmp_path / "b" / "items").exists()


def test_factory_with_other_classes_is_refused_by_transfer_and_study(capsys, tmp_path):
    spec = "test_evaluation_refusals:twelve_classes"
    args = ["--num-images", "4", "--device", "cpu", "--output", str(tmp_path / "t")]
    err = _cli_error(capsys, ["transfer", spec, "test_evaluation_refusals:shifted", *args])
    assert "has 12 outputs but the data has 10 classes" in err
    study = {"models": [{"spec": spec}], "num_images": 4, "suite": SUITE}
    with pytest.raises(ConfigError, match="has 12 outputs but the data has 10 classes"):
        run_study(study, tmp_path / "s", device="cpu", progress=False)
    assert not (tmp_path / "s" / "benchmark").exists()


def test_a_module_given_to_benchmark_is_checked_against_the_data():
    with pytest.raises(ConfigError, match="model 'x' has 12 outputs but the data has 10"):
        benchmark({"x": twelve_classes()}, suite=SUITE, num_images=4, progress=False)


# ----------------------------------------------------------------------------- study
def test_replicates_with_identical_weights_are_refused(tmp_path):
    same_spec = [{"spec": "zoo:digits_resnet20_standard", "name": n, "group": "std"} for n in "ab"]
    with pytest.raises(ConfigError, match=r"lists 'a' .* and 'b' .* load the same weights"):
        load_study({"models": same_spec})
    # two specs, one set of weights: found when the models are loaded, before evaluation
    models = [
        {"spec": "test_evaluation_refusals:unshifted", "name": "a", "group": "g"},
        {"spec": "test_evaluation_refusals:shifted", "name": "b", "group": "g"},
    ]
    with pytest.raises(ConfigError, match=r"'a' .* and 'b' .* hold the same weights \(sha256"):
        run_study({"models": models, "num_images": 4, "suite": SUITE}, tmp_path, device="cpu")
    assert not (tmp_path / "benchmark").exists()


def test_one_set_of_weights_under_two_techniques_is_refused(tmp_path):
    """Before: a study listing one checkpoint as "standard" and as "pgd_at" compared the network
    with itself, with no warning."""
    twice = [
        {"spec": "zoo:digits_resnet20_standard", "name": "a", "technique": "standard"},
        {"spec": "zoo:digits_resnet20_standard", "name": "b", "technique": "pgd_at"},
    ]
    with pytest.raises(ConfigError, match=r"'a' .*technique 'standard'.* and 'b' .* load the "):
        load_study({"models": twice})
    models = [
        {"spec": "test_evaluation_refusals:unshifted", "name": "a", "technique": "standard"},
        {"spec": "test_evaluation_refusals:shifted", "name": "b", "technique": "pgd_at"},
    ]
    with pytest.raises(ConfigError, match=r"hold the same weights \(sha256 .* itself under two"):
        run_study({"models": models, "num_images": 4, "suite": SUITE}, tmp_path, device="cpu")
    assert not (tmp_path / "benchmark").exists()


def test_a_transfer_section_needs_two_models():
    """Before: a one-model study with `transfer:` ran and reported an empty matrix."""
    study = {"models": ["zoo:digits_resnet20_standard"], "transfer": {"name": "fgsm"}}
    with pytest.raises(ConfigError, match=r"`transfer:` section .* lists 1 model"):
        load_study(study)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("seed", "abc", "study seed must be an integer >= 0, got 'abc'"),
        ("batch_size", 2.5, "study batch_size must be an integer >= 1, got 2.5"),
        ("num_images", True, "study num_images must be an integer >= 1, got True"),
        # before: an overflow traceback from torch's manual_seed
        ("seed", 2**64, r"study seed must be an integer from 0 to 4294967295"),
    ],
)
def test_study_integers_are_checked_when_loaded(key, value, match):
    with pytest.raises(ConfigError, match=match):
        load_study({"models": ["zoo:digits_resnet20_standard"], key: value})


def test_misspelt_wandb_key_is_refused_with_the_close_match(capsys, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("models: [zoo:digits_resnet20_standard]\nwandb: {projct: x}\n")
    err = _cli_error(capsys, ["study", str(path), "--output", str(tmp_path / "out")])
    assert "'projct'" in err and "project" in err
    assert not (tmp_path / "out").exists()


@pytest.fixture
def no_wandb_account(tmp_path, monkeypatch):
    """An environment where W&B has no credentials: no key, no netrc, online mode."""
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.chdir(tmp_path)
    yield
    import wandb

    wandb.teardown()


TINY_STUDY = {
    "name": "w",
    "num_images": 4,
    "batch_size": 4,
    "models": [{"spec": "test_evaluation_refusals:shifted", "family": "l"}],
    "suite": SUITE,
}


def test_study_that_cannot_log_to_wandb_is_refused_before_evaluating(no_wandb_account, tmp_path):
    study = {**TINY_STUDY, "wandb": {"project": "robustart", "dir": str(tmp_path)}}
    with pytest.raises(ConfigError, match=r"wandb login.*WANDB_MODE=offline"):
        run_study(study, tmp_path / "out", device="cpu", progress=False)
    assert not (tmp_path / "out" / "benchmark").exists()


def test_study_logs_offline_with_mode_in_its_wandb_section(no_wandb_account, tmp_path):
    import wandb
    from wandb_run import offline_runs

    section = {"project": "robustart", "dir": str(tmp_path), "mode": "offline", "tags": ["t"]}
    run_study({**TINY_STUDY, "wandb": section}, tmp_path / "out", device="cpu", progress=False)
    wandb.teardown()
    (run,) = offline_runs(tmp_path)
    assert run.run["job_type"] == "study"
    (row,) = run.rows_with("study/leaderboard")
    assert len(run.table(row, "study/leaderboard")["data"]) == 1


# ----------------------------------------------------------------------------- minor
def test_more_images_than_the_split_holds_are_refused(capsys, tmp_path):
    with pytest.raises(ConfigError, match=r"100000 images requested but .* holds only 250"):
        benchmark("zoo:digits_resnet20_standard", suite=SUITE, num_images=100000, progress=False)
    args = ["--num-images", "100000", "--device", "cpu", "--output", str(tmp_path / "o")]
    err = _cli_error(capsys, ["benchmark", "test_evaluation_refusals:shifted", *args])
    assert "holds only 250" in err
    # the command's default (1000) is an upper bound: the 250 images of the split
    suite = tmp_path / "suite.yaml"
    suite.write_text("corruptions: [contrast]\nseverities: [1]\n")
    args = ["--suite", str(suite), "--device", "cpu", "--no-progress"]
    out = tmp_path / "d"
    cli_main(["benchmark", "test_evaluation_refusals:shifted", *args, "--output", str(out)])
    assert json.loads((out / "benchmark.json").read_text())["settings"]["num_images"] == 250


def test_a_checkpoint_argument_naming_a_directory_says_so(capsys, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    args = ["--num-images", "4", "--device", "cpu", "--output", str(tmp_path / "o")]
    err = _cli_error(capsys, ["benchmark", str(tmp_path), *args])
    assert "is a directory, not a checkpoint file" in err and "last.ckpt" in err
    from robustart.models.weights import check_checkpoint_file

    with pytest.raises(CheckpointError, match=r"--ckpt_path .* is a directory"):
        check_checkpoint_file(tmp_path)


def test_shift_benchmarks_check_factory_models_on_their_image_size(tmp_path):
    """``robustart shift`` loads its models through the benchmark's ModelData, which names the
    side of the images the benchmark feeds: a factory's model is run once on it when loaded."""
    from robustart.evaluation.benchmarks import CIFAR10_MODELS, IMAGENET_MODELS, get_benchmark
    from robustart.evaluation.benchmarks.base import ShiftSettings
    from robustart.models.loading import load_models

    assert (CIFAR10_MODELS.image_size, IMAGENET_MODELS.image_size) == (32, 224)
    with pytest.raises(ConfigError, match="has 12 outputs but the data has 10 classes"):
        load_models({"m": "test_evaluation_refusals:twelve_classes"}, CIFAR10_MODELS)
    small = "test_evaluation_refusals:thousand_classes_at_32_px"  # refused at 224 px
    with pytest.raises(ConfigError, match="224, 224"):
        load_models({"m": small}, IMAGENET_MODELS)
    settings = ShiftSettings(root=tmp_path, crop_size=64)
    assert get_benchmark("imagenet-s").model_data(settings).image_size == 64


# ------------------------------------------------------------- fourth audit (evaluation)
def test_study_wandb_dir_below_a_file_is_refused_before_evaluating(tmp_path):
    """W&B fell back to /tmp without a word, after the whole study."""
    (tmp_path / "afile").write_text("x")
    section = {"mode": "offline", "dir": str(tmp_path / "afile" / "wandb")}
    with pytest.raises(ConfigError, match=r"W&B folder \(wandb: dir\) .* is below .*afile"):
        run_study({**TINY_STUDY, "wandb": section}, tmp_path / "out", device="cpu")
    assert not (tmp_path / "out" / "benchmark").exists()


def test_a_study_drops_and_does_not_log_an_earlier_studys_figures(no_wandb_account, tmp_path):
    """A study without corruptions logged the Pareto figure a previous study left behind."""
    import wandb
    from PIL import Image
    from wandb_run import offline_runs

    out = tmp_path / "out"
    out.mkdir()
    stale = [out / "pareto_corruption.png", out / "scaling_law.png"]
    for path in stale:
        Image.new("RGB", (4, 4)).save(path)
    study = {**TINY_STUDY, "suite": {"attacks": [{"name": "fgsm", "eps": "8/255"}]}}
    section = {"project": "robustart", "dir": str(tmp_path), "mode": "offline"}
    run_study({**study, "wandb": section}, out, device="cpu", progress=False)
    wandb.teardown()
    assert not any(path.exists() for path in stale)
    (run,) = offline_runs(tmp_path)
    logged = {key for row in run.history for key in row if key.startswith("study_figures/")}
    assert logged and not logged & {"study_figures/pareto_corruption", "study_figures/scaling_law"}
    assert logged <= {f"study_figures/{p.stem}" for p in out.glob("*.png")}


@pytest.mark.parametrize("num_images", [0, -5, 2.5, True])
def test_robustness_callback_refuses_a_bad_subset_size_when_built(num_images):
    """``num_images: 0`` was refused only after the first training epochs."""
    from robustart.callbacks import RobustnessEvaluation

    with pytest.raises(ConfigError, match="num_images must be a whole number >= 1"):
        RobustnessEvaluation(num_images=num_images, attacks=[], corruptions=[])
    assert RobustnessEvaluation(num_images=None, attacks=[], corruptions=[]).num_images is None


def test_shift_refuses_a_subset_given_twice(capsys, tmp_path):
    argv = ["shift", "zoo:digits_resnet20_standard", "--benchmark", "cifar10-c", "--data-root"]
    argv += [str(tmp_path), "--subsets", "fog,gaussian_noise,fog", "--output", str(tmp_path / "o")]
    err = _cli_error(capsys, argv)
    assert "--subsets lists fog more than once" in err


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--steps", "2", "--attack-arg", "steps=1"], "'steps' is given by --steps and --attack"),
        (["--attack-arg", "eps=0.1"], "'eps' is given by --eps and --attack-arg"),
        (["--attack-arg", "restarts=1", "--attack-arg", "restarts=2"], "twice with --attack"),
        # before: a yaml.ParserError traceback
        (["--attack-arg", "restarts=[1"], "'restarts=[1' is not valid YAML"),
    ],
)
def test_transfer_refuses_an_attack_setting_given_twice(capsys, tmp_path, extra, match):
    argv = ["transfer", "zoo:digits_resnet20_standard", "zoo:digits_resnet20_pgd_at", *extra]
    err = _cli_error(capsys, [*argv, "--output", str(tmp_path / "t")])
    assert match in err


def test_a_perturbation_crop_of_zero_pixels_is_refused():
    from robustart.perturbations import perturb

    with pytest.raises(ConfigError, match="crop must be at least 1 pixel"):
        perturb(torch.rand(1, 3, 16, 16), "rotate", crop=0)


def test_a_clean_only_evaluation_refuses_images_outside_zero_one():
    """uint8 images were made float (0-255) and a clean-only suite scored them (0.0)."""
    from robustart.errors import InputRangeError
    from robustart.evaluation import RobustnessSuite
    from robustart.evaluation.runner import evaluate_robustness

    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    images, labels = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    suite = RobustnessSuite(corruptions=[])
    with pytest.raises(InputRangeError, match=r"float tensor in \[0, 1\].*uint8"):
        evaluate_robustness(model, [(0, (images * 255).to(torch.uint8), labels)], suite, "cpu")
    with pytest.raises(InputRangeError, match=r"must lie in \[0, 1\]"):
        evaluate_robustness(model, [(0, images * 255, labels)], suite, "cpu")
    with pytest.raises(InputRangeError, match=r"must lie in \[0, 1\]"):
        suite.run_batch(model, (images - 0.5) / 0.25, labels, 0, 0)
    assert evaluate_robustness(model, [(0, images, labels)], suite, "cpu").num_images == 4
