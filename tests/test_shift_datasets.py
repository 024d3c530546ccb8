"""Distribution-shift datasets on tiny fakes written in the real on-disk formats."""

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from robustart.data import (
    CIFAR10C,
    CIFAR10P,
    CIFAR100C,
    CIFAR101,
    IMAGENET_A_WNIDS,
    IMAGENET_O_WNIDS,
    IMAGENET_R_WNIDS,
    SHIFT_DATASETS,
    ClassSubset,
    ImageNetA,
    ImageNetC,
    ImageNetO,
    ImageNetOInDistribution,
    ImageNetP,
    ImageNetR,
    ImageNetSketch,
    ImageNetV2,
    SubsetLogits,
    create_shift_dataset,
    imagenet_subset,
    imagenet_wnids,
)
from robustart.errors import ConfigError, DatasetNotFoundError, UnknownNameError

TIMM_INFO = Path(timm.__file__).parent / "data" / "_info"


def write_images(folder: Path, n: int, seed: int, ext: str = "JPEG", size=(20, 24)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i}.{ext}")


def write_video(path: Path, frames: np.ndarray) -> Path:
    """Encode uint8 frames (F, H, W, 3), H and W even, as an H.264 mp4 (the codec of the
    ImageNet-P release) at CRF 0, so decoding gives them back to within YUV rounding."""
    av = pytest.importorskip("av")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "0"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


# ------------------------------------------------------------------ class lists and masks
def test_wnid_lists_match_the_copies_shipped_with_timm():
    """Independent copies of the same facts: timm ships the A/R lists and their indices."""
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and list(wnids) == sorted(wnids) and wnids[0] == "n01440764"
    for ours, stem in ((IMAGENET_A_WNIDS, "imagenet_a"), (IMAGENET_R_WNIDS, "imagenet_r")):
        theirs = (TIMM_INFO / f"{stem}_synsets.txt").read_text().split()
        indices = [int(i) for i in (TIMM_INFO / f"{stem}_indices.txt").read_text().split()]
        assert list(ours) == theirs and len(set(ours)) == 200
        assert imagenet_subset(stem).indices.tolist() == indices
    assert len(set(IMAGENET_O_WNIDS)) == 200 and list(IMAGENET_O_WNIDS) == sorted(IMAGENET_O_WNIDS)
    assert imagenet_subset("imagenet_a").indices[:3].tolist() == [6, 11, 13]


def test_subset_restrict_mask_and_wrapper():
    subset = ClassSubset.from_wnids(["n01443537", "n01440764", "n15075141"], name="three")
    assert subset.wnids == ("n01440764", "n01443537", "n15075141")  # sorted
    assert subset.indices.tolist() == [0, 1, 999]
    assert subset.mask.sum() == 3 and subset.mask[999]
    logits = torch.zeros(2, 1000)
    logits[0, 999] = 5.0  # → subset label 2
    logits[1, 1] = 5.0  # → subset label 1
    logits[1, 500] = 9.0  # outside the subset: ignored
    assert subset.restrict(logits).argmax(1).tolist() == [2, 1]
    assert subset.to_imagenet_labels(torch.tensor([2, 0])).tolist() == [999, 0]
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1000))
    wrapped = SubsetLogits(model, subset)
    x = torch.rand(4, 3, 2, 2)
    assert torch.equal(wrapped(x), model(x)[:, [0, 1, 999]])
    with pytest.raises(ConfigError, match="1000"):
        subset.restrict(torch.zeros(2, 10))
    with pytest.raises(DatasetNotFoundError, match="n99999999"):
        ClassSubset.from_wnids(["n99999999"])
    with pytest.raises(UnknownNameError, match="imagenet_a"):
        imagenet_subset("imagenet-a")


# ---------------------------------------------------------- CIFAR-10-C / 100-C / 10.1 / 10-P
def make_cifar_c(root: Path, n: int = 4, corruptions=("fog", "contrast"), full_labels=True):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in corruptions:
        images = rng.integers(0, 256, size=(5 * n, 32, 32, 3), dtype=np.uint8)
        # stamp the severity into pixel (0, 0, 0) so the slicing is visible
        images[:, 0, 0, 0] = np.repeat(np.arange(1, 6), n) * 10
        np.save(root / f"{name}.npy", images)
    labels = np.arange(n) % 10
    np.save(root / "labels.npy", np.tile(labels, 5) if full_labels else labels)
    return root


