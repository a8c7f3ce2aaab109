"""Falling snow, as Snow100K and CSD are made: particle masks of several sizes, alpha-blended.

Each size class is a sparse impulse field convolved with a Gaussian flake (radius from the
class) and a short motion streak (flakes fall during the exposure); the masks add up to an
alpha map that blends a near-white snow colour over the image.  Severity scales the flake
density.  With `veil_beta_max` > 0 the snow also carries a veiling haze (CSD: snow + haze).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from gendeg.degradations.common import check_input, convolve, finish, line_kernel, merged_config, uniform

DEFAULTS: dict[str, Any] = {
    "flake_radius": [0.006, 0.014, 0.03],  # Gaussian sigma per size class, fraction of the shorter side
    "density_max": [0.15, 0.04, 0.01],  # fraction of pixels seeding a flake at severity 1, per class
    "motion_length": [0.0, 0.08],  # fall streak length, fraction of the shorter side
    "angle": [-30.0, 30.0],  # fall direction, degrees from vertical
    "opacity": [0.7, 1.0],  # flake opacity
    "snow_colour": [0.9, 1.0],
    "veil_beta_max": 0.0,  # veiling haze at severity 1 (0 = none)
    "airlight": [0.75, 0.95],
}


def apply(clean: np.ndarray, rng: np.random.Generator, severity: float, depth: np.ndarray | None = None,
          config: Mapping[str, Any] | None = None) -> np.ndarray:
    cfg = merged_config(DEFAULTS, config, "snow")
    if len(cfg["flake_radius"]) != len(cfg["density_max"]):
        raise ValueError(f"snow: flake_radius {cfg['flake_radius']} and density_max {cfg['density_max']} "
                         "must list one value per size class")
    clean = check_input(clean, severity, "snow")
    height, width, _ = clean.shape
    short = min(height, width)
    fall = line_kernel(uniform(rng, cfg["motion_length"]) * short, uniform(rng, cfg["angle"]))
    alpha = np.zeros((height, width), np.float32)
    for radius, density in zip(cfg["flake_radius"], cfg["density_max"], strict=False):
        seeds = rng.random((height, width))
        opacity = uniform(rng, cfg["opacity"], size=(height, width))
        impulses = np.where(seeds < density * severity, opacity, 0.0)
        sigma = max(radius * short, 0.4)
        # Scale so a lone flake peaks at its opacity whatever its size.
        flakes = gaussian_filter(impulses, sigma, mode="wrap") * (2 * np.pi * sigma ** 2)
        alpha += convolve(flakes.astype(np.float32), fall)  # the fall smears each flake's light
    alpha = np.clip(alpha, 0.0, 1.0)[..., None]
    colour = uniform(rng, cfg["snow_colour"])
    airlight = uniform(rng, cfg["airlight"])
    image = clean
    if cfg["veil_beta_max"] > 0:
        transmission = np.exp(-cfg["veil_beta_max"] * severity)
        image = image * transmission + airlight * (1.0 - transmission)
    return finish(image * (1.0 - alpha) + colour * alpha)
