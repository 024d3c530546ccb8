"""APGD, APGD-T, Square, C&W, MI-FGSM, L1/L2 PGD and the AutoAttack ensemble: strength against
torchattacks at the same budget, loss definitions, projections and bad input.

Strength comparisons use the zoo's standard digits ResNet-20 on 64 (Square: 32) test digits and
short runs (APGD 20 steps, Square 150 queries) where the two implementations still differ
measurably from no attack; our robust accuracy may exceed the reference by at most two images.
"""

from __future__ import annotations

import math

import pytest
import torch
from single_thread import one_thread  # noqa: F401
from torch import nn

from robustart.attacks import (
    APGD,
    ATTACK_LOSSES,
    MIFGSM,
    PGD,
    APGDTargeted,
    AutoAttack,
    CarliniWagnerL2,
    Square,
    create_attack,
    get_threat_model,
)
from robustart.attacks.apgd import checkpoint_intervals
from robustart.attacks.losses import targeted_dlr_loss
from robustart.errors import ConfigError, InputRangeError, UnknownNameError
from robustart.utils import make_generator

pytestmark = pytest.mark.usefixtures("one_thread")

#: Our robust accuracy may be at most this many images above torchattacks' (sampling noise).
SLACK_IMAGES = 2


def correct(model, images, labels) -> torch.Tensor:
    with torch.no_grad():
        return model(images).argmax(1) == labels


def n_correct(model, images, labels) -> int:
    return int(correct(model, images, labels).sum())


def linear_model(in_features: int = 3 * 8 * 8, classes: int = 10, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, classes)).eval()


APGD_EPS = 10 / 255


@pytest.fixture(scope="module")
def apgd_ce(standard):
    """Our APGD-CE, 20 steps at 10/255, seed 0: (adversarial images, correct mask)."""
    model, images, labels = standard
    adv = APGD(eps=APGD_EPS, steps=20)(model, images, labels, generator=make_generator(0))
    return adv, correct(model, adv, labels)


# ----------------------------------------------------------------------------- strength
def test_apgd_ce_is_at_least_as_strong_as_torchattacks(standard, apgd_ce):
    torchattacks = pytest.importorskip("torchattacks")
    model, images, labels = standard
    reference = torchattacks.APGD(model, eps=APGD_EPS, steps=20, loss="ce", seed=0)
    ref = n_correct(model, reference(images, labels), labels)
    ours = int(apgd_ce[1].sum())
    assert ours <= ref + SLACK_IMAGES, (ours, ref)
    assert ours < n_correct(model, images, labels) - 10  # the budget matters
    assert (apgd_ce[0] - images).abs().amax() <= APGD_EPS + 1e-6


def test_apgd_t_is_at_least_as_strong_as_apgd_ce(standard, apgd_ce):
    model, images, labels = standard
    attack = APGDTargeted(eps=APGD_EPS, steps=20, num_targets=3)
    adv = attack(model, images, labels, generator=make_generator(0))
    assert n_correct(model, adv, labels) <= int(apgd_ce[1].sum())
    assert (adv - images).abs().amax() <= APGD_EPS + 1e-6
    assert attack.label == "apgd_t20_linf"


@pytest.mark.slow  # 150 queries on 32 images, twice; Square runs by default in the recorded
# reference numbers (tests/test_reference_numbers.py) and the AutoAttack tests
def test_square_linf_is_at_least_as_strong_as_torchattacks(standard):
    torchattacks = pytest.importorskip("torchattacks")
    model, images, labels = standard
    images, labels = images[:32], labels[:32]
    eps, queries = 32 / 255, 150
    ref_adv = torchattacks.Square(model, eps=eps, n_queries=queries, seed=0)(images, labels)
    adv = Square(eps=eps, queries=queries)(model, images, labels, generator=make_generator(0))
    ours, ref = n_correct(model, adv, labels), n_correct(model, ref_adv, labels)
    assert ours <= ref + SLACK_IMAGES, (ours, ref)
    assert ours <= len(labels) - 8  # a query-limited attack still breaks a quarter at 32/255


