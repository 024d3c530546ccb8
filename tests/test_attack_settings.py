"""Attack settings are checked when the attack is built: a bad setting gets an error, never an
accuracy.

Before these checks, PGD with ``rel_step_size`` ≤ 0, MI-FGSM with a negative decay or C&W with
a negative κ ran without attacking and reported 100 % robust accuracy; ``step_size=nan`` slipped
past a ``<= 0`` check; an L∞ budget of 8 (pixel units) reported 0 % under ``@2040/255``;
``steps=2.7`` was truncated to 2 and ``steps="ten"`` failed with a raw ``ValueError``; int32
labels failed inside the attack with a ``RuntimeError``. Everything is tiny (8-px images, a
linear model).
"""

from __future__ import annotations

import copy
import math
import re
import warnings

import pytest
import torch
from torch import nn

from robustart.attacks import FGSM, PGD, create_attack
from robustart.errors import ConfigError, InputRangeError
from robustart.evaluation.suite import RobustnessSuite
from robustart.utils import make_generator

NAN, INF = math.nan, math.inf


def tiny_batch() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A linear 10-class model, 6 images (3, 8, 8) and labels it mostly gets right."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    images = torch.rand(6, 3, 8, 8)
    with torch.no_grad():
        labels = model(images).argmax(dim=1)
    return model, images, labels


# ============================================================================= real settings
BAD_NUMBERS = [
    ("pgd", "rel_step_size", -0.25, "> 0"),
    ("pgd", "rel_step_size", 0, "> 0"),
    ("pgd", "rel_step_size", NAN, "> 0"),
    ("pgd", "step_size", NAN, "> 0"),
    ("pgd", "step_size", INF, "> 0"),
    ("pgd", "step_size", 0.0, "> 0"),
    ("pgd", "step_size", "-2/255", "> 0"),
    ("mifgsm", "decay", -5, ">= 0"),
    ("mifgsm", "decay", NAN, ">= 0"),
    ("mifgsm", "rel_step_size", -1.0, "> 0"),
    ("cw", "kappa", -1.0, ">= 0"),
    ("cw", "kappa", NAN, ">= 0"),
    ("cw", "lr", NAN, "> 0"),
    ("cw", "lr", -0.01, "> 0"),
    ("cw", "initial_const", INF, "> 0"),
    ("apgd", "initial_step", 0.0, "> 0"),
    ("apgd", "initial_step", NAN, "> 0"),
    ("apgd", "momentum", 0.0, r"in \(0, 1\]"),
    ("apgd", "rho", NAN, r"in \(0, 1\]"),
    ("apgd_t", "rho", 1.5, r"in \(0, 1\]"),
    ("deepfool", "overshoot", NAN, ">= 0"),
    ("deepfool", "overshoot", -0.02, ">= 0"),
    ("fab_t", "eta", INF, ">= 1"),
    ("fab_t", "eta", 0.5, ">= 1"),
    ("fab_t", "alpha_max", NAN, r"in \[0, 1\]"),
    ("fab_t", "beta", 1.5, r"in \[0, 1\]"),
    ("square", "p_init", 0.0, r"in \(0, 1\]"),
    ("square", "p_init", NAN, r"in \(0, 1\]"),
]


@pytest.mark.parametrize(
    ("name", "setting", "value", "accepted"),
    BAD_NUMBERS,
    ids=[f"{n}-{s}={v}" for n, s, v, _ in BAD_NUMBERS],
)
def test_bad_real_settings_are_refused_at_construction(name, setting, value, accepted):
    with pytest.raises(ConfigError) as error:
        create_attack(name, **{setting: value})
    message = str(error.value)
    assert f"attack {name!r}" in message and setting in message and repr(value) in message
    assert re.search(f"must be a finite number {accepted}", message), message


