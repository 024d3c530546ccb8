"""FAB-T: the box-constrained hyperplane projection, the attack's output, its strength and
distortion against torchattacks' FAB, and its place in AutoAttack "standard".

The strength comparison runs both implementations on the zoo's standard digits ResNet-20 with 32
test digits, 10 iterations and 3 target classes at L∞ ε = 16/255 (2 to 3 s each on one CPU
thread). Measured: 4 of 32 images stay robust under both; on the 28 images both break, the
median L∞ distortion is 0.0462 for both (per-image ratio 1.000002). The tolerances below (2
images, 2 %) only absorb floating-point divergence between the two implementations."""

from __future__ import annotations

import pytest
import torch
from single_thread import one_thread  # noqa: F401
from torch import nn

from robustart.attacks import (
    AutoAttack,
    FABTargeted,
    create_attack,
    get_threat_model,
    hyperplane_projection,
)
from robustart.attacks.hyperplane import smallest_level
from robustart.errors import ConfigError, InputRangeError
from robustart.utils import make_generator

pytestmark = pytest.mark.usefixtures("one_thread")

#: Our robust accuracy may be at most this many images above torchattacks' (sampling noise).
SLACK_IMAGES = 2


def correct(model, images, labels) -> torch.Tensor:
    with torch.no_grad():
        return model(images).argmax(1) == labels


def lp_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def project(w, c, lower, upper, norm):
    """Row-wise inputs as lists → (N, D) float64 tensors for :func:`hyperplane_projection`."""
    as_tensor = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return hyperplane_projection(
        as_tensor(w), as_tensor(c), as_tensor(lower), as_tensor(upper), norm
    )


# ----------------------------------------------------------------------------- projection
# (w, c, lower, upper, norm, expected δ): closed forms worked out by hand.
HAND_CASES = [
    # no active box: L2 → c·w/‖w‖², L∞ → c·sign(w)/‖w‖₁
    ([3.0, 4.0], 5.0, [-9, -9], [9, 9], "l2", [0.6, 0.8]),
    ([3.0, -1.0], 2.0, [-9, -9], [9, 9], "linf", [0.5, -0.5]),
    ([3.0, -1.0], -2.0, [-9, -9], [9, 9], "linf", [-0.5, 0.5]),  # c < 0 flips the direction
    ([1.0, 0.0, -2.0], 1.0, [-9, -9, -9], [9, 9, 9], "l2", [0.2, 0.0, -0.4]),  # w_i = 0 stays
    # an active upper bound: L2 caps δ_1 at 0.5, the rest goes to δ_2 (λ = 1)
    ([1.0, 1.0], 1.5, [-1, -1], [0.5, 2.0], "l2", [0.5, 1.0]),
    # L∞: δ_1 capped at 0.25 (2·0.25 = 0.5), the other coordinate must give 1.0 alone
    ([2.0, 1.0], 1.5, [-1, -1], [0.25, 1.0], "linf", [0.25, 1.0]),
    # an active lower bound reached through a negative weight
    ([2.0, -1.0], 1.5, [-1, -1], [0.25, 1.0], "linf", [0.25, -1.0]),
    # L2 with a lower bound active: unconstrained (0.4, -0.8) → δ_2 = −0.5, λ from δ_1
    ([1.0, -2.0], 2.0, [-1, -0.5], [1, 1], "l2", [1.0, -0.5]),
    # c = 0: no move
    ([1.0, 2.0], 0.0, [-1, -1], [1, 1], "linf", [0.0, 0.0]),
    # out of reach (max ⟨w, δ⟩ = 2·0.25 + 1·1 = 1.5 < 10): the box corner along w
    ([2.0, 1.0], 10.0, [-1, -1], [0.25, 1.0], "linf", [0.25, 1.0]),
    ([2.0, 1.0], 10.0, [-1, -1], [0.25, 1.0], "l2", [0.25, 1.0]),
    ([2.0, -1.0], -10.0, [-0.5, -0.1], [0.25, 1.0], "l2", [-0.5, 1.0]),
]


@pytest.mark.parametrize("w,c,lower,upper,norm,expected", HAND_CASES)
def test_hyperplane_projection_hand_cases(w, c, lower, upper, norm, expected):
    delta = project([w], [c], [lower], [upper], norm)
    torch.testing.assert_close(delta, torch.tensor([expected], dtype=torch.float64))