def test_pgd_l2_is_at_least_as_strong_as_torchattacks(standard):
    torchattacks = pytest.importorskip("torchattacks")
    model, images, labels = standard
    eps = 1.5
    torch.manual_seed(0)
    reference = torchattacks.PGDL2(model, eps=eps, alpha=eps / 4, steps=10, random_start=True)
    ref = n_correct(model, reference(images, labels), labels)
    adv = PGD(norm="l2", eps=eps, steps=10, step_size=eps / 4)(
        model, images, labels, generator=make_generator(0)
    )
    ours = n_correct(model, adv, labels)
    assert ours <= ref + SLACK_IMAGES, (ours, ref)
    assert ours < len(labels) // 2
    assert (adv - images).flatten(1).norm(dim=1).max() <= eps + 1e-4


def test_mifgsm_matches_torchattacks_and_tracking_only_helps(standard):
    torchattacks = pytest.importorskip("torchattacks")
    model, images, labels = standard
    images, labels = images[:32], labels[:32]
    eps, steps = 8 / 255, 10
    reference = torchattacks.MIFGSM(model, eps=eps, alpha=eps / steps, steps=steps, decay=1.0)
    last = MIFGSM(eps=eps, steps=steps, track_best=False)(model, images, labels)
    torch.testing.assert_close(last, reference(images, labels), atol=1e-6, rtol=0)
    best = MIFGSM(eps=eps, steps=steps)(model, images, labels)
    assert n_correct(model, best, labels) <= n_correct(model, last, labels)
    assert n_correct(model, best, labels) < len(labels)


# ----------------------------------------------------------------------------- losses
def _hand_logits() -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.tensor(
        [
            [5.0, 3.0, 1.0, 0.0, -1.0],  # y = 0 on top
            [5.0, 3.0, 1.0, 0.0, -1.0],  # y = 2, misclassified
            [0.5, 2.0, 4.0, 1.0, 3.5],  # y = 4, second
            [1.0, 1.0, 1.0, 1.0, 2.0],  # y = 0, ties among the others
        ]
    )
    return logits, torch.tensor([0, 2, 4, 0])


def test_dlr_matches_formula_sign_and_torchattacks():
    logits, labels = _hand_logits()
    expected = []
    for z, y in zip(logits.tolist(), labels.tolist()):
        top = sorted(z, reverse=True)
        best_other = max(v for i, v in enumerate(z) if i != y)
        expected.append(-(z[y] - best_other) / (top[0] - top[2] + 1e-12))
    dlr = ATTACK_LOSSES.get("dlr")(logits, labels)
    torch.testing.assert_close(dlr, torch.tensor(expected))
    # sign: negative while correctly classified, positive once misclassified
    assert dlr[0] < 0 and dlr[1] > 0 and dlr[2] > 0
    torch.testing.assert_close(dlr[0], torch.tensor(-(5.0 - 3.0) / (5.0 - 1.0)))
    # invariant to shifting and (positive) scaling of the logits
    torch.testing.assert_close(ATTACK_LOSSES.get("dlr")(3 * logits + 7, labels), dlr)
    # the margin loss shares the sign convention
    margin = ATTACK_LOSSES.get("margin")(logits, labels)
    assert torch.equal(margin > 0, dlr > 0)
    torchattacks = pytest.importorskip("torchattacks")
    reference = torchattacks.APGD(linear_model(), loss="dlr").dlr_loss(logits, labels)
    torch.testing.assert_close(dlr, reference)


def test_targeted_dlr_matches_formula_and_sign():
    logits, labels = _hand_logits()
    targets = torch.tensor([1, 0, 2, 4])
    expected = []
    for z, y, t in zip(logits.tolist(), labels.tolist(), targets.tolist()):
        top = sorted(z, reverse=True)
        expected.append(-(z[y] - z[t]) / (top[0] - (top[2] + top[3]) / 2 + 1e-12))
    loss = targeted_dlr_loss(logits, labels, targets)
    torch.testing.assert_close(loss, torch.tensor(expected))
    # positive exactly when the target's logit beats the true class's
    target_wins = logits.gather(1, targets[:, None]) > logits.gather(1, labels[:, None])
    assert torch.equal(loss > 0, target_wins.squeeze(1))
    torch.testing.assert_close(targeted_dlr_loss(2 * logits - 1, labels, targets), loss)
    with pytest.raises(ConfigError, match="at least 4 classes"):
        targeted_dlr_loss(logits[:, :3], labels.clamp(max=2), targets.clamp(max=2))
    with pytest.raises(ConfigError, match="at least 3 classes"):
        ATTACK_LOSSES.get("dlr")(logits[:, :2], labels.clamp(max=1))