def test_pgd_with_a_negative_relative_step_no_longer_reports_full_robustness():
    """The audit's case: PGD with rel_step_size -0.25 reported 100 % robust accuracy."""
    with pytest.raises(ConfigError, match=r"rel_step_size must be a finite number > 0"):
        create_attack("pgd", eps="8/255", steps=10, rel_step_size=-0.25)


def test_ensemble_members_are_checked_when_the_ensemble_is_built():
    with pytest.raises(ConfigError, match="attack 'apgd': rho must be a finite number"):
        create_attack("autoattack", attacks=[{"name": "apgd", "steps": 2, "rho": NAN}])
    with pytest.raises(ConfigError, match="mapping with a 'name'"):
        create_attack("autoattack", attacks=["apgd"])


def test_valid_settings_and_their_defaults_are_still_accepted():
    pgd = create_attack("pgd", steps=10, step_size="2/255", restarts=2)
    assert pgd.step_size == pytest.approx(2 / 255) and pgd.restarts == 2
    assert create_attack("pgd", steps=10).rel_step_size == pytest.approx(0.25)
    assert create_attack("mifgsm", decay=0.0).decay == 0.0
    assert create_attack("cw", kappa=0.5, lr="1/100").lr == pytest.approx(0.01)
    assert create_attack("fab_t", eta=1.0, alpha_max=0.0, beta=1.0).eta == 1.0
    assert create_attack("square", p_init=1.0).p_init == 1.0
    assert create_attack("apgd", momentum=1.0, rho=1.0).momentum == 1.0
    assert create_attack("fgsm").rel_step_size == 1.0
    assert len(create_attack("autoattack").members) == 4


# ============================================================================= integer settings
BAD_INTEGERS = [
    ("pgd", "steps", "ten"),
    ("pgd", "steps", "abc"),
    ("pgd", "steps", 2.7),
    ("pgd", "steps", True),
    ("pgd", "steps", NAN),
    ("pgd", "restarts", 1.5),
    ("mifgsm", "steps", "ten"),
    ("apgd", "steps", 0),
    ("apgd_t", "num_targets", 2.5),
    ("cw", "binary_steps", 0.5),
    ("square", "queries", 2.5),
    ("deepfool", "num_classes", 2.5),
    ("fab_t", "restarts", "x"),
]


@pytest.mark.parametrize(
    ("name", "setting", "value"), BAD_INTEGERS, ids=[f"{n}-{s}={v}" for n, s, v in BAD_INTEGERS]
)
def test_non_integral_integer_settings_are_refused(name, setting, value):
    """Before: 2.7 was truncated to 2, "ten" raised a raw ValueError from int()."""
    with pytest.raises(ConfigError, match=f"attack {name!r}: {setting} must be an integer"):
        create_attack(name, **{setting: value})


def test_integral_floats_and_integer_strings_are_accepted():
    assert create_attack("pgd", steps=10.0).steps == 10
    assert create_attack("pgd", steps="3").steps == 3
    assert create_attack("mifgsm", steps=4.0).rel_step_size == pytest.approx(0.25)
    assert create_attack("square", queries=100.0).queries == 100


@pytest.mark.parametrize(
    ("name", "setting", "value"),
    [
        ("pgd", "early_stop", "no"),
        ("pgd", "track_best", "false"),
        ("pgd", "random_start", "no"),
        ("apgd", "random_start", "yes"),
        ("cw", "abort_early", "off"),
    ],
)
def test_on_off_settings_refuse_strings(name, setting, value):
    """Before: bool("no") is True, so early_stop: "no" switched early stopping on."""
    with pytest.raises(ConfigError, match=f"attack {name!r}: {setting} must be true"):
        create_attack(name, **{setting: value})


def test_random_start_one_means_a_uniform_start():
    """Before: random_start=1 passed the check (1 == True) but started from the image."""
    assert create_attack("pgd", random_start=1).random_start == "uniform"
    assert create_attack("pgd", random_start=False).random_start is False
    assert create_attack("pgd", random_start="normal").random_start == "normal"


