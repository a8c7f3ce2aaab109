"""Metrics against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from gendeg.measure.metrics import (
    colour_shift,
    frechet_distance,
    kid,
    mean_matched_psnr,
    psnr,
    sliced_wasserstein_patches,
    ssim,
)

torch.set_num_threads(1)


def _images(seed: int, n: int = 4, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 4, size // 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def test_psnr_of_known_mse_per_image():
    target = torch.full((2, 3, 16, 16), 0.5)
    pred = target.clone()
    pred[0] += 0.1  # MSE 0.01 -> 20 dB
    pred[1] -= 0.01  # MSE 1e-4 -> 40 dB
    np.testing.assert_allclose(psnr(pred, target).numpy(), [20.0, 40.0], atol=1e-4)


def test_psnr_clamps_predictions_to_unit_range():
    target = torch.ones(1, 3, 8, 8)
    assert math.isinf(psnr(target + 0.5, target).item())


def test_ssim_identical_is_one_and_degraded_is_lower():
    images = _images(0)
    np.testing.assert_allclose(ssim(images, images).numpy(), 1.0, atol=1e-6)
    noisy = (images + 0.1 * torch.randn(images.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    values = ssim(noisy, images)
    assert values.shape == (4,) and (values < 0.9).all()


def test_ssim_agrees_with_skimage_gaussian_ssim():
    images = _images(2, n=1, size=48)
    noisy = (images + 0.05 * torch.randn(images.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    reference = structural_similarity(noisy[0].permute(1, 2, 0).double().numpy(),
                                      images[0].permute(1, 2, 0).double().numpy(), channel_axis=2,
                                      data_range=1.0, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
    assert ssim(noisy, images).item() == pytest.approx(reference, abs=0.02)


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(1, 3, 8, 8\)"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


def _gaussian(seed: int, n: int, dim: int = 16, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_kid_near_zero_for_same_distribution_and_positive_for_shifted():
    a, b = _gaussian(0, 400), _gaussian(1, 400)
    same_mean, same_std = kid(a, b, subsets=20, subset_size=200, seed=0)
    shifted_mean, _ = kid(a, _gaussian(2, 400, shift=1.0), subsets=20, subset_size=200, seed=0)
    assert abs(same_mean) < 0.05 and same_std >= 0
    assert shifted_mean > 0.5
    assert shifted_mean > 20 * abs(same_mean)


def test_kid_is_deterministic_given_seed():
    a, b = _gaussian(0, 100), _gaussian(1, 120, shift=0.3)
    assert kid(a, b, subsets=5, subset_size=50, seed=7) == kid(a, b, subsets=5, subset_size=50, seed=7)


def test_frechet_distance_identical_zero_and_known_mean_shift():
    a = _gaussian(0, 500, dim=8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # A pure mean shift leaves the covariance term at zero: distance = |shift|^2 = 8 * 0.5^2.
    assert frechet_distance(a, a + 0.5) == pytest.approx(2.0, rel=1e-6)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    b = torch.randn(20000, 3, generator=g, dtype=torch.float64) * 2.0
    # Closed form for N(0, I) vs N(0, 4I): 3 * (1 + 4 - 2 * 2) = 3.
    assert frechet_distance(a, b) == pytest.approx(3.0, rel=0.05)


def test_feature_metrics_reject_mismatched_dims():
    with pytest.raises(ValueError, match="16 vs 8"):
        kid(_gaussian(0, 10), _gaussian(1, 10, dim=8))


def test_sliced_wasserstein_small_within_distribution_and_large_for_haze():
    a, b = _images(0, n=8), _images(1, n=8)
    hazy = 0.5 * b + 0.45
    same = sliced_wasserstein_patches(a, b, seed=0)
    different = sliced_wasserstein_patches(a, hazy, seed=0)
    # Patch positions are random per set, so even a set against itself has a small sampling floor.
    assert sliced_wasserstein_patches(a, a, seed=0) < 0.5 * different
    assert different > 3 * same
    assert sliced_wasserstein_patches(a, hazy, seed=0) == different


def test_mean_matched_psnr_ignores_a_global_tint_but_not_structure():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 16, 16, generator=generator) * 0.6 + 0.2
    tinted = target + torch.tensor([0.1, -0.05, 0.02]).view(1, 3, 1, 1)
    noisy = target + 0.05 * torch.randn(target.shape, generator=generator)
    assert torch.all(psnr(tinted, target) < 30)
    assert torch.all(mean_matched_psnr(tinted, target) > 60)  # the tint alone costs nothing
    assert torch.allclose(mean_matched_psnr(noisy, target), psnr(noisy, target), atol=0.5)  # noise is not a tint


def test_colour_shift_is_the_signed_channel_mean_error():
    target = torch.full((1, 3, 8, 8), 0.5)
    shifted = target + torch.tensor([0.1, 0.0, -0.2]).view(1, 3, 1, 1)
    assert torch.allclose(colour_shift(shifted, target), torch.tensor([[0.1, 0.0, -0.2]]), atol=1e-6)