def _brute_force_minimum(w, c, lower, upper, norm, points: int) -> torch.Tensor:
    """Smallest norm over a dense grid on the hyperplane (a line in 2-D, a plane in 3-D),
    restricted to the box; ``inf`` where no grid point lies in the box."""
    dim = w.numel()
    base = c * w / w.dot(w)  # a point of the hyperplane
    basis = torch.linalg.svd(w[None]).Vh[1:]  # orthonormal directions within it, (dim − 1, dim)
    ticks = torch.linspace(-2.5, 2.5, points, dtype=torch.float64)
    grid = torch.cartesian_prod(*[ticks] * (dim - 1)).reshape(-1, dim - 1)
    candidates = base + grid @ basis
    inside = ((candidates >= lower - 1e-12) & (candidates <= upper + 1e-12)).all(dim=1)
    norms = lp_norm(candidates, norm)
    return torch.where(inside, norms, torch.inf).min()


@pytest.mark.parametrize(("dim", "points"), [(2, 100_001), (3, 1_001)])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_hyperplane_projection_matches_brute_force(norm, dim, points):
    g = torch.Generator().manual_seed(dim)
    n = 24
    w = torch.randn(n, dim, generator=g, dtype=torch.float64)
    w[0, 0] = 0.0  # a zero weight
    lower = -torch.rand(n, dim, generator=g, dtype=torch.float64)
    upper = torch.rand(n, dim, generator=g, dtype=torch.float64)
    c = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * 1.2
    delta = hyperplane_projection(w, c, lower, upper, norm)
    assert ((delta >= lower) & (delta <= upper)).all()
    room = torch.where(w * c[:, None] > 0, upper, -lower) * (w != 0)
    reach = (w.abs() * room).sum(dim=1)  # the largest |⟨w, δ⟩| inside the box
    reachable = c.abs() <= reach
    assert 6 <= int(reachable.sum()) <= n - 3  # both kinds occur
    spacing = 5.0 / (points - 1)
    for i in range(n):
        if not reachable[i]:
            # the box corner along sign(c)·w
            expected = torch.sign(w[i] * c[i]) * room[i]
            torch.testing.assert_close(delta[i], expected)
            continue
        torch.testing.assert_close(w[i].dot(delta[i]), c[i], atol=1e-9, rtol=0)
        ours = float(lp_norm(delta[i : i + 1], norm))
        brute = float(_brute_force_minimum(w[i], c[i], lower[i], upper[i], norm, points))
        # no grid point of the hyperplane inside the box is closer than ours
        assert ours <= brute + 1e-9, (i, ours, brute)
        if c[i].abs() <= 0.9 * reach[i]:  # the feasible set is wide enough for the grid:
            # its best point is within a few spacings of the true minimum
            assert ours >= brute - 2 * spacing * dim, (i, ours, brute)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_hyperplane_projection_on_images_satisfies_constraint_box_and_optimality(norm):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, 3, 8, 8, generator=g)
    w = torch.randn(16, 3, 8, 8, generator=g)
    w[:, 0, 0, :4] = 0.0
    c = torch.randn(16, generator=g) * 4
    delta = hyperplane_projection(w, c, -x, 1 - x, norm)
    assert delta.shape == x.shape and delta.dtype == x.dtype
    assert (x + delta).min() >= 0 and (x + delta).max() <= 1
    torch.testing.assert_close((w * delta).flatten(1).sum(1), c, atol=1e-4, rtol=1e-5)
    # optimality certificates: each coordinate moves along sign(c)·w, by min(room, t·speed)
    # with one level t per sample (speed 1 for L∞, |w_i| for L2)
    u = (w * c.sign().view(-1, 1, 1, 1)).flatten(1)
    d = delta.flatten(1)
    room = torch.where(u > 0, 1 - x.flatten(1), x.flatten(1))
    assert (d[u == 0] == 0).all()
    assert ((d * u) >= 0).all()
    free = (d.abs() < room - 1e-6) & (u != 0)  # coordinates not stopped by the box
    speed = torch.ones_like(u) if norm == "linf" else u.abs()
    level = torch.where(free, d.abs() / speed.clamp_min(1e-30), torch.nan)
    spread = level.nan_to_num(-torch.inf).amax(1) - level.nan_to_num(torch.inf).amin(1)
    assert (spread < 1e-4 * level.nan_to_num(0).amax(1) + 1e-7).all(), spread
    # …and capped coordinates would have moved further than their room
    capped = ~free & (u != 0)
    top = level.nan_to_num(0).amax(1, keepdim=True)
    assert (room[capped] <= (top * speed)[capped] + 1e-6).all()


def test_smallest_level_is_the_first_crossing_of_a_piecewise_linear_function():
    weights = torch.tensor([[1.0, 2.0, 0.5], [1.0, 1.0, 1.0]])
    ceilings = torch.tensor([[0.5, 0.1, 2.0], [1.0, 1.0, 1.0]])
    # row 0: f(t) = min(.5, t) + 2 min(.1, t) + .5 min(2, t); f(.1) = .35, f(.5) = .95
    levels = smallest_level(weights, ceilings, torch.tensor([0.95, 3.5]))
    torch.testing.assert_close(levels, torch.tensor([0.5, 1.0]))  # row 1 out of reach: max
    brute_t = torch.linspace(0, 2, 200_001)
    f = (weights[0] * torch.minimum(ceilings[0], brute_t[:, None])).sum(1)
    for target in (0.0, 0.2, 0.6, 1.2, 1.45):
        level = smallest_level(weights[:1], ceilings[:1], torch.tensor([target]))
        assert float(level) == pytest.approx(float(brute_t[(f >= target).nonzero()[0]]), abs=2e-5)


