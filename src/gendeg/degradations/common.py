"""Shared building blocks of the degradation generators: config merging, kernels, filtering.

Every generator has the same signature,

    apply(clean, rng, severity, depth=None, config=None) -> degraded

with `clean` float32 HxWx3 in [0, 1], `severity` in [0, 1] and all randomness drawn from
`rng`.  Generators draw every random quantity *before* they look at `severity` and use
severity only to scale what they drew, so with the same seed the degradation grows smoothly
with severity.  That is what lets the builder hit a requested intensity by root finding.
Lengths are fractions of the image's shorter side, so a 32x32 smoke run and a 256x256 run
look alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import fftconvolve


def merged_config(defaults: Mapping[str, Any], config: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """Defaults overridden by `config`; an unknown key is an error that names the generator."""
    config = dict(config or {})
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise KeyError(f"{where}: unknown config key(s) {unknown}; known keys: {sorted(defaults)}")
    return {**defaults, **config}


def check_input(clean: np.ndarray, severity: float, where: str) -> np.ndarray:
    clean = np.asarray(clean)
    if clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"{where}: expected an HxWx3 image, got shape {clean.shape}")
    if not 0.0 <= float(severity) <= 1.0:
        raise ValueError(f"{where}: severity must lie in [0, 1], got {severity}")
    return clean.astype(np.float32, copy=False)


def finish(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def uniform(rng: np.random.Generator, bounds, size=None):
    """Draw from [low, high] given as a 2-sequence (a scalar means a fixed value)."""
    if np.isscalar(bounds):
        return np.full(size, float(bounds)) if size is not None else float(bounds)
    low, high = bounds
    return rng.uniform(low, high, size=size)


def splat(points: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Bilinear splat of (y, x) points (origin at the kernel centre) into a size x size kernel."""
    centre = (size - 1) / 2.0
    coords = points + centre
    base = np.floor(coords).astype(np.int64)
    frac = coords - base
    kernel = np.zeros((size, size), np.float64)
    for dy in (0, 1):
        for dx in (0, 1):
            w = weights * np.abs(1 - dy - frac[:, 0]) * np.abs(1 - dx - frac[:, 1])
            yy, xx = base[:, 0] + dy, base[:, 1] + dx
            ok = (yy >= 0) & (yy < size) & (xx >= 0) & (xx < size)
            np.add.at(kernel, (yy[ok], xx[ok]), w[ok])
    return kernel


def line_kernel(length: float, angle_deg: float, peak_one: bool = False) -> np.ndarray:
    """Anti-aliased straight line of `length` pixels; angle 0 = vertical, positive = clockwise lean.

    Normalised to sum 1 (a blur) or, with `peak_one`, to a maximum of 1 (a streak stamp).
    """
    length = max(float(length), 0.0)
    size = int(np.ceil(length)) // 2 * 2 + 3
    t = np.linspace(-0.5, 0.5, max(int(np.ceil(length * 4)), 2))
    angle = np.deg2rad(angle_deg)
    points = np.stack([t * length * np.cos(angle), t * length * np.sin(angle)], axis=1)
    kernel = splat(points, np.ones(len(t)), size)
    kernel /= kernel.max() if peak_one else kernel.sum()
    return kernel.astype(np.float32)


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Same-size convolution of an HxW or HxWxC image with reflect padding (FFT based)."""
    pad_y, pad_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    if pad_y == 0 and pad_x == 0:
        return image * kernel[0, 0]
    widths = [(pad_y, pad_y), (pad_x, pad_x)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, widths, mode="reflect" if min(image.shape[:2]) > max(pad_y, pad_x) else "edge")
    k = kernel if image.ndim == 2 else kernel[..., None]
    return fftconvolve(padded, k, mode="valid", axes=(0, 1)).astype(np.float32)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the spatial axes only."""
    if sigma <= 1e-3:
        return image
    sigmas = (sigma, sigma) + (0,) * (image.ndim - 2)
    return gaussian_filter(image, sigmas, mode="reflect").astype(np.float32)


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, scale: float) -> np.ndarray:
    """A smooth random field in [0, 1]: white noise low-passed at `scale` x the shorter side."""
    noise = rng.standard_normal(shape)
    field = gaussian_filter(noise, max(scale * min(shape), 0.5), mode="wrap")
    low, high = field.min(), field.max()
    return ((field - low) / max(high - low, 1e-8)).astype(np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.299, 0.587, 0.114], np.float32)


def ellipse_window(cy: float, cx: float, reach_y: float, reach_x: float, height: int, width: int):
    """Bounding box of an axis-aligned ellipse on the image and its normalised coordinates.

    Returns (window, yy, xx) with yy, xx the offsets from the centre divided by the reaches
    (so yy**2 + xx**2 <= 1 inside), or None when the ellipse lies off the image.  Drops are
    drawn over their boxes only, never per pixel of the whole image.
    """
    top, bottom = max(int(cy - reach_y), 0), min(int(np.ceil(cy + reach_y)) + 1, height)
    left, right = max(int(cx - reach_x), 0), min(int(np.ceil(cx + reach_x)) + 1, width)
    if top >= bottom or left >= right:
        return None
    yy = (np.arange(top, bottom, dtype=np.float32)[:, None] - cy) / reach_y
    xx = (np.arange(left, right, dtype=np.float32)[None, :] - cx) / reach_x
    return (slice(top, bottom), slice(left, right)), yy, xx