# ----------------------------------------------------------------------------- APGD(-T)
def test_apgd_checkpoint_intervals_hand_values():
    # Croce & Hein: checkpoints p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03,
    # 0.06), i.e. iterations 22, 41, 57, 70, 80, 87, 93, 99 for 100 iterations
    assert checkpoint_intervals(100) == [22, 19, 16, 13, 10, 7, 6, 6, 6]
    assert checkpoint_intervals(20) == [4, 3, 2] + [1] * 11
    assert checkpoint_intervals(10) == [2] + [1] * 8
    assert checkpoint_intervals(1) == [1]
    for steps in (1, 5, 20, 37, 100, 250):
        intervals = checkpoint_intervals(steps)
        assert sum(intervals[:-1]) < steps <= sum(intervals)


def test_apgd_t_targets_the_top_k_other_classes():
    logits, labels = _hand_logits()
    attack = APGDTargeted(num_targets=3)
    losses = attack.losses(logits, labels)
    assert len(losses) == 3
    for k, loss in enumerate(losses):
        # the k-th most likely class other than the true one, per sample
        order = [
            [c for c in sorted(range(5), key=lambda i: -row[i]) if c != y]
            for row, y in zip(logits.tolist(), labels.tolist())
        ]
        targets = torch.tensor([o[k] for o in order])
        torch.testing.assert_close(loss(logits, labels), targeted_dlr_loss(logits, labels, targets))
    assert len(APGDTargeted(num_targets=9).losses(logits, labels)) == 4  # K − 1 at most


def test_apgd_t_runs_every_target_and_restart_on_robust_points(monkeypatch):
    model = linear_model()
    images = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        labels = model(images).argmax(1)
    runs = []
    original = APGD.run

    def spy(self, model, x, y, *args, **kwargs):
        runs.append(x.shape[0])
        return original(self, model, x, y, *args, **kwargs)

    monkeypatch.setattr(APGD, "run", spy)
    attack = APGDTargeted(eps=1e-4, steps=3, num_targets=4, restarts=2)
    attack(model, images, labels, generator=make_generator(0))
    assert runs == [6] * 8  # nothing breaks at ε = 1e-4: 2 restarts × 4 targets on all six


# ----------------------------------------------------------------------------- ensemble
def test_autoattack_is_the_per_sample_worst_case(standard, monkeypatch):
    model, images, labels = standard
    images, labels = images[:32], labels[:32]
    eps = 12 / 255
    members = [
        {"name": "apgd", "steps": 10},
        {"name": "pgd", "steps": 5, "random_start": False},
        {"name": "fgsm"},
    ]
    ensemble = AutoAttack(eps=eps, attacks=members)
    sizes = []
    for member in ensemble.members:
        original = member.perturb

        def spy(model, x, *args, _original=original, **kwargs):
            sizes.append(x.shape[0])
            return _original(model, x, *args, **kwargs)

        monkeypatch.setattr(member, "perturb", spy)
    adv = ensemble(model, images, labels, generator=make_generator(0))
    worst = correct(model, adv, labels)
    alone = []
    for spec in members:
        settings = {k: v for k, v in spec.items() if k != "name"}
        attack = create_attack(spec["name"], eps=eps, **settings)
        adversarial = attack(model, images, labels, generator=make_generator(0))
        alone.append(correct(model, adversarial, labels))
    # robust under the ensemble = robust under every member (members are per-sample
    # deterministic here, and the first sees the same points and seed as when run alone)
    assert torch.equal(worst, alone[0] & alone[1] & alone[2])
    assert all(int(worst.sum()) <= int(a.sum()) for a in alone)
    # each member attacks only the points still robust after the previous ones
    clean = correct(model, images, labels)
    assert sizes[0] == int(clean.sum())
    assert sizes[1] == int((clean & alone[0]).sum())
    assert sizes[2] == int((clean & alone[0] & alone[1]).sum())
    assert (adv - images).abs().amax() <= eps + 1e-6


