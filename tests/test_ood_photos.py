"""The frozen second OOD benchmark: its generators (on a synthetic image, no Debian package
needed) and its evaluation script (on a tiny random restorer and a tiny built set)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from ood_photos_set import build as ood_build  # noqa: E402
from ood_photos_set import generators  # noqa: E402
from ood_photos_set import photos as ood_photos_list  # noqa: E402

DEGRADATIONS = ("haze", "rain", "snow", "motion_blur", "low_light", "raindrop")
# Smallest plausible mu at severity 0.8 on the synthetic image (drops only refract a smooth
# image a little; every other generator changes it by more).
MIN_MU = {"haze": 0.02, "rain": 0.005, "snow": 0.01, "motion_blur": 0.005, "low_light": 0.1, "raindrop": 0.002}


def synthetic_image(size: int = 96, seed: int = 0) -> np.ndarray:
    """Smooth colour ramps, a bright patch (saturated highlights) and texture: every generator has something to act on."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    image = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 - 0.3 * x * y], axis=-1)
    image += 0.08 * np.sin(2 * np.pi * 9 * x)[..., None] * np.cos(2 * np.pi * 5 * y)[..., None]
    image[size // 8:size // 4, size // 8:size // 4] = 1.0
    image += rng.normal(0, 0.02, image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def test_every_degradation_has_one_generator_and_a_severity_range():
    assert tuple(generators.GENERATORS) == DEGRADATIONS
    assert tuple(ood_build.SEVERITY) == DEGRADATIONS
    for low, high in ood_build.SEVERITY.values():
        assert 0 < low < high <= 1


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_generator_shape_range_determinism_and_effect(name):
    clean = synthetic_image()
    apply = generators.GENERATORS[name]
    first = apply(clean, np.random.default_rng(7), 0.8)
    second = apply(clean, np.random.default_rng(7), 0.8)
    other = apply(clean, np.random.default_rng(8), 0.8)
    assert first.shape == clean.shape and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() <= 1.0
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other), f"{name}: the seed changes nothing"
    mu = float(np.abs(first - clean).mean())
    assert MIN_MU[name] < mu < 0.6, f"{name}: implausible mu {mu:.4f} at severity 0.8"


@pytest.mark.parametrize("name", ("haze", "rain", "snow", "motion_blur", "low_light"))
def test_generator_grows_with_severity(name):
    clean = synthetic_image()
    mus = [float(np.abs(generators.GENERATORS[name](clean, np.random.default_rng(3), s) - clean).mean())
           for s in (0.3, 1.0)]
    assert mus[1] > mus[0], f"{name}: mu {mus} does not grow with severity"


def test_generators_reject_bad_input():
    with pytest.raises(ValueError, match="severity"):
        generators.fog(synthetic_image(), np.random.default_rng(0), 1.5)
    with pytest.raises(ValueError, match="HxWx3"):
        generators.rain(np.zeros((8, 8)), np.random.default_rng(0), 0.5)


def test_plasma_fractal_is_normalised_and_needs_a_power_of_two():
    field = generators.plasma_fractal(64, 2.0, np.random.default_rng(0))
    assert field.shape == (64, 64) and field.min() == 0.0 and field.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="power of two"):
        generators.plasma_fractal(48, 2.0, np.random.default_rng(0))


def test_motion_kernel_is_centred_and_sums_to_one():
    kernel = generators.motion_trail_kernel(4.0, 0.7)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
    ys, xs = np.mgrid[0:kernel.shape[0], 0:kernel.shape[1]]
    centre = (kernel.shape[0] - 1) / 2
    assert (kernel * ys).sum() == pytest.approx(centre, abs=1e-3)
    assert (kernel * xs).sum() == pytest.approx(centre, abs=1e-3)


def test_low_light_darkens():
    clean = synthetic_image()
    dark = generators.low_light(clean, np.random.default_rng(1), 1.0)
    assert dark.mean() < 0.5 * clean.mean()


def test_photo_list_is_frozen_and_never_uses_the_reserved_package():
    assert len(ood_photos_list.PHOTOS) == 25
    assert len({p.sha256 for p in ood_photos_list.PHOTOS}) == 25
    for photo in ood_photos_list.PHOTOS:
        assert photo.package in ood_photos_list.PACKAGES
        assert "mate" not in photo.package and "/mate" not in photo.path
        assert len(photo.sha256) == 64


def test_missing_photo_names_the_package_and_the_install_command(tmp_path):
    fake = ood_photos_list.Photo("x", "plasma-workspace-wallpapers", str(tmp_path / "absent.jpg"), "0" * 64, "a", "b", "c")
    with pytest.raises(ood_photos_list.PhotoSourceError, match="apt-get install -y plasma-workspace-wallpapers"):
        ood_photos_list.check_sources([fake])
