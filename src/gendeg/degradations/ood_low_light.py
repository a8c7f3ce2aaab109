"""Held-out low light: tone and noise models of a different kind from the training camera model.

"colour_cast" (LOLv1-like): darkening applied in display space through a shadow-crushing
power curve, a per-channel colour cast, heteroscedastic Gaussian noise (variance a I + b,
no Poisson counting) and coarse quantisation of the dark signal (banding).

"crf" (SICE-like): under-exposure by whole EV stops through a sigmoid-shaped camera
response curve (not a gamma), plus lens vignetting and a little Gaussian noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gendeg.degradations.common import check_input, finish, merged_config, uniform

DEFAULTS: dict[str, Any] = {
    "variant": "colour_cast",  # or "crf"
    "exposure_min": 0.05,  # colour_cast: display-space gain at severity 1
    "shadow_power": [1.0, 1.6],  # colour_cast: extra power on the darkened image
    "cast": 0.2,  # colour_cast: per-channel gain spread
    "noise_a": [0.0005, 0.004],  # colour_cast: signal-dependent noise variance factor
    "noise_b": [0.00001, 0.0001],  # colour_cast: signal-independent noise variance
    "levels": [24, 64],  # colour_cast: quantisation levels over [0, 1] in the dark image
    "ev_max": 5.0,  # crf: stops of under-exposure at severity 1
    "crf_shape": [1.5, 3.0],  # crf: steepness of the sigmoid response
    "vignetting": [0.1, 0.4],  # crf: light lost in the corners
    "noise": 0.01,  # crf: Gaussian noise std
}


def _sigmoid_crf(exposure: np.ndarray, shape: float) -> np.ndarray:
    """A normalised sigmoid response f(E) = E^s / (E^s + (1 - E)^s) mapping [0, 1] to [0, 1]."""
    e = np.clip(exposure, 0.0, 1.0)
    return e ** shape / (e ** shape + (1.0 - e) ** shape + 1e-12)


def _inverse_sigmoid_crf(image: np.ndarray, shape: float) -> np.ndarray:
    i = np.clip(image, 1e-6, 1.0 - 1e-6)
    ratio = (i / (1.0 - i)) ** (1.0 / shape)
    return ratio / (1.0 + ratio)


def apply(clean: np.ndarray, rng: np.random.Generator, severity: float, depth: np.ndarray | None = None,
          config: Mapping[str, Any] | None = None) -> np.ndarray:
    cfg = merged_config(DEFAULTS, config, "ood_low_light")
    clean = check_input(clean, severity, "ood_low_light")
    height, width, _ = clean.shape
    noise = rng.standard_normal(clean.shape).astype(np.float32)
    if cfg["variant"] == "colour_cast":
        power = uniform(rng, cfg["shadow_power"])
        cast_direction = rng.uniform(-1, 1, size=3)
        a, b = uniform(rng, cfg["noise_a"]), uniform(rng, cfg["noise_b"])
        levels = int(rng.integers(cfg["levels"][0], cfg["levels"][1] + 1))
        gain = cfg["exposure_min"] ** severity
        cast = 1.0 + cast_direction * cfg["cast"] * severity
        dark = np.clip(gain * cast * clean, 0, 1) ** (1.0 + (power - 1.0) * severity)
        noisy = dark + np.sqrt(a * dark + b) * noise * severity
        quantised = np.round(np.clip(noisy, 0, 1) * levels) / levels
        return finish(dark + (quantised - dark) * severity)
    if cfg["variant"] == "crf":
        shape = uniform(rng, cfg["crf_shape"])
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        r2 = ((y / max(height - 1, 1) - 0.5) ** 2 + (x / max(width - 1, 1) - 0.5) ** 2) / 0.5
        vignette = (1.0 - uniform(rng, cfg["vignetting"]) * severity * r2)[..., None]
        exposure = _inverse_sigmoid_crf(clean, shape) * 2.0 ** (-cfg["ev_max"] * severity) * vignette
        return finish(_sigmoid_crf(exposure, shape) + cfg["noise"] * severity * noise)
    raise ValueError(f"ood_low_light: variant must be 'colour_cast' or 'crf', got {cfg['variant']!r}")
