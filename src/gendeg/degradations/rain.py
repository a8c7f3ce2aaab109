"""Rain streaks, as the synthetic sets of Rain13K (Rain100L/H, Rain800, ...) are made.

A streak layer is a sparse field of impulses (random positions and brightness) convolved
with an anti-aliased line kernel of random length and angle; one or two layers at slightly
different angles give the crossing streaks of heavy rain.  The layer is screen-blended
onto the image (light adds, it never darkens).  Severity scales the impulse density and
the streak opacity.  With `haze_beta_max` > 0 the rain also carries the veiling
"rain accumulation" of Outdoor-Rain (ORD): I = J t + A (1 - t) with t = exp(-beta).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gendeg.degradations.common import blur, check_input, convolve, finish, line_kernel, merged_config, uniform

DEFAULTS: dict[str, Any] = {
    "density_max": 0.03,  # fraction of pixels that seed a streak, at severity 1 (per layer)
    "layers": 2,  # streak layers, each with its own angle and length
    "length": [0.08, 0.3],  # streak length, fraction of the shorter side
    "angle": [-25.0, 25.0],  # degrees from vertical, shared by all layers ...
    "angle_spread": 8.0,  # ... plus a per-layer offset up to this many degrees
    "brightness": [0.4, 1.0],  # streak intensity per impulse
    "opacity": [0.5, 1.0],  # opacity of the layer, scaled up with severity towards its upper end
    "softness": 0.4,  # Gaussian blur of the layer, pixels (out-of-focus streaks)
    "haze_beta_max": 0.0,  # veiling rain accumulation at severity 1 (0 = none)
    "airlight": [0.7, 0.95],
}


def apply(clean: np.ndarray, rng: np.random.Generator, severity: float, depth: np.ndarray | None = None,
          config: Mapping[str, Any] | None = None) -> np.ndarray:
    cfg = merged_config(DEFAULTS, config, "rain")
    clean = check_input(clean, severity, "rain")
    height, width, _ = clean.shape
    short = min(height, width)
    base_angle = uniform(rng, cfg["angle"])
    layer = np.zeros((height, width), np.float32)
    for _ in range(int(cfg["layers"])):
        angle = base_angle + rng.uniform(-1, 1) * cfg["angle_spread"]
        length = uniform(rng, cfg["length"]) * short
        seeds = rng.random((height, width))
        brightness = uniform(rng, cfg["brightness"], size=(height, width)).astype(np.float32)
        impulses = np.where(seeds < cfg["density_max"] * severity, brightness, 0.0).astype(np.float32)
        layer += convolve(impulses, line_kernel(length, angle, peak_one=True))
    opacity_low, opacity_high = cfg["opacity"]
    opacity = opacity_low + (opacity_high - opacity_low) * severity
    streaks = np.clip(blur(layer, cfg["softness"]) * opacity, 0.0, 1.0)[..., None]
    airlight = uniform(rng, cfg["airlight"])
    image = clean
    if cfg["haze_beta_max"] > 0:
        transmission = np.exp(-cfg["haze_beta_max"] * severity)
        image = image * transmission + airlight * (1.0 - transmission)
    return finish(1.0 - (1.0 - image) * (1.0 - streaks))
