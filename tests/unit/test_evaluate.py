"""The evaluation's distributional distances: restored-vs-clean and input-vs-clean in one call,
smaller for a perfect restoration than for a degraded input, undefined below two images."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from gendeg.measure.classifier import DegradationClassifier, extract_features
from gendeg.measure.metrics import random_patches_at
from gendeg.stages.evaluate import DISTANCES, patch_corners, set_distances

CFG = {"kid_subsets": 10, "kid_subset_size": 100, "patch_size": 5, "patches_per_image": 16, "projections": 32}


def _split(restored: torch.Tensor, clean: torch.Tensor, degraded: torch.Tensor) -> SimpleNamespace:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = DegradationClassifier(width=4)
    images = {"restored": restored, "clean": clean, "degraded": degraded}
    corners = patch_corners(len(clean), clean.shape[-2:], CFG, torch.Generator().manual_seed(0))
    patches = {k: random_patches_at(v, *corners, CFG["patch_size"]).unflatten(0, (len(v), -1)) for k, v in images.items()}
    return SimpleNamespace(features={k: extract_features(net, v) for k, v in images.items()}, patches=patches,
                           perceptual=False, distance_keys=DISTANCES)


def _scenes(n: int = 12, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 8, 8, generator=generator)
    return torch.nn.functional.interpolate(base, size=32, mode="bilinear", align_corners=False)


def test_identical_sets_are_closer_than_degraded_ones():
    clean = _scenes()
    hazy = clean * 0.4 + 0.55  # low contrast, lifted black level
    result = set_distances(_split(clean.clone(), clean, hazy), np.arange(len(clean)), CFG, seed=0)
    assert set(result) == set(DISTANCES)
    assert result["fid"] < 1e-6 and result["swd"] < 1e-12  # same features, same patches
    for key in ("kid", "fid", "swd"):
        assert result[key] < result[f"input_{key}"], key
    assert result["input_swd"] > 0.05


def test_a_better_restoration_is_closer():
    clean = _scenes()
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    slightly, badly = (clean + 0.02 * noise).clamp(0, 1), (clean + 0.3 * noise).clamp(0, 1)
    better = set_distances(_split(slightly, clean, badly), np.arange(len(clean)), CFG, seed=0)
    for key in ("kid", "fid", "swd"):
        assert better[key] < better[f"input_{key}"], key


def test_same_seed_same_numbers_and_single_images_are_undefined():
    clean = _scenes()
    split = _split(clean * 0.9, clean, clean * 0.5)
    index = np.arange(len(clean))
    assert set_distances(split, index, CFG, seed=3) == set_distances(split, index, CFG, seed=3)
    assert set_distances(split, np.arange(1), CFG, seed=3) == dict.fromkeys(DISTANCES)


def test_feature_training_cap_is_per_degradation_deterministic_and_ordered():
    import pandas as pd

    from gendeg.stages.train_classifier import cap_per_degradation

    frame = pd.DataFrame({"degradation": ["haze"] * 10 + ["rain"] * 3, "dataset": list("abababababxyz")})
    capped = cap_per_degradation(frame, 4, seed=0)
    assert capped.groupby("degradation").size().to_dict() == {"haze": 4, "rain": 3}
    assert capped.index.is_monotonic_increasing and capped.equals(cap_per_degradation(frame, 4, seed=0))
    assert cap_per_degradation(frame, None, seed=0) is frame
