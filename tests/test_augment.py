"""Training augmentations: Mixup, CutMix, random erasing, per-image policies, AugMix and AdaIN
stylization, each checked against its definition, plus their bad-input errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from adain_fakes import write_fake_adain
from scipy import stats
from single_thread import one_thread  # noqa: F401  (fixture)
from test_data import make_image_folder
from torch.utils.data import DataLoader, TensorDataset

from robustart.augment import (
    build_augment_policy,
    build_batch_augmentations,
    jensen_shannon,
    soft_targets,
)
from robustart.augment.adain import adain, channel_stats, vgg_encoder
from robustart.augment.cutmix import cutmix_images
from robustart.augment.mixing import sample_beta
from robustart.augment.stylize import Stylize
from robustart.augment.stylized_dataset import write_stylized_dataset
from robustart.data import DigitsDataModule, ImageFolderDataModule
from robustart.data.base import TransformedDataset
from robustart.errors import CheckpointError, ConfigError, DatasetNotFoundError, UnknownNameError

pytestmark = pytest.mark.usefixtures("one_thread")
K = 10


def build(spec, num_classes=K):
    return build_batch_augmentations([spec], num_classes)[0]


def one_hot_images(labels, size=8):
    """Images whose K channels are the one-hot label: mixing them mixes labels visibly."""
    return F.one_hot(labels, K).float()[:, :, None, None].expand(-1, -1, size, size).contiguous()


# ----------------------------------------------------------------------------- Mixup / CutMix
@pytest.mark.parametrize("alpha", [0.4, 2.0])
def test_mixup_lambda_follows_beta_alpha_alpha(alpha):
    torch.manual_seed(0)
    draws = [sample_beta(alpha) for _ in range(3000)]
    assert stats.kstest(draws, stats.beta(alpha, alpha).cdf).pvalue > 0.01
    mean, var = torch.tensor(draws).mean().item(), torch.tensor(draws).var().item()
    assert mean == pytest.approx(0.5, abs=0.02)
    assert var == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.1)
    torch.manual_seed(0)
    assert [sample_beta(alpha) for _ in range(5)] == draws[:5]  # seeded by torch's RNG


@pytest.mark.parametrize("n", [16, 17])  # odd batches are fine: pairs come from a permutation
def test_mixup_mixes_images_and_targets_alike(n):
    torch.manual_seed(1)
    labels = torch.randint(0, K, (n,))
    images = one_hot_images(labels)
    mixed, targets = build({"name": "mixup", "alpha": 1.0})(images, labels)
    assert targets.shape == (n, K) and torch.allclose(targets.sum(1), torch.ones(n))
    assert torch.allclose(mixed[:, :, 0, 0], targets, atol=1e-6)  # image mix == label mix
    assert not torch.equal(mixed, images)


def test_mixup_folds_label_smoothing_into_soft_targets():
    torch.manual_seed(2)
    labels = torch.arange(K)
    mixup = build({"name": "mixup", "alpha": 1.0, "label_smoothing": 0.1})
    mixed, targets = mixup(one_hot_images(labels), labels)
    assert torch.allclose(targets.sum(1), torch.ones(K))
    assert torch.allclose(targets, mixed[:, :, 0, 0] * 0.9 + 0.01, atol=1e-6)
    assert targets.min() >= 0.01 - 1e-6


def test_prob_zero_leaves_images_and_gives_one_hot_targets():
    labels = torch.randint(0, K, (8,))
    images = torch.rand(8, 3, 8, 8)
    for name in ("mixup", "cutmix", "mixup_cutmix"):
        out, targets = build({"name": name, "prob": 0.0})(images, labels)
        assert torch.equal(out, images) and torch.equal(targets, soft_targets(labels, K))


def test_cutmix_adjusted_lambda_is_one_minus_box_area():
    torch.manual_seed(3)
    images = torch.zeros(2, 1, 20, 30)
    images[1] = 1
    for lam in (0.1, 0.5, 0.9, 0.99):
        for _ in range(20):
            mixed, adjusted = cutmix_images(images, torch.tensor([1, 0]), lam)
            box_area = (mixed[0] == 1).sum().item()  # pixels pasted from the partner
            assert adjusted == pytest.approx(1 - box_area / (20 * 30))
            assert (mixed[1] == 0).sum().item() == box_area  # the same box in every image
    torch.manual_seed(4)  # unclipped boxes have area ≈ (1 − λ)
    areas = [1 - cutmix_images(images, torch.tensor([1, 0]), 0.75)[1] for _ in range(400)]
    assert max(areas) == pytest.approx(0.25, abs=0.03) and min(areas) < 0.2


@pytest.mark.parametrize("name", ["cutmix", "mixup_cutmix"])
@pytest.mark.parametrize("n", [8, 17])
def test_cutmix_targets_equal_the_pixel_fractions(name, n):
    torch.manual_seed(5)
    labels = torch.randint(0, K, (n,))
    op = build({"name": name, "cutmix_alpha" if name == "mixup_cutmix" else "alpha": 1.0})
    for _ in range(10):
        mixed, targets = op(one_hot_images(labels, size=12), labels)
        assert torch.allclose(mixed.mean(dim=(2, 3)), targets, atol=1e-6)
        assert torch.allclose(targets.sum(1), torch.ones(n))


def test_mixup_cutmix_switch_probability():
    torch.manual_seed(6)
    labels = torch.arange(K)
    images = one_hot_images(labels)
    for switch, expect_box in ((1.0, True), (0.0, False)):
        op = build({"name": "mixup_cutmix", "switch_prob": switch})
        mixed, _ = op(images, labels)
        values = set(mixed.flatten().tolist())
        assert (values <= {0.0, 1.0}) is expect_box  # CutMix copies pixels, Mixup blends them


def test_mixing_accepts_soft_targets_and_chains():
    torch.manual_seed(7)
    labels = torch.randint(0, K, (9,))
    ops = build_batch_augmentations([{"name": "mixup"}, {"name": "cutmix"}], K)
    images, targets = torch.rand(9, 3, 8, 8), labels
    for op in ops:
        images, targets = op(images, targets)
    assert targets.shape == (9, K) and torch.allclose(targets.sum(1), torch.ones(9))


@pytest.mark.parametrize(
    "spec,match",
    [
        ({"name": "mixup", "alpha": 0}, "alpha must be > 0"),
        ({"name": "cutmix", "alpha": -1}, "alpha must be > 0"),
        ({"name": "mixup_cutmix", "cutmix_alpha": 0}, "cutmix_alpha must be > 0"),
        ({"name": "mixup", "prob": 1.5}, "prob must be a probability"),
        ({"name": "mixup_cutmix", "switch_prob": -0.1}, "switch_prob"),
        ({"name": "mixup", "label_smoothing": 1}, "label_smoothing"),
        ({"name": "mixup", "alhpa": 1}, "bad settings for batch augmentation 'mixup'"),
        ({"name": "random_erasing", "value": "noise"}, "value must be 'random'"),
        ({"name": "random_erasing", "scale": [0.5, 0.1]}, "scale"),
    ],
)
def test_bad_batch_augmentation_settings(spec, match):
    with pytest.raises(ConfigError, match=match):
        build(spec)


def test_unknown_batch_augmentation_suggests_names():
    with pytest.raises(UnknownNameError, match="Did you mean: mixup"):
        build({"name": "mixpu"})
    with pytest.raises(ConfigError, match="must be a mapping with a 'name'"):
        build_batch_augmentations(["mixup"], K)


# ----------------------------------------------------------------------------- random erasing
def test_random_erasing_erases_one_rectangle_per_image():
    torch.manual_seed(8)
    images = torch.full((64, 3, 32, 32), 0.5)
    labels = torch.arange(64) % K
    op = build({"name": "random_erasing", "prob": 1.0, "value": 0.0, "scale": [0.02, 0.33]})
    out, targets = op(images, labels)
    assert targets is labels
    boxes = set()
    for image in out:
        erased = (image == 0).all(0)
        rows, cols = erased.any(1).nonzero(), erased.any(0).nonzero()
        assert erased.sum() == len(rows) * len(cols)  # a filled rectangle
        assert rows.numel() and cols.numel()  # every image erased with prob 1
        fraction = erased.float().mean().item()
        assert 0.01 < fraction < 0.36
        assert (image[:, ~erased] == 0.5).all()  # nothing else touched
        boxes.add((rows.min().item(), cols.min().item(), len(rows), len(cols)))
    assert len(boxes) > 32  # sizes and places differ per image
    noisy, _ = build({"name": "random_erasing", "prob": 1.0})(images, labels)
    erased = noisy != 0.5
    assert erased.any() and noisy.min() >= 0 and noisy.max() <= 1
    assert torch.equal(build({"name": "random_erasing", "prob": 0.0})(images, labels)[0], images)


# ----------------------------------------------------------------------------- policies
@pytest.mark.parametrize("policy", ["cifar10", "imagenet"])
def test_autoaugment_draws_a_sub_policy_per_image(policy, digits):
    """64 copies of one image in one batch: one sub-policy (2 operations, each applied or not,
    magnitudes fixed, a random sign) yields at most 3 × 3 = 9 distinct images, so many more
    distinct images mean several sub-policies within the batch."""
    torch.manual_seed(9)
    image = digits[0][3]
    dataset = TransformedDataset(
        TensorDataset(image.expand(64, -1, -1, -1), torch.zeros(64, dtype=torch.long)),
        build_augment_policy({"name": "autoaugment", "policy": policy}),
    )
    batch, _ = next(iter(DataLoader(dataset, batch_size=64)))
    distinct = {tuple(x.flatten().mul(255).round().int().tolist()) for x in batch}
    assert len(distinct) > 20
    assert batch.shape == (64, 3, 32, 32) and batch.min() >= 0 and batch.max() <= 1


@pytest.mark.parametrize(
    "spec", [{"name": "randaugment", "n": 2, "m": 9}, {"name": "trivialaugment"}]
)
def test_random_policies_vary_per_image(spec, digits):
    torch.manual_seed(10)
    policy = build_augment_policy(spec)
    image = digits[0][5]
    outs = torch.stack([policy(image) for _ in range(32)])
    assert outs.shape == (32, 3, 32, 32) and outs.dtype == torch.float32
    assert outs.min() >= 0 and outs.max() <= 1
    assert len({tuple(x.flatten().tolist()) for x in outs}) > 10


@pytest.mark.parametrize(
    "spec,error,match",
    [
        ({"name": "autoaugmnet"}, UnknownNameError, "Did you mean: autoaugment"),
        ({"name": "autoaugment", "policy": "cifar"}, UnknownNameError, "Did you mean: cifar10"),
        ({"name": "randaugment", "m": 31}, ConfigError, r"m must be in \[0, 30\]"),
        ({"name": "randaugment", "n": 0}, ConfigError, "n must be >= 1"),
        ({"name": "augmix", "severity": 11}, ConfigError, "severity"),
        ({"name": "augmix", "alpha": 0}, ConfigError, "alpha must be > 0"),
        ({"name": "augmix", "depth": 0}, ConfigError, "depth must be -1"),
        ({"name": "trivialaugment", "m": 3}, ConfigError, "bad settings"),
        ("autoaugment", ConfigError, "must be a mapping"),
    ],
)
def test_bad_policy_settings(spec, error, match):
    with pytest.raises(error, match=match):
        build_augment_policy(spec)
    with pytest.raises(error, match=match):
        DigitsDataModule(augment_policy=spec)


def test_datamodule_policy_only_touches_training_images():
    dm = DigitsDataModule(batch_size=8, augment_policy={"name": "autoaugment"})
    dm.setup("fit")
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 32, 32) and dm.train_views == 1
    plain = DigitsDataModule()
    x, _ = dm.dataset("val")[:]
    assert torch.equal(x, plain.dataset("val")[:][0])
    subset, plain_subset = dm.robustness_subset("val", 4), plain.robustness_subset("val", 4)
    assert torch.equal(subset[0][0], plain_subset[0][0])


# ----------------------------------------------------------------------------- AugMix
def test_augmix_yields_clean_and_two_augmented_views():
    torch.manual_seed(11)
    dm = DigitsDataModule(batch_size=4, augment=False, augment_policy={"name": "augmix"})
    assert dm.train_views == 3
    views, labels = next(iter(DataLoader(dm.dataset("train"), batch_size=4)))
    assert views.shape == (4, 3, 3, 32, 32) and labels.shape == (4,)
    clean = torch.stack([DigitsDataModule(augment=False).dataset("train")[i][0] for i in range(4)])
    assert torch.equal(views[:, 0], clean)  # view 0 is the clean image
    assert not torch.allclose(views[:, 1], views[:, 2]) and views.min() >= 0 and views.max() <= 1
    single = build_augment_policy({"name": "augmix", "views": 1})
    assert single(clean[0]).shape == (3, 32, 32)


def test_jensen_shannon_zero_for_identical_views_and_hand_checked():
    logits = torch.randn(5, 10)
    assert jensen_shannon(torch.stack([logits] * 3)).item() == pytest.approx(0, abs=1e-6)
    # p = (0.5, 0.5), q = (0.9, 0.1), r = (0.1, 0.9): M = (0.5, 0.5) and
    # JS = H(M) − mean H = ln 2 − (ln 2 + 2 · H(0.9, 0.1)) / 3
    probs = torch.tensor([[0.5, 0.5], [0.9, 0.1], [0.1, 0.9]]).log().unsqueeze(1)
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    expected = math.log(2) - (math.log(2) + 2 * h) / 3
    assert expected == pytest.approx(0.24537, abs=1e-5)
    assert jensen_shannon(probs).item() == pytest.approx(expected, rel=1e-5)
    assert jensen_shannon(torch.randn(3, 4, 10)).item() > 0


# ----------------------------------------------------------------------------- AdaIN / stylize
def test_adain_output_has_the_style_channel_statistics():
    torch.manual_seed(12)
    content = torch.randn(4, 8, 6, 6) * 3 + 1
    style = torch.rand(4, 8, 5, 7) * 2
    style_mean, style_std = channel_stats(style)
    out = adain(content, style_mean, style_std)
    mean, std = channel_stats(out)
    assert torch.allclose(mean, style_mean, atol=1e-5)
    assert torch.allclose(std, style_std, atol=1e-3)


@pytest.fixture(scope="module")
def fake_adain(tmp_path_factory):
    return write_fake_adain(tmp_path_factory.mktemp("adain"))


def test_stylize_restyles_chosen_images_on_the_device(fake_adain):
    torch.manual_seed(13)
    stylize = build({"name": "stylize", **fake_adain, "prob": 1.0})
    assert stylize.num_styles == 3
    images, labels = torch.rand(6, 3, 32, 32), torch.arange(6)
    out, targets = stylize(images, labels)
    assert out.shape == images.shape and targets is labels
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, images)
    assert stylize.style_mean.shape == (3, 512 // 16, 1, 1)  # computed once, cached
    # per image: the result depends on the image and its style only, not on the batch
    first = stylize.stylize(images, style_index=torch.zeros(6, dtype=torch.long))
    assert torch.allclose(first[:1], stylize.stylize(images[:1], torch.zeros(1).long()), atol=1e-5)
    second = stylize.stylize(images, style_index=torch.ones(6, dtype=torch.long))
    assert (first - second).abs().max() > 0  # another style, another image
    assert stylize.state_dict() == {}  # networks and style statistics stay out of checkpoints
    keep = build({"name": "stylize", **fake_adain, "prob": 0.0})
    assert torch.equal(keep(images, labels)[0], images)


def test_stylize_bad_input(fake_adain, tmp_path):
    with pytest.raises(ConfigError, match="needs `encoder`"):
        build({"name": "stylize", **{**fake_adain, "encoder": None}})
    with pytest.raises(ConfigError, match=r"`decoder` file not found: /path/to/decoder\.pth"):
        build({"name": "stylize", **{**fake_adain, "decoder": "/path/to/decoder.pth"}})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ConfigError, match="holds no images"):
        build({"name": "stylize", **{**fake_adain, "styles": str(tmp_path / "empty")}})
    with pytest.raises(ConfigError, match="styles folder not found"):
        build({"name": "stylize", **{**fake_adain, "styles": str(tmp_path / "missing")}})
    with pytest.raises(CheckpointError, match="does not hold the AdaIN encoder"):
        build({"name": "stylize", **{**fake_adain, "arch": "vgg19"}})
    with pytest.raises(UnknownNameError, match="Did you mean: tiny"):
        vgg_encoder("tiyn")
    with pytest.raises(ConfigError, match="alpha must be a probability"):
        build({"name": "stylize", **fake_adain, "alpha": 2})


def test_stylized_copy_on_disk_mixes_with_the_training_set(fake_adain, tmp_path):
    torch.manual_seed(14)
    stylizer = Stylize(**fake_adain)
    source = DigitsDataModule(augment=False)
    subset = torch.utils.data.Subset(source.dataset("train"), range(12))
    assert write_stylized_dataset(subset, stylizer, tmp_path / "sty", num_classes=10) == 12
    assert sorted(p.name for p in (tmp_path / "sty").iterdir()) == [str(i) for i in range(10)]
    dm = DigitsDataModule(batch_size=1309, stylized_root=str(tmp_path / "sty"))
    assert len(dm.dataset("train")) == 1297 + 12 and len(dm.dataset("val")) == 250
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (1309, 3, 32, 32) and labels.dtype == torch.int64
    bad = tmp_path / "bad"
    (bad / "a").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="one folder per class"):
        DigitsDataModule(stylized_root=str(bad)).dataset("train")


def test_image_folder_policy_and_stylized_copy_in_worker_processes(tmp_path):
    make_image_folder(tmp_path / "data")
    make_image_folder(tmp_path / "stylized")  # a stand-in "stylized" copy, same classes
    dm = ImageFolderDataModule(
        root=str(tmp_path / "data"),
        image_size=32,
        batch_size=6,
        num_workers=2,
        augment_policy={"name": "augmix", "severity": 1},
        stylized_root=str(tmp_path / "stylized" / "train"),
    )
    assert len(dm.dataset("train")) == 18 and len(dm.dataset("val")) == 9
    views, labels = next(iter(dm.train_dataloader()))  # policies pickle into workers
    assert views.shape == (6, 3, 3, 32, 32) and labels.dtype == torch.int64


@pytest.mark.parametrize("value", ["false", "no", 2, None])
def test_augmix_all_ops_must_be_a_flag(value):
    """all_ops: "false" was truthy: training silently used brightness, contrast, colour and
    sharpness, the operations AugMix leaves out because they overlap the test corruptions."""
    with pytest.raises(ConfigError, match="all_ops must be true or false"):
        build_augment_policy({"name": "augmix", "all_ops": value})
    assert build_augment_policy({"name": "augmix", "all_ops": 0}).transform.all_ops is False


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "mixup", "alpha": 0.001},
        {"name": "cutmix", "alpha": 1e-300},
        {"name": "mixup_cutmix", "mixup_alpha": 0.005},
    ],
)
def test_mixing_refuses_concentrations_torch_cannot_sample(spec):
    """Below 0.01, torch's Beta(α, α) returns exactly 0.5 for many draws (a quarter at 0.001;
    at 1e-300 the first batch raised a raw ValueError)."""
    with pytest.raises(ConfigError, match=r"must be >= 0\.01"):
        build_batch_augmentations([spec], num_classes=10)
    with pytest.raises(ConfigError, match=r"must be >= 0\.01"):
        build_augment_policy({"name": "augmix", "alpha": 0.001})
    assert (torch.tensor([sample_beta(0.01) for _ in range(2000)]) == 0.5).sum() == 0


@pytest.mark.parametrize("value", ["0.5", True, None])
def test_augmentation_numbers_must_be_numbers(value):
    with pytest.raises(ConfigError, match="must be a number"):
        build_batch_augmentations([{"name": "mixup", "alpha": value}], num_classes=10)
    with pytest.raises(ConfigError, match="must be a number"):
        build_batch_augmentations([{"name": "mixup", "prob": value}], num_classes=10)
