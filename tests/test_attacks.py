"""Attack sanity, reference definitions, projections, side effects and bad input."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import accuracy
from torch import nn

from robustart.attacks import (
    ATTACKS,
    FGSM,
    PGD,
    BestTracker,
    ClosestTracker,
    cascade,
    create_attack,
    get_threat_model,
)
from robustart.errors import ConfigError, InputRangeError, UnknownNameError
from robustart.utils import make_generator


def robust_accuracy(model, attack, images, labels, eps, seed=0):
    adv = attack(model, images, labels, eps=eps, generator=make_generator(seed))
    return accuracy(model, adv, labels), adv


def test_eps_zero_reproduces_clean_accuracy_exactly(trained_model, heldout):
    images, labels = heldout
    for name in ("pgd", "fgsm"):
        attack = create_attack(name, eps=0)
        adv = attack(trained_model, images, labels)
        assert torch.equal(adv, images)
        assert accuracy(trained_model, adv, labels) == accuracy(trained_model, images, labels)


def test_accuracy_does_not_increase_with_eps_and_huge_eps_reaches_zero(trained_model, heldout):
    images, labels = heldout
    clean = accuracy(trained_model, images, labels)
    assert clean > 0.9
    attack = PGD(steps=10)
    budgets = [0, 2 / 255, 8 / 255, 32 / 255, 0.5]
    accs = [robust_accuracy(trained_model, attack, images, labels, e)[0] for e in budgets]
    assert accs[0] == clean
    assert all(b <= a for a, b in itertools.pairwise(accs)), accs
    assert accs[-1] <= 0.01, accs
    assert accs[2] < clean  # 8/255 hurts a standard model


def test_iterative_attack_is_at_least_as_strong_as_fgsm(trained_model, heldout):
    images, labels = heldout
    eps = 8 / 255
    fgsm = robust_accuracy(trained_model, FGSM(), images, labels, eps)[0]
    pgd = robust_accuracy(trained_model, PGD(steps=10), images, labels, eps)[0]
    assert pgd <= fgsm


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
def test_projection_keeps_examples_in_ball_and_box(trained_model, heldout, norm, eps):
    images, labels = heldout
    attack = PGD(norm=norm, steps=5, rel_step_size=0.5, early_stop=False)
    adv = attack(trained_model, images, labels, eps=eps, generator=make_generator(1))
    assert adv.min() >= 0 and adv.max() <= 1
    delta = (adv - images).flatten(1)
    norms = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (norms <= eps + 1e-5).all()
    assert (norms > 0.5 * eps).float().mean() > 0.5  # the budget is actually used


def test_per_sample_budgets(trained_model, heldout):
    images, labels = heldout[0][:6], heldout[1][:6]
    eps = torch.tensor([0, 1, 2, 4, 8, 0], dtype=torch.float32) / 255
    adv = PGD(steps=3)(trained_model, images, labels, eps=eps)
    linf = (adv - images).flatten(1).abs().amax(1)
    assert torch.equal(adv[0], images[0]) and torch.equal(adv[5], images[5])
    assert (linf <= eps + 1e-6).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_init_lies_in_ball(norm):
    threat = get_threat_model(norm)
    like = torch.zeros(64, 3, 8, 8)
    delta = threat.random_init(like, 0.3, make_generator(0))
    assert (threat.norm(delta) <= 0.3 + 1e-6).all()
    assert threat.norm(delta).min() > 0


def test_l2_projection_matches_definition():
    threat = get_threat_model("l2")
    delta = torch.randn(4, 3, 5, 5)
    projected = threat.project(delta, 1.0)
    norms = delta.flatten(1).norm(dim=1)
    expected = delta / torch.clamp(norms, min=1.0).view(-1, 1, 1, 1)
    torch.testing.assert_close(projected, expected)


def test_fgsm_matches_reference_definition(trained_model, heldout):
    images, labels = heldout[0][:32], heldout[1][:32]
    eps = 4 / 255
    x = images.clone().requires_grad_(True)
    F.cross_entropy(trained_model(x), labels).backward()
    expected = (images + eps * x.grad.sign()).clamp(0, 1)
    adv = FGSM(eps=eps, track_best=False)(trained_model, images, labels)
    torch.testing.assert_close(adv, expected)


def test_pgd_matches_reference_loop(trained_model, heldout):
    """Without random start and best-iterate tracking PGD is exactly Madry's loop."""
    images, labels = heldout[0][:32], heldout[1][:32]
    eps, alpha, steps = 8 / 255, 2 / 255, 5
    x = images.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        loss = F.cross_entropy(trained_model(x), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        x = x.detach() + alpha * grad.sign()
        x = (images + (x - images).clamp(-eps, eps)).clamp(0, 1)
    adv = PGD(eps=eps, steps=steps, step_size=alpha, random_start=False, track_best=False)(
        trained_model, images, labels
    )
    torch.testing.assert_close(adv, x)


class CountingModel(nn.Module):
    """Counts forward passes with and without autograd (the cost of an attack)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.with_grad = 0
        self.without_grad = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            self.with_grad += 1
        else:
            self.without_grad += 1
        return self.model(x)


def test_pgd_k_costs_exactly_k_forward_backward_passes(trained_model, heldout):
    images, labels = heldout[0][:16], heldout[1][:16]
    counted = CountingModel(trained_model)
    PGD(steps=5, early_stop=False)(counted, images, labels)
    assert (counted.with_grad, counted.without_grad) == (5, 0)
    counted = CountingModel(trained_model)
    PGD(eps=1 / 255, steps=5, restarts=2, early_stop=False)(counted, images, labels)
    # the first restart's last iterate is scored (it decides who restarts); the last one's not
    assert (counted.with_grad, counted.without_grad) == (10, 1)


def test_apgd_skips_the_last_backward_pass(trained_model, heldout):
    images, labels = heldout[0][:16], heldout[1][:16]
    counted = CountingModel(trained_model)
    create_attack("apgd", eps=1 / 255, steps=10)(counted, images, labels)
    # clean logits, then the start and 9 iterates with gradients, the 10th iterate scored only
    assert (counted.with_grad, counted.without_grad) == (10, 2)


def test_tracked_pgd_fools_every_sample_its_last_iterate_fools(trained_model, heldout):
    """Keeping the last iterate unscored never loses a success: per sample, the tracked result
    fools the model wherever the plain last iterate (same seed, same trajectory) does."""
    images, labels = heldout
    settings = {"eps": 3 / 255, "steps": 5, "early_stop": False}
    tracked = PGD(**settings)(trained_model, images, labels, generator=make_generator(5))
    last = PGD(track_best=False, **settings)(
        trained_model, images, labels, generator=make_generator(5)
    )
    with torch.no_grad():
        fooled_tracked = trained_model(tracked).argmax(1) != labels
        fooled_last = trained_model(last).argmax(1) != labels
    assert fooled_last.any() and not fooled_last.all()
    assert (fooled_tracked | ~fooled_last).all()


def test_best_tracker_unscored_offer_only_replaces_unfooled_points():
    images = torch.zeros(3, 1, 2, 2)
    tracker = BestTracker(images)
    tracker.update(
        torch.full_like(images, 0.5),
        torch.tensor([1.0, 1.0, 1.0]),
        torch.tensor([True, False, False]),
    )
    tracker.offer_unscored(torch.ones(2, 1, 2, 2), index=torch.tensor([0, 2]))
    assert tracker.images[0].eq(0.5).all()  # fooled earlier: kept
    assert tracker.images[1].eq(0.5).all()  # not offered
    assert tracker.images[2].eq(1.0).all()  # not fooled: takes the last iterate


def test_best_tracker_prefers_fooled_then_higher_loss():
    images = torch.zeros(4, 1, 1, 1)
    tracker = BestTracker(images)
    assert tracker.pending().tolist() == [True] * 4
    tracker.update(
        torch.full_like(images, 0.1),
        torch.tensor([1.0, 1.0, 5.0, 2.0]),
        torch.tensor([False, True, False, False]),
    )
    # sample 0: a fooled point beats a higher loss; 1: fooled stays fooled even at a higher
    # unfooled loss; 2: a lower loss loses; 3: through a subset view, a higher loss wins
    tracker.update(
        torch.full((3, 1, 1, 1), 0.2),
        torch.tensor([0.5, 9.0, 4.0]),
        torch.tensor([True, False, False]),
        index=torch.tensor([0, 1, 2]),
    )
    view = tracker.subset(torch.tensor([3]))
    view.update(torch.full((1, 1, 1, 1), 0.3), torch.tensor([3.0]), torch.tensor([False]))
    assert tracker.images.flatten().tolist() == pytest.approx([0.2, 0.1, 0.1, 0.3])
    assert tracker.loss.tolist() == [0.5, 1.0, 5.0, 3.0]
    assert tracker.fooled.tolist() == [True, True, False, False]
    assert tracker.pending().tolist() == [False, False, True, True]
    assert not bool(view.all_fooled())
    assert bool(tracker.subset(torch.tensor([0, 1])).all_fooled())


def test_closest_tracker_keeps_the_closest_fooled_point_within_budget():
    clean = torch.zeros(3, 1, 1, 1)
    closest = ClosestTracker(clean)
    kept = closest.update(
        torch.full_like(clean, 0.5),
        torch.tensor([0.5, 0.5, 0.5]),
        torch.tensor([True, False, True]),
    )
    assert kept.tolist() == [True, False, True]
    # a closer fooled point replaces; a closer unfooled one does not; a farther one does not
    kept = closest.update(
        torch.full((2, 1, 1, 1), 0.2),
        torch.tensor([0.2, 0.7]),
        torch.tensor([True, True]),
        index=torch.tensor([0, 2]),
    )
    assert kept.tolist() == [True, False]
    assert closest.distance.tolist() == pytest.approx([0.2, math.inf, 0.5])
    assert closest.images.flatten().tolist() == pytest.approx([0.2, 0.0, 0.5])
    # within ε = 0.3: sample 2 (0.5) goes back to clean; unbroken sample 1 stays clean at ∞
    within = closest.within(torch.tensor([0.3, math.inf, 0.3]), clean + 0.01)
    assert within.flatten().tolist() == pytest.approx([0.2, 0.01, 0.01])


def test_cascade_runs_stages_on_pending_samples_and_stops_when_none_is():
    broken = torch.tensor([False, True, False, False])
    seen = []
    for stage, index in cascade(["a", "b", "c", "d"], lambda: ~broken):
        seen.append((stage, index.tolist()))
        broken[index[0]] = True  # every stage breaks its first pending sample
    assert seen == [("a", [0, 2, 3]), ("b", [2, 3]), ("c", [3])]
    assert list(cascade(range(3), lambda: torch.zeros(2, dtype=torch.bool))) == []


def test_restarts_never_weaken_the_attack(trained_model, heldout):
    images, labels = heldout
    one = robust_accuracy(trained_model, PGD(steps=3), images, labels, 4 / 255, seed=3)[0]
    three = robust_accuracy(
        trained_model, PGD(steps=3, restarts=3), images, labels, 4 / 255, seed=3
    )[0]
    assert three <= one


def test_attack_restores_mode_and_leaves_gradients(trained_model, heldout):
    images, labels = heldout[0][:16], heldout[1][:16]
    model = trained_model
    model.train()
    model.backbone.fc.eval()  # an odd submodule mode must survive too
    bn = model.backbone.bn1
    running_mean = bn.running_mean.clone()
    try:
        for p in model.parameters():
            p.grad = torch.full_like(p, 0.5)
        PGD(steps=2)(model, images, labels)
        assert model.training and not model.backbone.fc.training and bn.training
        assert all(torch.all(p.grad == 0.5) for p in model.parameters())
        # mode="eval" must not update BatchNorm statistics
        torch.testing.assert_close(bn.running_mean, running_mean)
    finally:
        model.eval().zero_grad(set_to_none=True)


def test_train_mode_crafting_updates_batchnorm_statistics(trained_model, heldout):
    images, labels = heldout[0][:16], heldout[1][:16]
    model = trained_model
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        PGD(steps=2, mode="train", track_best=False)(model, images, labels)
        assert not model.training  # restored
        assert not torch.equal(model.backbone.bn1.running_mean, saved["backbone.bn1.running_mean"])
    finally:
        model.load_state_dict(saved)


def test_attack_runs_inside_inference_mode(trained_model, heldout):
    images, labels = heldout[0][:16], heldout[1][:16]
    with torch.inference_mode():
        inference_images = images.clone()
        adv = PGD(steps=2)(trained_model, inference_images, labels)
    assert (adv - images).abs().max() > 0


def test_same_seed_same_examples(trained_model, heldout):
    images, labels = heldout[0][:16], heldout[1][:16]
    a = PGD(steps=2)(trained_model, images, labels, generator=make_generator(5))
    b = PGD(steps=2)(trained_model, images, labels, generator=make_generator(5))
    c = PGD(steps=2)(trained_model, images, labels, generator=make_generator(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_attack_input_gives_clear_errors(trained_model, heldout):
    images, labels = heldout[0][:4], heldout[1][:4]
    with pytest.raises(UnknownNameError, match="Did you mean: pgd"):
        create_attack("pgdd")
    with pytest.raises(ConfigError, match=">= 0"):
        create_attack("pgd", eps=-1)
    with pytest.raises(ConfigError, match="does not support norm 'l7'"):
        create_attack("pgd", norm="l7")
    with pytest.raises(ConfigError, match="does not support norm 'l1'"):
        create_attack("fgsm", norm="l1")
    with pytest.raises(ConfigError, match="Accepted settings"):
        create_attack("pgd", stepz=3)
    with pytest.raises(ConfigError, match="use the 'pgd' attack"):
        create_attack("fgsm", steps=3)
    with pytest.raises(InputRangeError, match=r"\[0, 1\]"):
        PGD()(trained_model, images * 255, labels)
    softmax_model = nn.Sequential(trained_model, nn.Softmax(dim=1))
    with pytest.raises(InputRangeError, match="probabilities"):
        PGD()(softmax_model, images, labels)
    assert {"pgd", "fgsm"} <= set(ATTACKS.names())


def test_pgd_is_at_least_as_strong_as_torchattacks(trained_model, heldout):
    """Same model, images and budget: our PGD-10 is no weaker than torchattacks' PGD-10."""
    torchattacks = pytest.importorskip("torchattacks")
    images, labels = heldout
    eps = 8 / 255
    torch.manual_seed(0)
    reference = torchattacks.PGD(trained_model, eps=eps, alpha=2 / 255, steps=10, random_start=True)
    ref_acc = accuracy(trained_model, reference(images, labels), labels)
    ours = robust_accuracy(trained_model, PGD(steps=10), images, labels, eps)[0]
    assert ours <= ref_acc + 0.01, (ours, ref_acc)


@pytest.mark.parametrize(
    ("eps", "match"),
    [
        (torch.tensor([True, False, True, False]), "must hold real budgets"),
        (torch.tensor([0.01, 0.02, 0.03, 0.04], dtype=torch.complex64), "must hold real budgets"),
        (torch.full((2, 2), 0.01), r"shape \(\) or \(4,\)"),
        (torch.full((4, 1), 0.01), r"shape \(\) or \(4,\)"),
        (torch.full((3,), 0.01), r"shape \(\) or \(4,\)"),
    ],
)
def test_per_sample_budgets_must_be_one_real_value_per_image(eps, match):
    """A bool mask was read as ε = 1 on the marked images (their L∞ distance 0.96-0.98), and
    (2, 2) or (4, 1) tensors were flattened into four budgets."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    images, labels = torch.rand(4, 3, 4, 4), torch.tensor([0, 1, 2, 0])
    attack = create_attack("pgd", eps=0.01, steps=2)
    with pytest.raises(ConfigError, match=match):
        attack(model, images, labels, eps=eps)
    for good in (torch.tensor(0.01), torch.tensor([0.01]), torch.full((4,), 0.01)):
        distance = (attack(model, images, labels, eps=good) - images).abs().amax()
        assert distance <= 0.01 + 1e-6


@pytest.mark.parametrize("shape", [(1, 1), (1, 16), (16, 1)])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_square_attack_refuses_images_with_a_one_pixel_side(shape, norm):
    """Its squares are at most side - 1 pixels: under L∞ every proposal was empty (robust
    accuracy 1.0 where PGD gave 0.125), under L2 a raw IndexError."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * shape[0] * shape[1], 3))
    images = torch.rand(4, 3, *shape)
    attack = create_attack("square", eps=0.1, norm=norm, queries=5)
    with pytest.raises(InputRangeError, match="at least 2×2 pixels"):
        attack(model, images, torch.tensor([0, 1, 2, 0]))


def test_cw_names_the_batch_size_in_a_logits_shape_error():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 1), nn.Flatten(0))  # (N,) logits
    with pytest.raises(InputRangeError, match="4 images"):
        create_attack("cw", steps=2, binary_steps=1)(
            model, torch.rand(4, 3, 4, 4), torch.tensor([0, 1, 2, 0])
        )
