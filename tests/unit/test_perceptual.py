"""The optional `perceptual` extra (LPIPS, Inception FID / KID): loads only local checkpoints,
fails with the key and file named, and measures what it claims.  The tests that need
torchvision skip, saying why, where it does not import (the default install)."""

from __future__ import annotations

import pytest
import torch
from conftest import TORCHVISION_ERROR, needs_torchvision

from gendeg.measure.perceptual import CONFIG_KEY, PerceptualMetrics, checkpoint_files, inception_distances


def _images(n: int = 6, size: int = 64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 8, 8, generator=generator)
    return torch.nn.functional.interpolate(base, size=size, mode="bilinear", align_corners=False)


@pytest.mark.skipif(TORCHVISION_ERROR is None, reason="torchvision imports here; this checks the error without it")
def test_without_torchvision_the_extra_says_which_key_to_unset(tmp_path):
    with pytest.raises(RuntimeError, match=rf"{CONFIG_KEY} is set, but torchvision does not import"):
        PerceptualMetrics(tmp_path)


@needs_torchvision
def test_a_missing_checkpoint_is_named_and_nothing_is_downloaded(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("the perceptual extra tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    with pytest.raises(FileNotFoundError, match="alexnet-owt-7be5be79.pth") as error:
        PerceptualMetrics(tmp_path)
    assert "inception_v3_google" in str(error.value) and CONFIG_KEY in str(error.value)


@needs_torchvision
def test_lpips_is_zero_for_identical_images_and_grows_with_distortion(random_torch_home, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("download attempted"))
    hub_before = torch.hub.get_dir()
    metrics = PerceptualMetrics(random_torch_home)
    assert torch.hub.get_dir() == hub_before, "torch.hub's folder was not restored"
    assert set(checkpoint_files(random_torch_home)) == {"alexnet", "inception_v3"}
    clean = _images()
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    same = metrics.lpips_per_image(clean, clean)
    assert same.shape == (len(clean),) and same.abs().max() < 1e-6
    distances = [metrics.lpips_per_image((clean + s * noise).clamp(0, 1), clean).mean() for s in (0.05, 0.2, 0.5)]
    assert distances[0] < distances[1] < distances[2], distances
    with pytest.raises(ValueError, match="lpips: need two"):
        metrics.lpips_per_image(clean, clean[:2])


@needs_torchvision
def test_inception_features_and_distances(random_torch_home):
    metrics = PerceptualMetrics(random_torch_home, batch_size=4)
    clean, other = _images(8, seed=0), _images(8, seed=2)
    features = metrics.inception_features(clean)
    assert features.shape == (8, 2048) and torch.isfinite(features).all()
    assert torch.equal(features, metrics.inception_features(clean)), "features are not deterministic"
    same = inception_distances(features, features, kid_subsets=5, kid_subset_size=8, seed=0)
    shifted = inception_distances(metrics.inception_features(other * 0.3 + 0.6), features, 5, 8, 0)
    assert same["inception_fid"] < 1e-6
    assert shifted["inception_fid"] > same["inception_fid"] + 1e-3 and shifted["inception_kid"] > same["inception_kid"]
