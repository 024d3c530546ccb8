"""Randomized smoothing (Cohen, Rosenfeld & Kolter, 2019): the statistics against scipy, the
radius formula, CERTIFY on a classifier whose probabilities under noise are known, a digits
model, bad input, the Gaussian-noise training overlay and the benchmark item."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from conftest import RECIPES
from torch import Tensor, nn

from robustart.augment import build_batch_augmentations
from robustart.errors import ConfigError, EmptyInputError, InputRangeError, NonFiniteError
from robustart.evaluation.benchmark import benchmark
from robustart.evaluation.certification import (
    ABSTAIN,
    SmoothedClassifier,
    binomial_test_half,
    certified_radius,
    certify_images,
    check_certification_settings,
    clopper_pearson_lower,
)
from robustart.evaluation.items import load_benchmark_suite
from robustart.main import cli_main

ZOO = "zoo:digits_resnet20_standard"


# ----------------------------------------------------------------------------- statistics
def test_radius_is_sigma_times_inverse_normal_cdf():
    assert certified_radius(0.5, 0.25) == 0.0
    assert certified_radius(0.8413447460685429, 0.25) == pytest.approx(0.25, rel=1e-9)  # Φ(1)
    assert certified_radius(0.975, 0.5) == pytest.approx(0.5 * 1.959963984540054, rel=1e-9)
    assert certified_radius(0.99, 1.0) == pytest.approx(2.3263478740408408, rel=1e-9)
    assert certified_radius(0.9, 0.12) == pytest.approx(0.12 * 1.2815515655446004, rel=1e-9)
    for p, sigma in [(0.49, 0.25), (1.0, 0.25), (0.9, 0.0)]:
        with pytest.raises(ConfigError):
            certified_radius(p, sigma)


CASES = [(k, n) for n in (1, 2, 7, 10, 100, 1000) for k in sorted({0, 1, n // 3, n // 2, n - 1, n})]
CASES += [(0, 100_000), (1, 100_000), (99_000, 100_000), (99_999, 100_000), (100_000, 100_000)]


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05, 0.5])
def test_clopper_pearson_lower_bound_matches_scipy_beta_quantile(alpha):
    from scipy.stats import beta

    for k, n in CASES:
        expected = 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))
        got = clopper_pearson_lower(k, n, alpha)
        assert got == pytest.approx(expected, rel=1e-8, abs=1e-13), (k, n)
    assert clopper_pearson_lower(5, 5, alpha) == pytest.approx(alpha**0.2)  # hand-computed
    assert clopper_pearson_lower(1, 1, alpha) == pytest.approx(alpha)


def test_binomial_test_matches_scipy():
    from scipy.stats import binomtest

    for n in (1, 2, 5, 10, 11, 100, 201, 5000):
        for k in sorted({0, 1, n // 3, n // 2, (n + 1) // 2, n - 1, n} - {-1}):
            expected = binomtest(k, n, 0.5).pvalue
            assert binomial_test_half(k, n) == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert binomial_test_half(10, 10) == pytest.approx(2 / 1024)  # hand-computed


def test_bad_counts_raise():
    with pytest.raises(EmptyInputError):
        clopper_pearson_lower(0, 0, 0.01)
    with pytest.raises(ConfigError):
        clopper_pearson_lower(5, 4, 0.01)
    with pytest.raises(ConfigError):
        clopper_pearson_lower(1, 4, 0.0)


# ----------------------------------------------------------------------------- analytic model
class Threshold(nn.Module):
    """Classifies a one-pixel image x by bins of x: class c if ``edges[c-1] <= x < edges[c]``.
    Under noise N(0, σ²) the probability of each class is a difference of normal CDFs."""

    def __init__(self, edges: tuple[float, ...] = (0.5,)) -> None:
        super().__init__()
        self.register_buffer("edges", torch.tensor(edges))

    def forward(self, images: Tensor) -> Tensor:
        x = images.flatten(1)[:, :1]
        labels = (x >= self.edges).sum(dim=1)
        return torch.nn.functional.one_hot(labels, len(self.edges) + 1).float() * 5.0


def pixel(value: float) -> Tensor:
    return torch.full((1, 1, 1, 1), value)


def test_certified_radius_approaches_the_true_radius_from_below():
    """x = 0.7, boundary 0.5, σ = 0.25: P(class 1 under noise) = Φ(0.2/σ), so the exact
    certified radius σ · Φ⁻¹(p) is the margin 0.2; the Monte Carlo radius stays below it and
    tends to it as n grows."""
    sigma, true_radius = 0.25, 0.2
    smoothed = SmoothedClassifier(Threshold(), 2, sigma, batch_size=100_000)
    gaps = []
    for n in (100, 1000, 10_000, 100_000):
        generator = torch.Generator().manual_seed(n)
        label, radius, guess = smoothed.certify(pixel(0.7)[0], 100, n, 0.001, generator)
        assert label == guess == 1
        assert 0 < radius < true_radius
        gaps.append(true_radius - radius)
    assert gaps[-1] < 0.01 and gaps[-1] < gaps[1] < gaps[0]


def test_abstains_when_no_class_has_probability_above_half():
    # two classes split evenly: p_A = 1/2, the lower bound is below 1/2
    smoothed = SmoothedClassifier(Threshold(), 2, 0.25)
    label, radius, _ = smoothed.certify(pixel(0.5)[0], 100, 2000, 0.001, torch.Generator())
    assert (label, radius) == (ABSTAIN, 0.0)
    assert smoothed.predict(pixel(0.5)[0], 2000, 0.001, torch.Generator()) == ABSTAIN
    # three classes: 0 and 2 each have probability Φ(-0.1) ≈ 0.46 < 1/2 under σ = 1
    three = SmoothedClassifier(Threshold((0.4, 0.6)), 3, 1.0)
    assert three.certify(pixel(0.5)[0], 100, 2000, 0.001, torch.Generator())[0] == ABSTAIN
    # far from the boundary PREDICT answers
    assert smoothed.predict(pixel(0.95)[0], 1000, 0.001, torch.Generator()) == 1


def test_certification_is_deterministic_per_seed_and_per_image():
    model = Threshold()
    images = torch.tensor([0.55, 0.6, 0.7, 0.2]).view(4, 1, 1, 1)
    labels = torch.tensor([1, 1, 1, 0])
    kwargs = {"sigma": 0.25, "n0": 20, "n": 300, "n_predict": 50}
    first = certify_images(model, images, labels, 2, seed=3, **kwargs)
    again = certify_images(model, images, labels, 2, seed=3, **kwargs)
    assert torch.equal(first.radii, again.radii) and torch.equal(
        first.predictions, again.predictions
    )
    other = certify_images(model, images, labels, 2, seed=4, **kwargs)
    assert not torch.equal(first.radii, other.radii)
    # per-image seeds: two shards give the numbers of one call
    head = certify_images(model, images[:2], labels[:2], 2, seed=3, **kwargs)
    tail = certify_images(model, images[2:], labels[2:], 2, seed=3, first_index=2, **kwargs)
    assert torch.equal(torch.cat([head.radii, tail.radii]), first.radii)


def test_bad_input_raises():
    images, labels = torch.rand(2, 1, 1, 1), torch.tensor([0, 1])

    class NaN(nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 2), float("nan"))

    with pytest.raises(NonFiniteError):
        certify_images(NaN(), images, labels, 2, sigma=0.25, n0=4, n=8)
    with pytest.raises(InputRangeError):
        certify_images(Threshold(), images, torch.tensor([0, 2]), 2, sigma=0.25, n0=4, n=8)
    with pytest.raises(InputRangeError):
        certify_images(Threshold(), images + 2, labels, 2, sigma=0.25, n0=4, n=8)
    with pytest.raises(ConfigError, match="logits have shape"):
        certify_images(Threshold(), images, labels, 3, sigma=0.25, n0=4, n=8)
    with pytest.raises(EmptyInputError):
        certify_images(Threshold(), images[:0], labels[:0], 2, sigma=0.25, n0=4, n=8)
    for bad in ({"sigma": 0.0}, {"n": 0}, {"alpha": 1.0}, {"batch_size": 0}):
        with pytest.raises(ConfigError):
            certify_images(Threshold(), images, labels, 2, **{"sigma": 0.25, "n0": 4, **bad})


# ----------------------------------------------------------------------------- digits model
def test_digits_model_certified_accuracy_is_bounded_and_non_increasing(standard):
    model, images, labels = standard
    model.train()  # the mode is restored afterwards
    radii = [0.0, 0.1, 0.25, 0.5, 0.75]
    result = certify_images(
        model, images[:8], labels[:8], 10, sigma=0.25, n0=16, n=200, n_predict=100, seed=0
    )
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    accuracy = result.certified_accuracy(radii)
    values = [accuracy[r] for r in radii]
    assert values == sorted(values, reverse=True)  # non-increasing in the radius
    assert values[0] <= result.guess_accuracy
    assert values[0] <= result.smoothed_accuracy
    assert values[0] == pytest.approx(float(result.correct.float().mean()))
    assert result.abstention_rate == int((result.predictions == ABSTAIN).sum()) / 8
    # n = 200 at α = 0.001 caps p_A's lower bound at 0.001^(1/200): radius ≤ σ Φ⁻¹(0.966)
    assert float(result.radii.max()) <= certified_radius(0.001 ** (1 / 200), 0.25) + 1e-12
    assert values[0] > 0.5  # the standard model is right on most digits at σ = 0.25


# ----------------------------------------------------------------------------- training
def test_gaussian_noise_augmentation_adds_unclamped_noise_of_sigma():
    (noise,) = build_batch_augmentations([{"name": "gaussian_noise", "sigma": 0.25}], 10)
    torch.manual_seed(0)
    images, labels = torch.rand(64, 3, 32, 32), torch.arange(64) % 10
    noisy, targets = noise(images, labels)
    delta = noisy - images
    assert float(delta.std()) == pytest.approx(0.25, rel=0.01)
    assert abs(float(delta.mean())) < 0.005
    assert float(noisy.min()) < 0 and float(noisy.max()) > 1  # not clamped, as in the paper
    assert torch.equal(targets, labels)
    with pytest.raises(ConfigError):
        build_batch_augmentations([{"name": "gaussian_noise", "sigma": -1}], 10)


def test_gaussian_noise_overlay_parses_on_the_standard_recipe(capsys):
    def merged(*configs):
        args = ["fit"]
        for config in configs:
            args += ["--config", str(config)]
        with pytest.raises(SystemExit):
            cli_main([*args, "--print_config"])
        return yaml.safe_load(capsys.readouterr().out)

    digits = RECIPES / "digits"
    reference = merged(digits / "standard.yaml")
    config = merged(digits / "standard.yaml", digits / "gaussian_noise.yaml")
    assert config["model"]["init_args"]["batch_augment"] == [
        {"name": "gaussian_noise", "sigma": 0.25}
    ]
    changed = {
        key
        for key, value in config["model"]["init_args"].items()
        if reference["model"]["init_args"].get(key) != value
    }
    assert changed == {"batch_augment"}
    assert config["data"] == reference["data"]
    assert config["trainer"]["logger"]["init_args"]["name"] == "digits_gaussian_noise"


# ----------------------------------------------------------------------------- benchmark
@pytest.mark.parametrize(
    "section, match",
    [
        ({"sigma": 0}, "sigma"),
        ({"sigma": 64}, r"certification.sigma is 64, .* \[0, 1\] pixel scale .* 0\.251"),
        ({"n": 0}, "certification.n must"),
        ({"n0": 1.5}, "n0"),
        ({"alpha": 1.5}, "alpha"),
        ({"radii": [-0.5]}, "radii"),
        ({"radii": []}, "radii"),
        # before: accepted, and the column read 0 for any model (n = 8 certifies up to 0.17)
        ({"n": 8, "alpha": 0.1, "radii": [0.5]}, r"the largest certifiable radius is .* 0\.169"),
        ({"n": 8, "radii": [0]}, "no radius can be certified"),
        ({"sigmas": 0.25}, "unknown keys"),
        ([0.25], "mapping"),
    ],
)
def test_certification_section_is_validated(section, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_benchmark_suite({"certification": section})
    assert "\n" not in str(info.value)


def test_benchmark_certification_item_and_leaderboard():
    section = {"sigma": 0.25, "n0": 8, "n": 64, "alpha": 0.001, "radii": [0, 0.1, 0.25]}
    result = benchmark(
        ZOO, "digits", {"certification": section}, num_images=16, batch_size=8, progress=False
    )
    (model,) = result.models.values()
    assert list(model.items) == ["clean", "certification"]
    item = model.item("certification")
    assert item["settings"]["n"] == 64 and item["settings"]["sigma"] == 0.25
    assert set(item["certified_accuracy"]) == {"0", "0.1", "0.25"}
    assert len(item["per_image"]["radius"]) == 16
    accuracy = [item["certified_accuracy"][r] for r in ("0", "0.1", "0.25")]
    assert accuracy == sorted(accuracy, reverse=True)
    predictions = item["per_image"]["prediction"]
    assert item["abstention_rate"] == sum(p == ABSTAIN for p in predictions) / 16
    table = result.leaderboard()
    for r in ("0", "0.1", "0.25"):
        column = table.headers.index(f"certified @r={r}")
        assert table.rows[0][column] == pytest.approx(100 * item["certified_accuracy"][r])
    assert not math.isnan(accuracy[0])


def test_a_study_reports_certified_accuracy_per_model(tmp_path):
    """Certification is a suite item like any other: in a study it becomes leaderboard columns
    (and the terminal summary's), one per radius, non-increasing in the radius."""
    from robustart.evaluation.study import run_study

    models = [
        {"spec": "zoo:digits_resnet20_standard", "family": "a", "technique": "standard"},
        {"spec": "zoo:digits_resnet20_pgd_at", "family": "a", "technique": "pgd_at"},
    ]
    section = {"sigma": 0.25, "n0": 8, "n": 64, "alpha": 0.001, "radii": [0, 0.25]}
    spec = {"name": "cert", "num_images": 12, "models": models, "suite": {"certification": section}}
    study = run_study(spec, tmp_path, device="cpu", progress=False)
    summary = study.summary()
    assert {"certified @r=0", "certified @r=0.25"} <= set(summary.headers)
    first, second = (summary.headers.index(f"certified @r={r}") for r in ("0", "0.25"))
    for row in summary.rows:
        assert 0 <= row[second] <= row[first] <= 100
    assert "certified @r=0.25" in (tmp_path / "study.md").read_text()


def test_radii_that_round_to_one_metric_name_are_refused():
    with pytest.raises(ConfigError, match="round to the same metric name"):
        check_certification_settings({"radii": [0.25, 0.2500001]})
