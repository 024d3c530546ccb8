"""Where frost finds its photographs: a folder argument, ROBUSTART_FROST_DIR, or the shipped
five, and the errors when a folder is missing or unreadable.

conftest.py points ROBUSTART_FROST_DIR at synthetic photographs for the whole session; the tests
of the shipped photographs unset it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustart.corruptions import create_corruption
from robustart.corruptions import frost as frost_module
from robustart.corruptions.frost import (
    FROST_ENV,
    REFERENCE_TEXTURES,
    SHIPPED_FROST_DIR,
    Frost,
    frost_texture_files,
)
from robustart.errors import DatasetNotFoundError
from robustart.utils import make_generator

#: The checksums of frost_textures/README.md (imagecorruptions 1.1.2's files, byte for byte).
SHIPPED_SHA256 = {
    "frost1.png": "ff9f907860bd7a835d459e32f9d588062b7f61ee267343cc7222b56753a14755",
    "frost2.png": "fe211a89b336999c207a852ce05818d4545d0b57c5beadd824b4cc9d9a9b6137",
    "frost3.png": "2d0d50b4a9bb213f38b024ef7768731bb83cc08d2f26b5766bbc167cdfa0e504",
    "frost4.jpg": "3f8b91ca1a9fa7167b09e773da53f5ae60d0a1fd88f02a783f6e328a72887f6e",
    "frost5.jpg": "5fc6a19df4a429ba68abdcc8f8a4278d4c9f81c9ccafd2c92ab0c8cf8992ebd2",
}
REFERENCE_FOLDER = (*REFERENCE_TEXTURES, "frost6.jpg")  # the reference's six file names


def save_image(path: Path, pixels: np.ndarray) -> Path:
    """Write a uint8 (h, w, 3) array as an image (format from the suffix)."""
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def solid(value: int, height: int = 60, width: int = 70) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


@pytest.fixture
def no_frost_env(monkeypatch):
    """Unset conftest.py's ROBUSTART_FROST_DIR, so that the shipped photographs are used."""
    monkeypatch.delenv(FROST_ENV, raising=False)


# --------------------------------------------------------------------------- shipped photographs
def test_the_shipped_photographs_are_the_reference_five_with_their_licence(no_frost_env):
    files = frost_texture_files()
    assert files == [SHIPPED_FROST_DIR / name for name in REFERENCE_TEXTURES]
    for path in files:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == SHIPPED_SHA256[path.name]
    licence = (SHIPPED_FROST_DIR / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    provenance = (SHIPPED_FROST_DIR / "README.md").read_text()
    assert "imagecorruptions" in provenance
    assert all(digest in provenance for digest in SHIPPED_SHA256.values())
    assert not (SHIPPED_FROST_DIR / "frost6.jpg").exists()  # randint(5) never draws it


def test_frost_runs_on_the_shipped_photographs_without_configuration(no_frost_env):
    corruption = create_corruption("frost")
    corruption.check_available()
    for size in (32, 224):  # the CIFAR table (photographs shrunk to 20 %) and ImageNet's
        images = torch.full((4, 3, size, size), 0.2)
        out = corruption(images, 3, make_generator(0))
        assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
        assert out.mean() > 0.2 * 0.7 + 0.1  # frost brightens: a = 0.7, b · frost ≫ 0
        assert not torch.equal(out[0], out[1])  # a crop per image


# --------------------------------------------------------------------------- user folders
def test_a_folder_of_the_reference_six_uses_the_five_in_the_reference_order(tmp_path, monkeypatch):
    """frost6.jpg is white, the five are black: a · x + b · frost6 would show; it never does."""
    for name in REFERENCE_FOLDER:
        save_image(tmp_path / name, solid(255 if name == "frost6.jpg" else 0))
    expected = [tmp_path / name for name in REFERENCE_TEXTURES]
    assert frost_texture_files(tmp_path) == expected
    monkeypatch.setenv(FROST_ENV, os.fspath(tmp_path))
    assert frost_texture_files() == expected
    images = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = Frost(frost_dir=tmp_path)(images, 5, make_generator(0))
    image_weight = Frost.cifar[4][0]
    assert torch.allclose(out, image_weight * images, atol=1e-6)


def test_other_folders_use_every_image_sorted(tmp_path):
    """Only some of the reference names, plus others: every image, sorted by name."""
    for name in ("frost1.png", "frost2.png", "b.JPG", "a.webp"):
        save_image(tmp_path / name, solid(100))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "folder.png").mkdir()
    names = [p.name for p in frost_texture_files(tmp_path)]
    assert names == ["a.webp", "b.JPG", "frost1.png", "frost2.png"]


def test_the_argument_wins_over_the_environment_variable(tmp_path, monkeypatch):
    arg, env = tmp_path / "arg", tmp_path / "env"
    for folder, name in ((arg, "x.png"), (env, "y.png")):
        folder.mkdir()
        save_image(folder / name, solid(10))
    monkeypatch.setenv(FROST_ENV, os.fspath(env))
    assert frost_texture_files(arg) == [arg / "x.png"]
    assert frost_texture_files() == [env / "y.png"]
    monkeypatch.setenv(FROST_ENV, "")  # set but empty: as if unset
    assert frost_texture_files() == [SHIPPED_FROST_DIR / name for name in REFERENCE_TEXTURES]