def test_hyperplane_projection_refuses_other_norms():
    with pytest.raises(ConfigError, match="not norm 'l1'"):
        hyperplane_projection(
            torch.ones(1, 2), torch.ones(1), -torch.ones(1, 2), torch.ones(1, 2), "l1"
        )


# ----------------------------------------------------------------------------- attack output
BUDGETS = {"linf": 12 / 255, "l2": 1.0}


@pytest.mark.parametrize("norm,restarts", [("linf", 1), ("l2", 2)])
def test_examples_stay_in_ball_and_box_and_are_clean_or_adversarial(standard, norm, restarts):
    model, images, labels = standard
    images, labels = images[:8], labels[:8]
    eps = BUDGETS[norm] * torch.tensor([0, 0.25, 0.5, 0.75, 1, 1, 2, 3.0])
    attack = FABTargeted(norm=norm, steps=8, num_targets=2, restarts=restarts)
    adv = attack(model, images, labels, eps=eps, generator=make_generator(0))
    assert adv.shape == images.shape and adv.dtype == images.dtype
    assert adv.min() >= 0 and adv.max() <= 1
    norms = get_threat_model(norm).norm(adv - images)
    assert (norms <= eps * (1 + 1e-6)).all(), (norms, eps)
    assert torch.equal(adv[0], images[0])
    # every point is either the clean image or misclassified: failures come back clean
    still = correct(model, adv, labels)
    assert (norms[still] == 0).all()
    assert int((~still).sum()) >= 2  # the large budgets break something


def test_eps_zero_returns_the_clean_images(standard):
    model, images, labels = standard
    images, labels = images[:4], labels[:4]
    adv = FABTargeted(eps=0, steps=2, num_targets=1)(model, images, labels)
    assert torch.equal(adv, images)


def test_misclassified_images_are_left_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()
    images = torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        wrong = (model(images).argmax(1) + 1) % 5
    adv = FABTargeted(eps=0.5, steps=3, num_targets=2)(model, images, wrong)
    assert torch.equal(adv, images)


