"""Degradation generators: each changes the image the way its physics says, deterministically."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_opening, laplace, minimum_filter

from gendeg import DEGRADATIONS
from gendeg.data.scenes import load_scene, random_crop
from gendeg.data.standins import degrade_to_mu
from gendeg.degradations import GENERATORS, OOD_GENERATORS, TRAINING_GENERATORS, generate
from gendeg.degradations.common import line_kernel
from gendeg.degradations.motion_blur import DEFAULTS as BLUR_DEFAULTS
from gendeg.degradations.motion_blur import trajectory_kernel
from gendeg.pipeline.config import load_schema

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def crops() -> list[tuple[np.ndarray, np.ndarray]]:
    """Three 64x64 crops of different kinds of scene (photo, tinted grey, procedural)."""
    return [random_crop(load_scene(name, 96), 64, np.random.default_rng(0))
            for name in ("astronaut", "coins", "deadleaves-01")]


def mu(clean: np.ndarray, degraded: np.ndarray) -> float:
    return float(np.abs(clean - degraded).mean())


def luma(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.299, 0.587, 0.114], np.float32)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_contract(name, crops):
    clean, depth = crops[0]
    out = generate(name, clean, 7, 0.6, depth)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out, generate(name, clean, 7, 0.6, depth))  # same seed, same image
    assert np.abs(out - generate(name, clean, 8, 0.6, depth)).mean() > 1e-4  # another seed, another draw
    # Intensity grows with severity; severity 0 is (near) the clean image.
    mus = [mu(clean, generate(name, clean, 7, s, depth)) for s in (0.0, 0.3, 0.6, 1.0)]
    assert mus[0] < 0.05
    assert all(b > a for a, b in zip(mus, mus[1:], strict=False)), mus


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_rejects_bad_input(name, crops):
    clean, _ = crops[0]
    with pytest.raises(KeyError, match="unknown config key"):
        generate(name, clean, 0, 0.5, config={"no_such_knob": 1})
    with pytest.raises(ValueError, match="severity"):
        generate(name, clean, 0, 1.5)
    with pytest.raises(ValueError, match="HxWx3"):
        generate(name, clean[..., 0], 0, 0.5)


# mu at severity 1 must reach the top of what real data of that kind shows (released
# histograms: 95th percentile of the most intense dataset), so calibration never runs short.
# Raindrops only refract what is there, so a low-contrast scene caps them below Raindrop's 0.11.
REAL_MU_P95 = {"haze": 0.27, "rain": 0.19, "snow": 0.13, "motion_blur": 0.068, "low_light": 0.27, "raindrop": 0.08}


@pytest.mark.parametrize("name", TRAINING_GENERATORS)
def test_training_generator_spans_the_real_mu_range(name, crops):
    for clean, depth in crops:
        assert mu(clean, generate(name, clean, 3, 0.0, depth)) <= 0.03
        assert mu(clean, generate(name, clean, 3, 1.0, depth)) >= REAL_MU_P95[name]


@pytest.mark.parametrize("name", ["haze", "ood_haze"])
def test_haze_lowers_contrast_and_raises_the_dark_channel(name, crops):
    for clean, depth in crops:
        hazy = generate(name, clean, 1, 0.5, depth)
        assert luma(hazy).std() < 0.8 * luma(clean).std()
        dark_clean = minimum_filter(clean.min(axis=2), size=7).mean()
        dark_hazy = minimum_filter(hazy.min(axis=2), size=7).mean()
        assert dark_hazy > dark_clean + 0.1


def test_nonhomogeneous_haze_varies_more_than_homogeneous(crops):
    clean = np.full((64, 64, 3), 0.2, np.float32)
    depth = np.full((64, 64), 0.5, np.float32)
    flat = generate("haze", clean, 4, 0.5, depth, {"variant": "homogeneous"})
    patchy = generate("haze", clean, 4, 0.5, depth, {"variant": "nonhomogeneous"})
    assert flat.std(axis=(0, 1)).max() < 1e-4 and patchy.std(axis=(0, 1)).min() > 0.02


@pytest.mark.parametrize("name", ["motion_blur", "ood_blur"])
def test_motion_blur_lowers_high_frequency_energy(name, crops):
    for clean, _ in crops:
        blurred = generate(name, clean, 2, 0.3)
        def energy(image):
            return float(np.mean(laplace(luma(image)) ** 2))
        assert energy(blurred) < 0.5 * energy(clean)
        # Blur moves light around rather than removing it (averaging in linear light, as
        # GoPro-like does, brightens a little).
        assert abs(blurred.mean() - clean.mean()) < 0.05


def test_camera_trajectories_are_not_straight_lines():
    residuals = []
    for seed in range(8):
        kernel = trajectory_kernel(np.random.default_rng(seed), 15.0, BLUR_DEFAULTS)
        assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
        ys, xs = np.nonzero(kernel > 1e-3)
        points = np.stack([ys, xs], 1).astype(float)
        points -= points.mean(0)
        residuals.append(np.linalg.svd(points, compute_uv=False)[-1] / np.sqrt(len(points)))
    assert max(residuals) > 1.0  # at least some paths bend well off their best-fit line
    straight = line_kernel(15.0, 30.0)
    ys, xs = np.nonzero(straight > 1e-3)
    points = np.stack([ys, xs], 1).astype(float) - [ys.mean(), xs.mean()]
    assert np.linalg.svd(points, compute_uv=False)[-1] / np.sqrt(len(points)) < 1.0


@pytest.mark.parametrize("name,config", [("low_light", None), ("ood_low_light", {"variant": "colour_cast"}),
                                         ("ood_low_light", {"variant": "crf"})])
def test_low_light_lowers_mean_luminance(name, config, crops):
    for clean, _ in crops:
        dark = generate(name, clean, 3, 0.5, config=config)
        assert luma(dark).mean() < 0.6 * luma(clean).mean()


def test_low_light_noise_is_signal_dependent():
    clean = np.concatenate([np.full((32, 64, 3), 0.2, np.float32), np.full((32, 64, 3), 0.9, np.float32)])
    dark = generate("low_light", clean, 0, 0.5, config={"full_well": 200.0, "read_noise": 0.0})
    linear = dark ** 2.2
    assert linear[32:].std() > 1.5 * linear[:32].std()  # Poisson: brighter, noisier (in photons)


@pytest.mark.parametrize("name,opening", [("rain", 3), ("ood_rain", 3), ("snow", 5)])
def test_rain_and_snow_add_bright_thin_structures(name, opening, crops):
    for clean, depth in crops:
        wet = generate(name, clean, 5, 0.4, depth)
        brighter = luma(wet) - luma(clean) > 0.1
        assert 0.01 < brighter.mean() < 0.7
        assert (luma(wet) - luma(clean)).mean() > 0  # light is added
        thin = brighter & ~binary_opening(brighter, structure=np.ones((opening, opening)))
        assert thin.sum() > 0.5 * brighter.sum()  # mostly structures thinner than the opening


def test_imagenet_c_snow_washes_and_adds_flakes():
    clean = np.full((64, 64, 3), 0.3, np.float32)
    lift = luma(generate("ood_snow", clean, 5, 0.6)) - 0.3
    assert np.quantile(lift, 0.05) > 0.02  # the whole image is washed towards bright grey ...
    assert np.quantile(lift, 0.99) - np.quantile(lift, 0.5) > 0.2  # ... and flakes stand out of the wash


def test_rain_streaks_follow_their_angle():
    clean = np.zeros((64, 64, 3), np.float32)
    vertical = luma(generate("rain", clean, 1, 0.3, config={"angle": 0.0, "angle_spread": 0.0, "layers": 1}))
    dy = np.abs(np.diff(vertical, axis=0)).mean()
    dx = np.abs(np.diff(vertical, axis=1)).mean()
    assert dy < 0.5 * dx  # vertical streaks change little going down, a lot going across


@pytest.mark.parametrize("name,config", [("raindrop", {"background_defocus": 0.0, "drops_per_area": 4.0}),
                                         ("ood_raindrop", {"drops_per_area": 4.0})])
def test_raindrops_change_local_regions(name, config, crops):
    for clean, _ in crops:
        wet = generate(name, clean, 6, 0.5, config=config)
        changed = np.abs(wet - clean).max(axis=2) > 0.02
        untouched = np.abs(wet - clean).max(axis=2) == 0
        assert changed.mean() > 0.02  # drops are there
        assert untouched.mean() > 0.3  # and the rest of the image is left alone


def test_raindrop_background_defocus_touches_the_whole_image(crops):
    clean, _ = crops[0]
    wet = generate("raindrop", clean, 6, 0.5, config={"background_defocus": 0.03})
    assert (np.abs(wet - clean).max(axis=2) > 0).mean() > 0.9


@pytest.mark.parametrize("name", TRAINING_GENERATORS + OOD_GENERATORS)
def test_degrade_to_mu_hits_the_target(name, crops):
    clean, depth = crops[0]
    for target in (0.03, 0.08):
        out, severity = degrade_to_mu(lambda s: generate(name, clean, 11, s, depth), clean, target, tolerance=1e-3)
        np.testing.assert_array_equal(out, generate(name, clean, 11, severity, depth))
        if 0.0 < severity < 1.0:
            assert mu(clean, out) == pytest.approx(target, abs=1e-3)
        else:  # clipped: the target lies outside what this generator can do to this image
            edge = mu(clean, generate(name, clean, 11, severity, depth))
            assert (severity == 0.0 and edge >= target) or (severity == 1.0 and edge <= target)


def test_unknown_generator_is_a_clear_error(crops):
    with pytest.raises(KeyError, match="unknown degradation generator 'fog'"):
        generate("fog", crops[0][0], 0, 0.5)


def _enums(node) -> list[list]:
    """Every `enum` list anywhere in a schema."""
    if isinstance(node, dict):
        own = [node["enum"]] if isinstance(node.get("enum"), list) else []
        return own + [e for v in node.values() for e in _enums(v)]
    return [e for v in node for e in _enums(v)] if isinstance(node, list) else []


def test_gendeg_degradations_is_the_one_list():
    """The generators derive from gendeg.DEGRADATIONS; the schema's enums (the data contract) repeat it exactly."""
    assert TRAINING_GENERATORS == DEGRADATIONS and set(REAL_MU_P95) == set(DEGRADATIONS)
    assert set(GENERATORS) == {*DEGRADATIONS, *OOD_GENERATORS} and len(OOD_GENERATORS) == len(DEGRADATIONS)
    named = [enum for enum in _enums(load_schema()) if set(enum) & set(DEGRADATIONS)]
    assert len(named) == 2  # degradations and structure_correction.degradations
    assert all(enum == list(DEGRADATIONS) for enum in named), named