def test_a_user_folder_gives_the_blend_of_its_photograph(tmp_path, monkeypatch):
    """Results for a user folder as before: one 225×225 photograph leaves one 224-px crop, so
    frost is exactly a · x + b · photograph[:224, :224]; the variable and the argument agree."""
    pixels = np.random.default_rng(0).integers(0, 256, (225, 225, 3))
    save_image(tmp_path / "only.png", pixels)
    photo = torch.from_numpy(pixels[:224, :224] / 255.0).permute(2, 0, 1).float()
    images = torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    for severity, (a, b) in enumerate(Frost.imagenet, start=1):
        out = Frost(frost_dir=tmp_path)(images, severity, make_generator(2))
        assert torch.allclose(out, (a * images + b * photo).clamp(0, 1), atol=1e-6)
        monkeypatch.setenv(FROST_ENV, os.fspath(tmp_path))
        assert torch.equal(Frost()(images, severity, make_generator(2)), out)
        monkeypatch.delenv(FROST_ENV)


# --------------------------------------------------------------------------- errors
def test_a_missing_folder_gives_a_one_line_error_saying_what_to_do(tmp_path, monkeypatch):
    missing = tmp_path / "missing"
    with pytest.raises(DatasetNotFoundError, match="does not exist") as info:
        Frost(frost_dir=missing)(torch.rand(1, 3, 32, 32), 1)
    message = str(info.value)
    assert "frost_dir" in message and str(missing) in message and "\n" not in message
    assert "shipped with robustart" in message  # the way out: leave it unset
    monkeypatch.setenv(FROST_ENV, os.fspath(missing))
    with pytest.raises(DatasetNotFoundError, match=f"{FROST_ENV}=.*does not exist.*unset it"):
        frost_texture_files()
    (tmp_path / "a file").write_text("")
    with pytest.raises(DatasetNotFoundError, match="is a file, not a folder"):
        frost_texture_files(tmp_path / "a file")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError, match="no frost images"):
        frost_texture_files(empty)


def test_missing_shipped_photographs_say_to_reinstall(tmp_path, monkeypatch, no_frost_env):
    monkeypatch.setattr(frost_module, "SHIPPED_FROST_DIR", tmp_path / "gone")
    with pytest.raises(DatasetNotFoundError, match="reinstall robustart"):
        Frost().check_available()


def test_check_available(tmp_path, no_frost_env):
    Frost().check_available()  # the shipped photographs
    with pytest.raises(DatasetNotFoundError, match="no frost images"):
        Frost(frost_dir=tmp_path).check_available()  # empty folder, before any image is seen
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        Frost(frost_dir=tmp_path / "missing").check_available()
    save_image(tmp_path / "good.png", solid(50))
    Frost(frost_dir=tmp_path).check_available()
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    for action in (
        lambda: Frost(frost_dir=tmp_path).check_available(),
        lambda: Frost(frost_dir=tmp_path)(torch.rand(1, 3, 32, 32), 1),
    ):
        with pytest.raises(DatasetNotFoundError, match="cannot decode") as info:
            action()
        assert str(tmp_path / "broken.jpg") in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- fidelity
@pytest.mark.parametrize(("count", "size", "severities"), [(48, 32, (1, 3, 5)), (8, 224, (3,))])
def test_frost_on_each_shipped_photograph_matches_the_reference(
    tmp_path, no_frost_env, count, size, severities
):
    """The reference port (tests/reference_corruptions.py) and robustart corrupt natural images
    by the same amount with each shipped photograph (mean PSNR and SSIM; the tolerances of
    test_corruptions_fidelity.py). One photograph at a time: which of the five, very different,
    photographs an image draws would otherwise dominate the difference at these counts."""
    pytest.importorskip("skimage")
    pytest.importorskip("cv2")
    import reference_corruptions as ref

    tolerance = (1.0, 0.04) if size < 85 else (1.5, 0.06)
    images = ref.natural_test_images(count, size, seed=0)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    for photograph in frost_texture_files():
        folder = tmp_path / photograph.stem
        folder.mkdir()
        (folder / photograph.name).write_bytes(photograph.read_bytes())
        for severity in severities:
            ours = Frost(frost_dir=folder)(batch, severity, make_generator(0))
            ours = ours.permute(0, 2, 3, 1).double().numpy()
            theirs = ref.reference_corrupt(
                images, "frost", severity, seed=1, frost_files=[folder / photograph.name]
            )
            d_psnr = ref.psnr(images, ours).mean() - ref.psnr(images, theirs).mean()
            d_ssim = ref.ssim(images, ours).mean() - ref.ssim(images, theirs).mean()
            assert abs(d_psnr) <= tolerance[0], (photograph.name, size, severity, d_psnr)
            assert abs(d_ssim) <= tolerance[1], (photograph.name, size, severity, d_ssim)