def test_cifar10_c_severity_major_slicing(tmp_path):
    root = make_cifar_c(tmp_path / "CIFAR-10-C")
    data = CIFAR10C(root, "fog", severity=3)
    assert len(data) == 4
    image, label = data[1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert image.min() >= 0 and image.max() <= 1
    raw = np.load(root / "fog.npy")
    assert image[0, 0, 0].item() == pytest.approx(30 / 255)  # severity 3 block
    assert torch.equal(image, torch.from_numpy(raw[2 * 4 + 1]).permute(2, 0, 1).float() / 255)
    assert int(label) == 1
    # labels.npy may also hold only the N test labels; CIFAR-100-C reads the same layout
    root100 = make_cifar_c(tmp_path / "CIFAR-100-C", full_labels=False)
    data100 = create_shift_dataset("cifar100-c", str(root100), corruption="contrast", severity=5)
    assert isinstance(data100, CIFAR100C) and data100[3][0][0, 0, 0].item() == pytest.approx(
        50 / 255
    )


def test_cifar_c_errors_name_the_expected_files(tmp_path):
    root = make_cifar_c(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"snow\.npy not found.*Found: contrast, fog"):
        CIFAR10C(root, "snow", 1)
    (root / "labels.npy").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"labels\.npy"):
        CIFAR10C(root, "fog", 1)
    np.save(root / "bad.npy", np.full((7, 32, 32, 3), 128, dtype=np.uint8))
    np.save(root / "labels.npy", np.zeros(7, dtype=np.int64))
    with pytest.raises(DatasetNotFoundError, match="multiple of the 5 severities"):
        CIFAR10C(root, "bad", 1)
    np.save(root / "float.npy", np.zeros((5, 32, 32, 3), dtype=np.float32))
    with pytest.raises(DatasetNotFoundError, match="uint8"):
        CIFAR10C(root, "float", 1)
    with pytest.raises(ConfigError, match="severity"):
        CIFAR10C(root, "fog", 6)
    # images in [0, 1] cast to uint8, an array of zeros, an empty file: named, not scored
    np.save(root / "cast.npy", np.random.default_rng(0).integers(0, 2, (5, 32, 32, 3), np.uint8))
    np.save(root / "black.npy", np.zeros((5, 32, 32, 3), dtype=np.uint8))
    (root / "empty.npy").write_bytes(b"")
    np.save(root / "labels.npy", np.zeros(5, dtype=np.int64))
    for name in ("cast", "black"):
        with pytest.raises(DatasetNotFoundError, match=rf"{name}\.npy holds only the values 0"):
            CIFAR10C(root, name, 1)
    with pytest.raises(DatasetNotFoundError, match=r"empty\.npy is not a valid .* empty file"):
        CIFAR10C(root, "empty", 1)


def test_cifar10_1(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "cifar10.1_v6_data.npy", images)
    np.save(tmp_path / "cifar10.1_v6_labels.npy", np.array([3, 1, 4, 1, 5, 9]))
    data = CIFAR101(tmp_path)
    image, label = data[2]
    assert len(data) == 6 and int(label) == 4 and image.shape == (3, 32, 32)
    assert torch.equal(image, torch.from_numpy(images[2]).permute(2, 0, 1).float() / 255)
    with pytest.raises(DatasetNotFoundError, match=r"cifar10\.1_v4_data\.npy"):
        CIFAR101(tmp_path, version="v4")


def test_cifar10_p_sequences(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "gaussian_noise_2.npy", rng.integers(0, 256, (3, 5, 32, 32, 3), np.uint8))
    data = CIFAR10P(tmp_path, "gaussian_noise_2")
    assert len(data) == 3 and data[0].shape == (5, 3, 32, 32) and data.noise
    with pytest.raises(DatasetNotFoundError, match=r"rotate\.npy.*Found: gaussian_noise_2"):
        CIFAR10P(tmp_path, "rotate")


