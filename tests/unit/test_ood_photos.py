"""The frozen second OOD benchmark: its generators (on a synthetic image, no Debian package
needed) and its evaluation script (on a tiny random restorer and a tiny built set)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.studies import load_study

bench = load_study("ood_photos")
load_study("ood_photos_set")  # the frozen set's package: its modules import one another by that name
ood_build = importlib.import_module("ood_photos_set.build")
generators = importlib.import_module("ood_photos_set.generators")
ood_photos_list = importlib.import_module("ood_photos_set.photos")

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


# ----------------------------------------------------------------------------- evaluation script

TINY_NAFNET = {"arch": "nafnet", "width": 8, "enc_blocks": [1, 1], "middle_blocks": 1, "dec_blocks": [1, 1]}


def tiny_set(folder: Path, size: int = 32) -> Path:
    """Three synthetic scenes x two degradations written as a set in the benchmark's layout."""
    from PIL import Image

    from gendeg.data.manifest import make_frame, write_manifest

    rows = []
    for scene in range(3):
        clean = synthetic_image(size, seed=scene)
        clean_path = folder / "clean" / f"s{scene}.png"
        clean_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((clean * 255 + 0.5).astype(np.uint8)).save(clean_path)
        for name in ("haze", "low_light"):
            degraded = generators.GENERATORS[name](clean, np.random.default_rng(scene), 0.7)
            path = folder / "degraded" / name / f"s{scene}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((degraded * 255 + 0.5).astype(np.uint8)).save(path)
            rows.append({"image_path": str(path), "target_path": str(clean_path), "dataset": "ood_photos",
                         "degradation": name, "split": "ood", "scene": f"s{scene}"})
    write_manifest(make_frame(rows), folder / "manifest.csv")
    return folder


def save_tiny_restorer(folder: Path, seed: int, identity: bool = False) -> Path:
    from gendeg.restorers import build_restorer, save_restorer

    model = build_restorer(TINY_NAFNET, seed=seed)
    if identity:  # a zero body: the residual restorer returns its input
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.zero_()
    save_restorer(model, TINY_NAFNET, folder)
    return folder


def test_image_metrics_separate_colour_from_structure():
    target = torch.from_numpy(synthetic_image(32).transpose(2, 0, 1))[None] * 0.8
    tinted = target + torch.tensor([0.1, 0.0, -0.05]).view(1, 3, 1, 1)
    figures = bench.image_metrics(tinted, target)
    np.testing.assert_allclose(figures["colour_shift"][0], [0.1, 0.0, -0.05], atol=2e-3)
    assert figures["mean_matched_psnr"][0] > figures["psnr"][0] + 20  # a pure tint costs nothing once matched


def test_mean_matching_agrees_with_gendeg_metrics():
    import gendeg.measure.metrics

    rng = torch.Generator().manual_seed(0)
    pred, target = torch.rand(4, 3, 16, 16, generator=rng), torch.rand(4, 3, 16, 16, generator=rng)
    np.testing.assert_allclose(bench.image_metrics(pred, target)["mean_matched_psnr"],
                               gendeg.measure.metrics.mean_matched_psnr(pred, target).numpy(), rtol=1e-5)


def test_evaluation_end_to_end_on_a_tiny_set(tmp_path):
    set_dir = tiny_set(tmp_path / "set")
    restorers = {
        "existing": {"0": str(save_tiny_restorer(tmp_path / "e0", 0, identity=True)),
                     "1": str(save_tiny_restorer(tmp_path / "e1", 1, identity=True))},
        "gends": {"0": str(save_tiny_restorer(tmp_path / "g0", 10)), "1": str(save_tiny_restorer(tmp_path / "g1", 11))},
    }
    result = bench.evaluate(restorers, set_dir, image_size=32, comparisons=[("gends", "existing")], threads=1)
    assert result["pairs"] == 6 and result["scenes"] == 3 and result["threads"] == 1
    assert set(result["input"]["per_degradation"]) == {"haze", "low_light"}
    identity = result["restorers"]["existing"]["over_seeds"]
    # The identity restorer scores exactly the input, so its gain is zero with no spread.
    assert identity["mean"]["psnr"]["mean"] == pytest.approx(result["input"]["mean"]["psnr"], abs=1e-4)
    assert identity["mean"]["psnr_gain"]["mean"] == pytest.approx(0.0, abs=1e-4)
    assert identity["mean"]["mean_matched_psnr_gain"]["std"] == pytest.approx(0.0, abs=1e-4)
    random_gain = result["restorers"]["gends"]["over_seeds"]["mean"]["psnr_gain"]
    assert random_gain["per_seed"][0] != random_gain["per_seed"][1]  # the seeds are different restorers
    (comparison,) = result["comparisons"]
    assert comparison["seeds"] == ["0", "1"]
    gends_seed0 = result["restorers"]["gends"]["per_seed"]["0"]["mean"]["psnr"]
    existing_seed0 = result["restorers"]["existing"]["per_seed"]["0"]["mean"]["psnr"]
    assert comparison["mean"]["psnr"]["per_seed"][0] == pytest.approx(gends_seed0 - existing_seed0)
    assert len(result["input"]["mean"]["colour_shift"]) == 3
    assert "machine" in result and result["git_commit"]
    assert "low_light" in bench.format_table(result)
    # At another size the pairs are resized, and the input baseline is measured at that size too.
    small = bench.evaluate({"existing": restorers["existing"]}, set_dir, image_size=16, threads=1)
    assert small["input"]["mean"]["psnr"] != result["input"]["mean"]["psnr"]


def test_restorer_arguments_and_errors(tmp_path):
    parsed = bench.parse_restorers(["gends@3=/a", "gends@4=/b", "existing=/c", "existing=/d"])
    assert parsed == {"gends": {"3": "/a", "4": "/b"}, "existing": {"0": "/c", "1": "/d"}}
    with pytest.raises(ValueError, match="already has seed"):
        bench.parse_restorers(["gends@1=/a", "gends@1=/b"])
    with pytest.raises(ValueError, match="LABEL=DIR"):
        bench.parse_restorers(["gends"])
    with pytest.raises(FileNotFoundError, match="make ood-photos"):
        bench.load_set(tmp_path / "absent", 128)
    set_dir = tiny_set(tmp_path / "set")
    one = {"a": {"0": str(save_tiny_restorer(tmp_path / "a", 0))}}
    with pytest.raises(ValueError, match="no restorer labelled"):
        bench.evaluate(one, set_dir, image_size=32, comparisons=[("a", "b")])
