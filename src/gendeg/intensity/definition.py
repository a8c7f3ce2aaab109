"""Degradation intensity (mu, sigma) exactly as the paper defines it, and its 128-bin encoding.

mu = mean |clean - degraded| and sigma = population std of the same difference, over all
pixels and channels, after resizing both images to 256x256 (Lanczos).  Each value is put
in one of 128 uniform bins (mu on [0, 0.7], sigma on [0, 0.4], overflow to the top bin);
slot 128 of the 129-slot one-hot means "no intensity condition".
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

N_BINS = 128
NULL_SLOT = N_BINS  # index of the "no condition" slot; one-hot vectors have N_BINS + 1 slots
RANGES = {"mu": 0.7, "sigma": 0.4}
STATS_SIZE = 256  # both images are resized to this square size before mu/sigma are measured


# --------------------------------------------------------------------------------------
# Bins


def bin_index(values, kind: str):
    """Bin index in [0, 127] of mu or sigma values (numpy array, tensor or float)."""
    if kind not in RANGES:
        raise ValueError(f"intensity kind must be one of {sorted(RANGES)}, got {kind!r}")
    width = RANGES[kind] / N_BINS
    if isinstance(values, torch.Tensor):
        return torch.clamp((values / width).floor().long(), 0, N_BINS - 1)
    index = np.clip(np.floor(np.asarray(values, dtype=np.float64) / width), 0, N_BINS - 1).astype(np.int64)
    return int(index) if index.ndim == 0 else index


def bin_centre(index, kind: str):
    """Centre of a bin: the value a bin stands for when it is sampled back."""
    width = RANGES[kind] / N_BINS
    return (np.asarray(index, dtype=np.float64) + 0.5) * width


def bin_edges(kind: str) -> list[float]:
    """The 129 bin edges as the released files spell them (`i * width`, plain Python floats)."""
    if kind not in RANGES:
        raise ValueError(f"intensity kind must be one of {sorted(RANGES)}, got {kind!r}")
    width = RANGES[kind] / N_BINS
    return [i * width for i in range(N_BINS + 1)]


def histogram_counts(values, kind: str) -> np.ndarray:
    """int64[128] counts of mu or sigma values in the paper's bins (overflow -> top bin)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return np.bincount(bin_index(values, kind), minlength=N_BINS).astype(np.int64)


def joint_counts(mu, sigma) -> np.ndarray:
    """int64[128, 128] joint counts, rows = mu bin, columns = sigma bin (the Mu-Sigma.json matrix)."""
    mu_bins = bin_index(np.asarray(mu, dtype=np.float64).ravel(), "mu")
    sigma_bins = bin_index(np.asarray(sigma, dtype=np.float64).ravel(), "sigma")
    if mu_bins.shape != sigma_bins.shape:
        raise ValueError(f"joint_counts: {mu_bins.size} mu values but {sigma_bins.size} sigma values")
    flat = np.bincount(mu_bins * N_BINS + sigma_bins, minlength=N_BINS * N_BINS)
    return flat.reshape(N_BINS, N_BINS).astype(np.int64)


# --------------------------------------------------------------------------------------
# Measuring (mu, sigma)


def _check_image(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"mu_sigma: {name} must be an HxWx3 array, got shape {array.shape}")
    return array.astype(np.float32, copy=False)


def resize_lanczos(image: np.ndarray, size: int = STATS_SIZE) -> np.ndarray:
    """Lanczos resize of an HxWx3 float image to size x size, clipped back to [0, 1].

    PIL resamples each channel as a 32-bit float ("F") image, so no 8-bit rounding is
    added; clipping removes the Lanczos overshoot exactly as PIL's 8-bit path does.  The
    released code resized 8-bit images; on 8-bit inputs the two agree to about 1e-3 in mu.
    """
    image = _check_image(image, "image")
    if image.shape[:2] == (size, size):
        return np.clip(image, 0.0, 1.0)
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c]), mode="F").resize(
            (size, size), Image.Resampling.LANCZOS))
        for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)


def mu_sigma(clean: np.ndarray, degraded: np.ndarray, size: int = STATS_SIZE) -> tuple[float, float]:
    """The paper's intensity of one pair: (mean, population std) of |clean - degraded|.

    Both float32 HxWx3 images in [0, 1] (sizes may differ) are Lanczos-resized to
    size x size first (see `resize_lanczos`); statistics are taken in float64 over all
    pixels and channels, as the released code does.
    """
    difference = np.abs(resize_lanczos(clean, size).astype(np.float64) - resize_lanczos(degraded, size))
    difference = np.clip(difference, 0.0, 1.0)
    return float(difference.mean()), float(difference.std())


def mu_sigma_torch(clean: torch.Tensor, degraded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched (mu[B], sigma[B]) of Bx3xHxW tensors in [0, 1] at their native resolution.

    No resize: this is for model outputs during training and filtering, where the images
    are already at one size.  Use `mu_sigma` for numbers comparable with the released
    statistics, which were measured at 256x256.  Differentiable.
    """
    if clean.shape != degraded.shape or clean.ndim != 4:
        raise ValueError(f"mu_sigma_torch: need two Bx3xHxW tensors of one shape, got "
                         f"{tuple(clean.shape)} and {tuple(degraded.shape)}")
    difference = (clean - degraded).abs().clamp(0.0, 1.0).flatten(1)
    return difference.mean(dim=1), difference.std(dim=1, unbiased=False)