# ============================================================================= L∞ budgets
@pytest.mark.parametrize("name", ["pgd", "fgsm", "apgd", "square", "fab_t", "autoattack"])
def test_linf_budget_in_pixel_units_is_refused(name):
    """Before: eps 8 (meant as 8/255) reported 0 % under the column @2040/255."""
    with pytest.raises(ConfigError, match=r"L∞ eps must be at most 1 .* e\.g\. 8/255"):
        create_attack(name, eps=8, norm="linf")


def test_linf_step_size_in_pixel_units_is_refused():
    """Before: step_size 2 (meant as 2/255) ran: every step jumped to a corner of the ε-ball,
    a weaker attack than asked for, with no word of it (also in PGD adversarial training)."""
    with pytest.raises(ConfigError, match=r"L∞ step_size must be at most 1"):
        create_attack("pgd", eps="8/255", step_size=2)
    assert create_attack("pgd", eps="8/255", step_size="2/255").step_size == 2 / 255
    assert create_attack("pgd", norm="l2", eps=0.5, step_size=1.5).step_size == 1.5


def test_linf_budget_above_one_is_refused_per_call_and_per_image():
    model, images, labels = tiny_batch()
    attack = create_attack("fgsm")
    with pytest.raises(ConfigError, match="at most 1"):
        attack(model, images, labels, eps=2.0)
    with pytest.raises(ConfigError, match="at most 1"):
        attack(model, images, labels, eps="8")
    with pytest.raises(ConfigError, match="at most 1"):
        attack(model, images, labels, eps=torch.tensor([0.1, 0.1, 3.0, 0.1, 0.1, 0.1]))


def test_largest_linf_budget_and_other_norms_are_accepted():
    model, images, labels = tiny_batch()
    adv = create_attack("fgsm", eps=1.0)(model, images, labels)
    assert adv.shape == images.shape
    assert create_attack("pgd", norm="l2", eps=2.0).eps == 2.0
    assert create_attack("pgd", norm="l1", eps=16.0).eps == 16.0
    assert create_attack("deepfool", norm="linf", eps="inf").eps == math.inf
    with pytest.raises(ConfigError, match="at most 1"):
        create_attack("deepfool", norm="linf", eps=2.0)
    for bad in (-0.5, NAN):
        with pytest.raises(ConfigError, match="eps"):
            create_attack("pgd", norm="l2", eps=bad)


def test_l2_and_l1_budgets_beyond_any_image_difference_are_refused():
    """Before: an L2 eps of 128 (meant as 128/255) was run and reported as a column; no two
    images are further apart than √(C·H·W) in L2 (C·H·W in L1). The largest budget passes."""
    model, images, labels = tiny_batch()
    values = images[0].numel()
    for norm, largest in (("l2", math.sqrt(values)), ("l1", float(values))):
        create_attack("pgd", norm=norm, eps=largest, steps=1)(model, images, labels)
        with pytest.raises(ConfigError, match=f"an {norm.upper()} eps of .* write e.g."):
            create_attack("pgd", norm=norm, eps=largest * 1.01, steps=1)(model, images, labels)
        per_image = torch.full((len(images),), largest * 2)
        with pytest.raises(ConfigError, match="the distance between a black and a white"):
            create_attack("pgd", norm=norm, steps=1)(model, images, labels, eps=per_image)