def gray_sequence(frames: int, seed: int, size: int = 32) -> np.ndarray:
    """A smooth gray image drifting right one pixel per frame, uint8 (F, size, size, 3)."""
    rng = np.random.default_rng(seed)
    base = np.kron(rng.integers(0, 256, (size // 8, size // 8, 1)), np.ones((8, 8, 3)))
    return np.stack([np.roll(base, f, axis=1) for f in range(frames)]).astype(np.uint8)


def test_imagenet_p_decodes_the_release_layout(tmp_path):
    written = {}
    for perturbation, wnid, name, seed in (
        ("rotate", "n01443537", "b.mp4", 1),
        ("rotate", "n01440764", "z.mp4", 2),
        ("rotate", "n01440764", "a.mp4", 3),
        ("gaussian_noise_2", "n01440764", "c.mp4", 4),
    ):
        frames = gray_sequence(5, seed)
        written[name] = frames
        write_video(tmp_path / perturbation / wnid / name, frames)
    (tmp_path / "empty").mkdir()
    assert ImageNetP.perturbations(tmp_path) == ["gaussian_noise_2", "rotate"]
    data = ImageNetP(tmp_path, "rotate")
    assert [f.name for f in data.files] == ["a.mp4", "z.mp4", "b.mp4"]  # class, then file
    assert len(data) == 3 and data.frames == 5 and not data.noise
    item = data[0]
    assert item.shape == (5, 3, 32, 32) and item.dtype == torch.float32
    expected = torch.from_numpy(written["a.mp4"]).permute(0, 3, 1, 2).float() / 255
    assert (item - expected).abs().max() <= 2 / 255  # H.264 at CRF 0: YUV rounding only
    assert ImageNetP(tmp_path, "gaussian_noise_2").noise
    assert isinstance(
        create_shift_dataset("imagenet-p", str(tmp_path), perturbation="rotate"), ImageNetP
    )


def test_imagenet_p_errors_name_the_problem(tmp_path, monkeypatch):
    write_video(tmp_path / "rotate" / "n01440764" / "a.mp4", gray_sequence(5, 0))
    with pytest.raises(DatasetNotFoundError, match=r"no videos in .*tilt.*Found: rotate"):
        ImageNetP(tmp_path, "tilt")
    write_video(tmp_path / "rotate" / "n01440764" / "b.mp4", gray_sequence(4, 1))
    with pytest.raises(DatasetNotFoundError, match=r"b\.mp4 has 4 frames .* equal lengths"):
        ImageNetP(tmp_path, "rotate")[1]
    (tmp_path / "rotate" / "n01440764" / "c.mp4").write_bytes(b"not a video" * 100)
    with pytest.raises(DatasetNotFoundError, match=r"cannot decode .*c\.mp4"):
        ImageNetP(tmp_path, "rotate")[2]
    monkeypatch.setitem(__import__("sys").modules, "av", None)  # PyAV not installed
    with pytest.raises(ConfigError, match="needs PyAV: `pip install av`"):
        ImageNetP(tmp_path, "rotate")


# ------------------------------------------------------------------ ImageNet-C / Sketch / V2
def test_imagenet_c_labels_are_imagenet_indices(tmp_path):
    for wnid in ("n01440764", "n15075141"):
        write_images(tmp_path / "fog" / "2" / wnid, 2, seed=1, size=(224, 224))
    data = ImageNetC(tmp_path, "fog", 2)
    assert len(data) == 4 and sorted(set(data.targets)) == [0, 999]
    image, label = data[3]
    assert image.shape == (3, 224, 224) and label == 999  # no resizing by default
    with pytest.raises(DatasetNotFoundError, match=r"ImageNet-C corruption 'snow'.*Found: fog"):
        ImageNetC(tmp_path, "snow", 2)
    with pytest.raises(DatasetNotFoundError, match="fog/3"):
        ImageNetC(tmp_path, "fog", 3)


def test_imagenet_sketch_and_non_wnid_folders(tmp_path):
    write_images(tmp_path / "sketch" / "n01443537", 2, seed=2, ext="png", size=(30, 40))
    with pytest.raises(DatasetNotFoundError, match=r"holds 1 of the 1000 class folders"):
        ImageNetSketch(tmp_path / "sketch")  # a partial copy is not ImageNet-Sketch
    data = ImageNetSketch(tmp_path / "sketch", allow_missing_classes=True)
    image, label = data[0]
    assert label == 1 and image.shape == (3, 224, 224)
    with pytest.raises(DatasetNotFoundError, match=r"wnids.*sketch"):
        ImageNetSketch(tmp_path)  # root one level too high: folder "sketch" is not a wnid


def test_imagenet_v2_sorts_numerically_and_labels_by_folder_number(tmp_path):
    for folder in ("0", "2", "10", "100"):
        write_images(tmp_path / folder, 1, seed=int(folder), ext="jpeg")
    with pytest.raises(DatasetNotFoundError, match=r"holds 4 of the 1000 .*missing: 1, 3, 4"):
        ImageNetV2(tmp_path)
    data = ImageNetV2(tmp_path, allow_missing_classes=True)
    assert data.classes == ["0", "2", "10", "100"]  # lexical order would be 0, 10, 100, 2
    assert data.targets == [0, 2, 10, 100]
    assert data[2][1] == 10
    (tmp_path / "1000").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"named 0\.\.999.*1000"):
        ImageNetV2(tmp_path)
    (tmp_path / "1000").rmdir()
    write_images(tmp_path / "007", 1, seed=7, ext="jpeg")  # beside "0"; read as class 7
    with pytest.raises(DatasetNotFoundError, match=r"no leading zeros.*007"):
        ImageNetV2(tmp_path, allow_missing_classes=True)
    with pytest.raises(DatasetNotFoundError, match="not a folder"):
        ImageNetV2(tmp_path / "missing")


# ------------------------------------------------------------------ ImageNet-A / -R / -O
def test_imagenet_a_official_subset_and_folder_subset(tmp_path):
    chosen = [IMAGENET_A_WNIDS[0], IMAGENET_A_WNIDS[5], IMAGENET_A_WNIDS[199]]
    for i, wnid in enumerate(chosen):
        write_images(tmp_path / wnid, 1, seed=i)
    with pytest.raises(DatasetNotFoundError, match=r"holds 3 of the 200 class folders"):
        ImageNetA(tmp_path)  # scored as ImageNet-A on 3 of its classes, before
    official = ImageNetA(tmp_path, allow_missing_classes=True)
    assert official.targets == [0, 5, 199]  # positions among the official 200
    derived = ImageNetA(tmp_path, subset="folders")
    assert derived.targets == [0, 1, 2] and len(derived.subset) == 3
    imagenet = ImageNetA(tmp_path, imagenet_labels=True, allow_missing_classes=True)
    assert imagenet.targets == imagenet_subset("imagenet_a").indices[[0, 5, 199]].tolist()
    # a 1000-class model scored on the 200 classes: restrict(logits).argmax is the label
    logits = torch.full((1, 1000), -1.0)
    logits[0, imagenet.targets[1]] = 3.0
    assert official.subset.restrict(logits).argmax(1).item() == official.targets[1]


def test_imagenet_r_rejects_folders_outside_its_classes(tmp_path):
    outside = next(w for w in IMAGENET_A_WNIDS if w not in IMAGENET_R_WNIDS)
    write_images(tmp_path / IMAGENET_R_WNIDS[3], 1, seed=0)
    write_images(tmp_path / outside, 1, seed=1)
    with pytest.raises(DatasetNotFoundError, match=f"not in the 200-class subset.*{outside}"):
        ImageNetR(tmp_path, allow_missing_classes=True)
    assert ImageNetR(tmp_path, subset="folders").targets == [0, 1]
    assert SHIFT_DATASETS.get("imagenet-r") is ImageNetR


def test_imagenet_o_and_its_in_distribution_val_images(tmp_path):
    ood = tmp_path / "imagenet-o"
    write_images(ood / IMAGENET_O_WNIDS[7], 2, seed=0)
    val = tmp_path / "val"
    write_images(val / IMAGENET_O_WNIDS[7], 1, seed=1)
    write_images(val / IMAGENET_O_WNIDS[9], 1, seed=2)
    other = next(w for w in imagenet_wnids() if w not in IMAGENET_O_WNIDS)
    write_images(val / other, 1, seed=3)  # one of the 800 other val classes: skipped
    with pytest.raises(DatasetNotFoundError, match=r"holds 2 of the 200 class folders"):
        ImageNetOInDistribution(val)  # a partial val copy
    out_data = ImageNetO(ood, allow_missing_classes=True)
    in_data = ImageNetOInDistribution(val, allow_missing_classes=True)
    assert out_data.targets == [7, 7] and in_data.targets == [7, 9]
    assert in_data.subset == out_data.subset == imagenet_subset("imagenet_o")


def test_empty_class_folders_and_registry(tmp_path):
    (tmp_path / IMAGENET_A_WNIDS[0]).mkdir()
    (tmp_path / IMAGENET_A_WNIDS[0] / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetNotFoundError, match="no image files"):
        ImageNetA(tmp_path)
    # one name per dataset, the benchmark's; any spelling of it finds the dataset
    for spelling in ("imagenet-a", "imagenet_a", "ImageNet-A"):
        with pytest.raises(DatasetNotFoundError, match="no image files"):
            create_shift_dataset(spelling, str(tmp_path))
    with pytest.raises(UnknownNameError, match="Did you mean: imagenet-a"):
        create_shift_dataset("imagenet-aa", str(tmp_path))
    from robustart.evaluation.benchmarks import BENCHMARKS

    # every dataset but ImageNet-O's in-distribution half is a benchmark of the same name
    datasets = {n for n in SHIFT_DATASETS.names() if not n.endswith("-in-distribution")}
    assert datasets <= set(BENCHMARKS.names())