def test_autoattack_standard_version_and_bad_members():
    standard = AutoAttack(eps="8/255")
    assert [m.label for m in standard.members] == [
        "apgd_ce100_linf",
        "apgd_t100_linf",
        "fab_t100_linf",
        "square5000_linf",
    ]
    assert standard.members[1].num_targets == 9
    assert standard.members[2].num_targets == 9
    assert AutoAttack(norm="l2", eps=0.5).members[3].norm == "l2"
    with pytest.raises(ConfigError, match="unknown autoattack version"):
        AutoAttack(version="plus")
    with pytest.raises(ConfigError, match="share the ensemble's eps"):
        AutoAttack(attacks=[{"name": "pgd", "eps": 0.1}])
    with pytest.raises(UnknownNameError, match="Did you mean"):
        AutoAttack(attacks=[{"name": "apgdd"}])
    with pytest.raises(ConfigError, match="does not support norm 'l1'"):
        AutoAttack(norm="l1")


# ----------------------------------------------------------------------------- C&W
def test_cw_large_constant_breaks_nearly_everything(standard):
    model, images, labels = standard
    images, labels = images[:16], labels[:16]
    attack = CarliniWagnerL2(steps=30, binary_steps=1, initial_const=100.0)
    adv = attack(model, images, labels)
    assert n_correct(model, adv, labels) <= 2
    assert adv.min() >= 0 and adv.max() <= 1


def test_cw_binary_search_finds_smaller_l2_than_pgd(standard):
    model, images, labels = standard
    images, labels = images[:12], labels[:12]
    cw = CarliniWagnerL2(steps=30, binary_steps=3, initial_const=1.0)
    adv = cw(model, images, labels)
    fooled = ~correct(model, adv, labels)
    assert fooled.sum() >= 8
    cw_l2 = (adv - images).flatten(1).norm(dim=1)[fooled]
    pgd = PGD(norm="l2", eps=2.0, steps=10)(model, images, labels, generator=make_generator(0))
    pgd_fooled = ~correct(model, pgd, labels)
    pgd_l2 = (pgd - images).flatten(1).norm(dim=1)[pgd_fooled]
    assert pgd_fooled.sum() >= 8
    # PGD spends its whole budget; C&W looks for the smallest successful perturbation
    assert cw_l2.median() < 0.8 * pgd_l2.median(), (cw_l2, pgd_l2)
    assert (adv[~fooled] == images[~fooled]).all()  # failures come back clean


def test_cw_respects_a_finite_budget(standard):
    model, images, labels = standard
    images, labels = images[:8], labels[:8]
    eps = 0.8
    adv = CarliniWagnerL2(eps=eps, steps=15, binary_steps=2, initial_const=5.0)(
        model, images, labels
    )
    l2 = (adv - images).flatten(1).norm(dim=1)
    assert (l2 <= eps + 1e-5).all()
    over = l2 == 0  # points it could not break within ε are returned clean
    assert (correct(model, adv, labels) <= over).all()
    assert CarliniWagnerL2(eps=math.inf).eps == math.inf
    assert CarliniWagnerL2().label == "cw1000x9_l2"


# ----------------------------------------------------------------------------- projections
PROJECTION_CASES = [
    ("pgd", "linf", {"steps": 3}),
    ("pgd", "l2", {"steps": 3}),
    ("pgd", "l1", {"steps": 3}),
    ("fgsm", "linf", {}),
    ("mifgsm", "l2", {"steps": 3}),
    ("apgd", "linf", {"steps": 3}),
    ("apgd", "l2", {"steps": 3}),
    ("apgd_t", "linf", {"steps": 2, "num_targets": 2}),
    ("square", "linf", {"queries": 15}),
    ("square", "l2", {"queries": 15}),
]
BUDGETS = {"linf": 12 / 255, "l2": 1.0, "l1": 8.0}


@pytest.mark.parametrize("name,norm,settings", PROJECTION_CASES)
def test_examples_stay_in_their_ball_and_box(standard, name, norm, settings):
    model, images, labels = standard
    images, labels = images[:8], labels[:8]
    # per-sample budgets, one of them zero
    eps = BUDGETS[norm] * torch.tensor([0, 0.25, 0.5, 0.75, 1, 1, 0.5, 1.0])
    attack = create_attack(name, norm=norm, **settings)
    adv = attack(model, images, labels, eps=eps, generator=make_generator(0))
    assert adv.shape == images.shape and adv.dtype == images.dtype
    assert adv.min() >= 0 and adv.max() <= 1
    norms = get_threat_model(norm).norm(adv - images)
    assert (norms <= eps * (1 + 1e-5) + 1e-6).all(), (norms, eps)
    assert torch.equal(adv[0], images[0])
    assert norms[1:].max() > 0.5 * BUDGETS[norm]  # the budget is used


