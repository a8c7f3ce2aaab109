"""Scenes: bundled files load offline, procedural scenes are seeded, splits never share a scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gendeg.data.scenes import (
    GREY_FILES,
    PHOTO_FILES,
    SceneSplit,
    caption,
    catalogue,
    dead_leaves,
    load_scene,
    random_crop,
    split_scenes,
)

torch.set_num_threads(1)


def test_every_bundled_scene_file_is_installed():
    missing = [str(path) for path in {**PHOTO_FILES, **GREY_FILES}.values() if not path.exists()]
    assert not missing
    assert len(PHOTO_FILES) + len(GREY_FILES) >= 18


@pytest.mark.parametrize("name", ["astronaut", "china", "grace_hopper", "coins", "motorcycle", "deadleaves-03"])
def test_load_scene_renders_rgb_and_depth_at_the_requested_size(name):
    scene = load_scene(name, 48)
    height, width, channels = scene.image.shape
    assert channels == 3 and min(height, width) == 48
    assert scene.image.dtype == np.float32 and scene.depth.dtype == np.float32
    assert scene.depth.shape == (height, width)
    assert 0.0 <= scene.image.min() and scene.image.max() <= 1.0
    assert scene.depth.min() == pytest.approx(0.0, abs=1e-6) and scene.depth.max() == pytest.approx(1.0, abs=1e-6)
    assert not scene.image.flags.writeable  # cached arrays must not be mutated by callers
    assert caption(name)


def test_grey_scenes_are_tinted_into_colour():
    image = load_scene("camera", 48).image
    assert np.abs(image[..., 0] - image[..., 2]).max() > 0.05


def test_motorcycle_depth_comes_from_disparity_not_a_ramp():
    depth = load_scene("motorcycle", 64).depth
    row_means = depth.mean(axis=1)
    ramp = load_scene("astronaut", 64).depth.mean(axis=1)
    assert np.all(np.diff(ramp) <= 1e-6)  # the ramp prior: monotone, top is far
    assert not np.all(np.diff(row_means) <= 1e-6)
    assert depth.std(axis=1).mean() > 0.05  # varies along rows too, unlike a tilted plane


def test_dead_leaves_are_seeded_scenes_with_occlusion_depth():
    image_a, depth_a = dead_leaves(40, seed=1)
    image_b, _ = dead_leaves(40, seed=1)
    image_c, _ = dead_leaves(40, seed=2)
    np.testing.assert_array_equal(image_a, image_b)
    assert np.abs(image_a - image_c).mean() > 0.05
    assert len(np.unique(depth_a)) > 10  # many occluding layers


def test_random_crop_is_seeded_and_checks_its_size():
    scene = load_scene("chelsea", 48)
    crop_a, depth_a = random_crop(scene, 32, np.random.default_rng(5))
    crop_b, _ = random_crop(scene, 32, np.random.default_rng(5))
    assert crop_a.shape == (32, 32, 3) and depth_a.shape == (32, 32)
    np.testing.assert_array_equal(crop_a, crop_b)
    with pytest.raises(ValueError, match="does not fit"):
        random_crop(scene, 64, np.random.default_rng(0))


def test_unknown_scene_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown scene 'nope'"):
        load_scene("nope", 32)


def test_split_gives_each_group_its_own_scenes_and_holds_ood_scenes_out():
    names = catalogue(12)
    sizes = {"a": 2, "b": 1, "c": 3}
    split = split_scenes(names, sizes, 8, np.random.default_rng(0))
    assert {group: len(scenes) for group, scenes in split.groups.items()} == sizes
    assert len(split.ood) == 8
    used = [s for scenes in split.groups.values() for s in scenes]
    assert len(set(used)) == len(used)
    assert not set(used) & set(split.ood)
    kinds = {("deadleaves" in s) for s in split.ood}
    assert kinds == {True, False}  # the held-out pool mixes photos and procedural scenes
    again = split_scenes(names, sizes, 8, np.random.default_rng(0))
    assert again == split


def test_split_refuses_when_scenes_run_out():
    with pytest.raises(ValueError, match="raise n_procedural_scenes"):
        split_scenes(catalogue(0), {"a": 10}, 10, np.random.default_rng(0))


def test_check_disjoint_names_the_shared_scene():
    with pytest.raises(ValueError, match="'coins' is used by both 'a' and '<ood>'"):
        SceneSplit(groups={"a": ["coins"]}, ood=["coins"]).check_disjoint()