def test_runs_in_fp32_even_inside_an_autocast_region():
    dtypes = []

    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3 * 4 * 4, 4)

        def forward(self, x):
            logits = self.linear(x.flatten(1))
            dtypes.append(logits.dtype)
            return logits

    torch.manual_seed(0)
    model = Recorder().eval()
    images = torch.rand(4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    labels = model(images).argmax(1).detach()
    attack = FABTargeted(eps=0.5, steps=2, num_targets=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(images).dtype == torch.bfloat16  # the region does lower the precision
        dtypes.clear()
        attack.perturb(model, images, labels, torch.full((4,), 0.5), None)  # as an ensemble does
    assert dtypes and all(d == torch.float32 for d in dtypes)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_finds_the_exact_boundary_distance_of_a_linear_binary_classifier(norm):
    """For affine logits the linearisation is exact, so the closest adversarial point is at
    distance |z_1 − z_0| / ‖w_1 − w_0‖_q (q the dual norm) while the box is not active."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).eval()
    images = 0.4 + 0.2 * torch.rand(8, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        normal = model[1].weight[1] - model[1].weight[0]
        model[1].bias[1] = model[1].bias[0] - (images.flatten(1) @ normal).mean()  # boundary
        logits = model(images)  # passes through the images' cloud
    labels = logits.argmax(1)
    dual = normal.abs().sum() if norm == "linf" else normal.norm()
    distance = (logits[:, 1] - logits[:, 0]).abs() / dual
    assert distance.max() < 0.1  # far from the box
    adv = FABTargeted(eps=1.0, norm=norm, steps=30)(model, images, labels)
    found = lp_norm(adv - images, norm)
    assert (~correct(model, adv, labels)).all()
    assert (found >= distance * (1 - 1e-4)).all()
    # the first success overshoots by η = 1.05; backward steps (β = 0.9) and the bias towards
    # the image bring it down to about 1.005 × the distance
    assert (found <= distance * 1.01).all(), found / distance


def test_bad_settings_give_clear_errors(standard):
    model, images, labels = standard
    images, labels = images[:4], labels[:4]
    with pytest.raises(ConfigError, match="does not support norm 'l1'"):
        create_attack("fab_t", norm="l1")
    with pytest.raises(ConfigError, match=">= 0"):
        create_attack("fab_t", eps=-0.1)
    with pytest.raises(ConfigError, match="finite and >= 0"):
        FABTargeted(steps=1)(model, images, labels, eps=torch.tensor([0.1, -0.1, 0.1, 0.1]))
    with pytest.raises(ConfigError, match="drop 'loss'"):
        create_attack("fab_t", loss="ce")
    with pytest.raises(ConfigError, match="fp32"):
        create_attack("fab_t", precision="amp")
    with pytest.raises(ConfigError, match="fp32"):
        AutoAttack(precision="amp")  # the standard version contains FAB-T
    for bad in ({"steps": 0}, {"num_targets": 0}, {"alpha_max": 1.5}, {"eta": 0.5}, {"beta": 2}):
        with pytest.raises(ConfigError):
            create_attack("fab_t", **bad)
    attack = FABTargeted(steps=1, num_targets=1)
    with pytest.raises(InputRangeError, match=r"\[0, 1\]"):
        attack(model, images * 255, labels)
    with pytest.raises(InputRangeError, match="probabilities"):
        attack(nn.Sequential(model, nn.Softmax(dim=1)), images, labels)


def test_label_and_config():
    attack = create_attack("fab_t", eps="8/255")
    assert attack.label == "fab_t100_linf"
    assert FABTargeted(norm="l2", eps=0.5, steps=20, restarts=3).label == "fab_t20x3_l2"
    config = attack.config
    assert {k: config[k] for k in ("steps", "restarts", "num_targets")} == {
        "steps": 100,
        "restarts": 1,
        "num_targets": 9,
    }
    assert (config["alpha_max"], config["eta"], config["beta"]) == (0.1, 1.05, 0.9)


# ----------------------------------------------------------------------------- strength
def test_fab_t_is_as_strong_and_as_close_as_torchattacks(standard):
    torchattacks = pytest.importorskip("torchattacks")
    model, images, labels = standard
    images, labels = images[:32], labels[:32]
    eps, steps, targets = 16 / 255, 10, 3
    reference = torchattacks.FAB(
        model, norm="Linf", eps=eps, steps=steps, multi_targeted=True, n_classes=10
    )
    reference.n_target_classes = targets
    ref_adv = reference(images, labels)
    adv = FABTargeted(eps=eps, steps=steps, num_targets=targets)(model, images, labels)
    ours, ref = int(correct(model, adv, labels).sum()), int(correct(model, ref_adv, labels).sum())
    assert ours <= ref + SLACK_IMAGES, (ours, ref)
    assert ours <= len(labels) // 4  # the budget matters: most images break
    ours_norm, ref_norm = lp_norm(adv - images, "linf"), lp_norm(ref_adv - images, "linf")
    both = (ours_norm > 0) & (ref_norm > 0)
    assert int(both.sum()) >= len(labels) // 2
    # minimal distortion: on the images both break, our median L∞ norm is within 2 %
    assert ours_norm[both].median() <= 1.02 * ref_norm[both].median(), (
        ours_norm[both].median(),
        ref_norm[both].median(),
    )


# ----------------------------------------------------------------------------- ensemble
def test_autoattack_standard_runs_fab_t_third_with_autoattack_settings():
    standard = AutoAttack(eps="8/255")
    names = [m.name for m in standard.members]
    assert names == ["apgd", "apgd_t", "fab_t", "square"]
    fab = standard.members[2]
    assert fab.label == "fab_t100_linf"
    assert (fab.steps, fab.restarts, fab.num_targets) == (100, 1, 9)
    assert (fab.alpha_max, fab.eta, fab.beta) == (0.1, 1.05, 0.9)
    assert AutoAttack(norm="l2", eps=0.5).members[2].label == "fab_t100_l2"
    assert AutoAttack(version="fast").members[-1].name != "fab_t"  # the cheap check stays cheap


def test_ensemble_with_fab_t_is_the_per_sample_worst_case(standard, monkeypatch):
    model, images, labels = standard
    images, labels = images[:16], labels[:16]
    eps = 12 / 255
    members = [
        {"name": "apgd_t", "steps": 4, "num_targets": 2, "random_start": False},
        {"name": "fab_t", "steps": 10, "num_targets": 2},
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
        adversarial = create_attack(spec["name"], eps=eps, **settings)(model, images, labels)
        alone.append(correct(model, adversarial, labels))
    # both members are deterministic per sample: robust under the ensemble = under each
    assert torch.equal(worst, alone[0] & alone[1])
    assert int(worst.sum()) < int(alone[0].sum())  # FAB-T adds to APGD-T here
    clean = correct(model, images, labels)
    assert sizes == [int(clean.sum()), int((clean & alone[0]).sum())]
    assert (adv - images).abs().amax() <= eps + 1e-6
    assert int(worst.sum()) <= int(alone[1].sum())