def test_l1_steps_are_sparse_and_skip_saturated_pixels():
    threat = get_threat_model("l1")
    grad = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    step = threat.step(grad, 0.5)
    k = round((1 - threat.sparsity) * grad[0].numel())
    nonzero = (step != 0).flatten(1).sum(dim=1)
    assert (nonzero == k).all()
    torch.testing.assert_close(threat.norm(step), torch.full((4,), 0.5))
    assert (step.sign()[step != 0] == grad.sign()[step != 0]).all()
    top = grad.flatten(1).abs().topk(k, dim=1).indices
    assert (step.flatten(1).gather(1, top) != 0).all()  # the largest |gradient| coordinates
    # a pixel at 0 cannot move further down: its coordinate is masked before the step
    adversarial = torch.full_like(grad, 0.5)
    adversarial.view(4, -1)[:, top[:, 0]] = 0.0
    masked = threat.mask_box(-grad.abs(), adversarial)
    assert (masked[adversarial == 0] == 0).all()
    # projection onto the L1 ball is exact: norm ε and the soft-threshold shape
    delta = torch.randn(2, 3, 4, 4)
    projected = threat.project(delta, 1.0)
    torch.testing.assert_close(threat.norm(projected), torch.ones(2))
    assert ((projected == 0) | (projected.sign() == delta.sign())).all()


def test_l1_pgd_lowers_accuracy(standard):
    model, images, labels = standard
    images, labels = images[:16], labels[:16]
    adv = PGD(norm="l1", eps=16.0, steps=10)(model, images, labels, generator=make_generator(0))
    assert n_correct(model, adv, labels) < n_correct(model, images, labels)
    assert (get_threat_model("l1").norm(adv - images) <= 16.0 * (1 + 1e-5)).all()


# ----------------------------------------------------------------------------- bad input
def test_bad_attack_input_gives_clear_errors(standard):
    model, images, labels = standard
    images, labels = images[:4], labels[:4]
    for typo, suggestion in (("apgdd", "apgd"), ("squre", "square"), ("autoatack", "autoattack")):
        with pytest.raises(UnknownNameError, match=f"Did you mean: {suggestion}"):
            create_attack(typo)
    for name in ("apgd", "apgd_t", "square", "cw", "mifgsm", "autoattack"):
        with pytest.raises(ConfigError, match=">= 0"):
            create_attack(name, eps=-0.1)
    with pytest.raises(ConfigError, match="finite and >= 0"):
        APGD(steps=1)(model, images, labels, eps=torch.tensor([0.1, -0.1, 0.1, 0.1]))
    for name, norm in (("square", "l1"), ("cw", "linf"), ("apgd", "l1"), ("mifgsm", "l1")):
        with pytest.raises(ConfigError, match=f"does not support norm '{norm}'"):
            create_attack(name, norm=norm)
    with pytest.raises(ConfigError, match="uses the margin loss"):
        create_attack("square", loss="ce")
    with pytest.raises(ConfigError, match="drop 'loss'"):
        create_attack("apgd_t", loss="ce")

    attacks = [
        APGD(steps=1),
        APGDTargeted(steps=1, num_targets=1),
        Square(queries=2),
        CarliniWagnerL2(steps=1, binary_steps=1),
        MIFGSM(steps=1),
        AutoAttack(version="fast"),
    ]
    softmax_model = nn.Sequential(model, nn.Softmax(dim=1))
    for attack in attacks:
        with pytest.raises(InputRangeError, match=r"\[0, 1\]"):
            attack(model, images * 255, labels)
        with pytest.raises(InputRangeError, match="probabilities"):
            attack(softmax_model, images, labels)


def test_probability_check_is_not_skipped_when_an_attack_is_reused(standard):
    model, images, labels = standard
    images, labels = images[:4], labels[:4]
    attack = PGD(steps=1)
    attack(model, images, labels)  # logits: fine
    with pytest.raises(InputRangeError, match="probabilities"):
        attack(nn.Sequential(model, nn.Softmax(dim=1)), images, labels)