# ============================================================================= suites
@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"name": "pgd", "eps": ["8/255"], "steps": 10, "rel_step_size": -0.25}, "rel_step_size"),
        ({"name": "pgd", "eps": ["8/255"], "steps": 10, "rel_step_size": 0}, "rel_step_size"),
        ({"name": "pgd", "eps": ["8/255"], "steps": 10, "step_size": NAN}, "step_size"),
        ({"name": "mifgsm", "eps": ["8/255"], "decay": -5}, "decay"),
        ({"name": "pgd", "eps": ["8/255"], "steps": "ten"}, "steps must be an integer"),
        ({"name": "pgd", "eps": [8], "steps": 2}, "at most 1"),
        ({"name": "pgd", "eps": ["4/255", 8], "steps": 2}, "at most 1"),
    ],
    ids=["rel-negative", "rel-zero", "step-nan", "decay", "steps-ten", "eps-8", "second-eps-8"],
)
def test_suites_refuse_bad_attack_settings(spec, match):
    with pytest.raises(ConfigError, match=match):
        RobustnessSuite(attacks=[spec])


@pytest.mark.parametrize(
    ("label", "match"),
    [
        # before: accepted; 7 crashed the figures after the whole evaluation (benchmark, fit)
        (7, "label must be a non-empty string, got 7"),
        ("", "label must be a non-empty string"),
        # before: overwritten by the suite's own worst case / clean results
        ("worst_case_linf", "a name of the suite's own results"),
        ("clean", "a name of the suite's own results"),
        ("pgd/strong", "holds '/' or whitespace"),
    ],
)
def test_suites_refuse_labels_that_cannot_name_a_metric(label, match):
    with pytest.raises(ConfigError, match=match):
        RobustnessSuite(attacks=[{"name": "fgsm", "eps": ["8/255"], "label": label}])
    search = {"attack": "pgd", "steps": 2, "eps_max": "16/255", "label": label}
    with pytest.raises(ConfigError, match=match):
        RobustnessSuite(minimal_eps=[search])
    RobustnessSuite(attacks=[{"name": "fgsm", "eps": ["8/255"], "label": "fgsm-strong_2.0"}])


def test_suite_accepts_linf_one_and_large_l2_budgets():
    suite = RobustnessSuite(
        attacks=[
            {"name": "pgd", "eps": ["8/255", 1.0], "steps": 2},
            {"name": "pgd", "norm": "l2", "eps": [0.5, 4.0], "steps": 2},
        ]
    )
    assert len(suite.attack_keys()) == 4


# ============================================================================= labels
INT_LABEL_ATTACKS = {
    "fgsm": {},
    "pgd": {"steps": 2},
    "mifgsm": {"steps": 2},
    "apgd": {"steps": 2},
    "apgd_t": {"steps": 2, "num_targets": 2},
    "square": {"queries": 3},
    "deepfool": {"steps": 2},
    "cw": {"steps": 2, "binary_steps": 1},
    "fab_t": {"steps": 2, "num_targets": 2},
    "autoattack": {"version": "fast"},
}


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
@pytest.mark.parametrize("name", list(INT_LABEL_ATTACKS))
def test_any_integer_label_dtype_gives_the_int64_result(name, dtype):
    """Before: int32 labels raised a RuntimeError inside the losses."""
    model, images, labels = tiny_batch()
    eps = "inf" if name in ("cw", "deepfool") else "8/255"
    attack = create_attack(name, eps=eps, **INT_LABEL_ATTACKS[name])
    expected = attack(model, images, labels, generator=make_generator(0))
    adv = attack(model, images, labels.to(dtype), generator=make_generator(0))
    assert torch.equal(adv, expected)


@pytest.mark.parametrize("name", list(INT_LABEL_ATTACKS))
def test_a_float64_model_is_attacked_as_its_float32_copy(name):
    """Before: every attack raised "mat1 and mat2 must have the same dtype" on a float64 model
    (the attacks work on float32 images). Now the model gets float64 input; the result is
    float64 (the images' dtype), within the budget, and as strong as on the float32 copy."""
    model, images, labels = tiny_batch()
    model64 = copy.deepcopy(model).double()
    eps = "inf" if name in ("cw", "deepfool") else "16/255"
    attack = create_attack(name, eps=eps, **INT_LABEL_ATTACKS[name])
    adv32 = attack(model, images, labels, generator=make_generator(0))
    adv64 = attack(model64, images.double(), labels, generator=make_generator(0))
    assert adv64.dtype == torch.float64 and adv64.shape == images.shape
    if eps != "inf":
        assert float((adv64 - images.double()).abs().max()) <= 16 / 255 + 1e-6
    with torch.no_grad():
        fooled32 = int((model(adv32).argmax(1) != labels).sum())
        fooled64 = int((model64(adv64).argmax(1) != labels).sum())
    assert fooled64 == fooled32 > 0


def test_float_labels_are_still_refused():
    model, images, labels = tiny_batch()
    with pytest.raises(InputRangeError, match="integer class indices"):
        create_attack("pgd", steps=1)(model, images, labels.float())


def test_a_minimal_eps_search_refuses_a_pixel_unit_linf_eps_max_when_built() -> None:
    from robustart.evaluation.minimal import MinimalEpsilonSearch

    with pytest.raises(ConfigError, match="8/255"):
        MinimalEpsilonSearch("pgd", {"steps": 2}, norm="linf", eps_max=16)
    MinimalEpsilonSearch("pgd", {"steps": 2}, norm="l2", eps_max=16)  # L2 budgets may exceed 1


def test_a_float64_model_gets_the_numbers_of_its_float32_copy_from_the_suite():
    from robustart.evaluation import evaluate_robustness, iterate_chunks
    from robustart.evaluation.suite import load_suite

    model, images, labels = tiny_batch()
    suite = load_suite(
        {
            "attacks": [{"name": "pgd", "eps": ["4/255"], "steps": 2}],
            "corruptions": ["gaussian_noise"],
            "severities": [3],
        }
    )
    data = list(zip(images, labels))
    numbers = [
        evaluate_robustness(m, iterate_chunks(data, 3), suite, device="cpu", seed=0).metrics()
        for m in (model, copy.deepcopy(model).double())
    ]
    assert numbers[1] == numbers[0]


# ------------------------------------------------------------------ step size vs budget
def test_a_pgd_whose_steps_cannot_cross_its_budget_is_flagged():
    """``steps · step_size < eps`` cannot reach the edge of the ball: a weaker attack than its
    budget says. Madry et al.'s default (2.5·eps/steps) and FGSM-like attacks are silent."""
    with pytest.warns(UserWarning, match=r"cannot reach the edge of its budget"):
        short = PGD(eps=0.5, norm="l2", steps=10, step_size="2/255")
    assert short.reach() == pytest.approx(10 * 2 / 255 / 0.5)
    with pytest.warns(UserWarning, match="raise step_size or steps"):
        PGD(eps="8/255", steps=2, rel_step_size=0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for attack in (
            PGD(eps=0.5, norm="l2", steps=10),
            PGD(eps="8/255", steps=4, step_size="2/255"),  # exactly reaches eps
            PGD(eps=0.0, steps=1, step_size="1/255"),
            FGSM(eps="8/255"),
            create_attack("mifgsm", eps="8/255", steps=7),
        ):
            assert attack.reach() >= 1 - 1e-6


def test_sweeps_and_searches_flag_each_budget_out_of_reach():
    """A suite's ε list is checked per budget (an absolute step reaches 2/255, not 16/255), and
    a minimal-ε search against its ``eps_max``, not the attack's unused default ε."""
    spec = {"name": "pgd", "eps": ["2/255", "16/255"], "steps": 10, "step_size": "1/255"}
    with pytest.warns(UserWarning, match=r"less than eps=0\.06275"):
        RobustnessSuite(attacks=[spec])
    args = {"steps": 20, "step_size": 0.001}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RobustnessSuite(minimal_eps=[{"attack": "pgd", "norm": "l2", "eps_max": 0.02, **args}])
    with pytest.warns(UserWarning, match=r"less than eps=0\.5"):
        RobustnessSuite(minimal_eps=[{"attack": "pgd", "norm": "l2", "eps_max": 0.5, **args}])
