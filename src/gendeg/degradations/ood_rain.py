"""Held-out rain (RainDS-real-rain-like, LHP-like): streaks drawn one by one as capsules.

The training renderer stamps one line kernel over an impulse field, so all streaks of a
layer share a length, angle and sharpness.  Here every streak is its own segment with a
Gaussian cross-section and tapered ends, at its own depth: near streaks are long, wide,
faint and soft, far ones short and thin, and each leans by its own turbulent angle.  Streak
colour is the blurred background lifted towards white (water refracts the surrounding
light) rather than pure white, and a faint mist lifts the background.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gendeg.degradations.common import blur, check_input, finish, merged_config, uniform

DEFAULTS: dict[str, Any] = {
    "streaks_per_area": [30.0, 80.0],  # streaks per (64 px)^2
    "length": [0.05, 0.35],  # far .. near streak length, fraction of the shorter side
    "width": [0.3, 1.6],  # far .. near Gaussian half-width, pixels at 64 px (scaled with size)
    "angle": [-15.0, 15.0],  # mean lean, degrees from vertical
    "turbulence": 6.0,  # per-streak angle std, degrees
    "intensity": [0.35, 0.9],  # far .. near opacity before severity scaling
    "whiteness": [0.4, 0.8],  # how far streak colour moves from background to white
    "mist": 0.12,  # mist lift at severity 1
}


def apply(clean: np.ndarray, rng: np.random.Generator, severity: float, depth: np.ndarray | None = None,
          config: Mapping[str, Any] | None = None) -> np.ndarray:
    cfg = merged_config(DEFAULTS, config, "ood_rain")
    clean = check_input(clean, severity, "ood_rain")
    height, width, _ = clean.shape
    short = min(height, width)
    count = max(1, int(round(uniform(rng, cfg["streaks_per_area"]) * height * width / 64 ** 2)))
    nearness = rng.random(count)  # 0 = far, 1 = near
    centres = rng.uniform([0, 0], [height, width], size=(count, 2))
    angles = np.deg2rad(uniform(rng, cfg["angle"]) + rng.standard_normal(count) * cfg["turbulence"])
    intensity = np.interp(nearness, [0, 1], cfg["intensity"]) * rng.uniform(0.6, 1.0, size=count)
    whiteness = uniform(rng, cfg["whiteness"])

    lengths = np.interp(nearness, [0, 1], cfg["length"]) * short * (0.4 + 0.6 * severity)
    widths = np.interp(nearness, [0, 1], cfg["width"]) * short / 64.0
    half = int(np.ceil(max(lengths.max() / 2, 1) + 3 * widths.max())) + 1
    offsets = np.arange(-half, half + 1, dtype=np.float32)
    oy, ox = np.meshgrid(offsets, offsets, indexing="ij")  # a patch around every streak centre
    base = np.round(centres).astype(np.int64)
    frac = (centres - base)[:, :, None, None]
    qy, qx = oy[None] - frac[:, 0], ox[None] - frac[:, 1]
    along = qy * np.cos(angles)[:, None, None] + qx * np.sin(angles)[:, None, None]
    across = -qy * np.sin(angles)[:, None, None] + qx * np.cos(angles)[:, None, None]
    taper = np.clip((lengths[:, None, None] / 2 - np.abs(along)) / (0.25 * lengths[:, None, None] + 1e-6), 0, 1)
    profile = np.exp(-0.5 * (across / widths[:, None, None]) ** 2) * taper * intensity[:, None, None]

    rows = (base[:, 0, None, None] + oy[None].astype(np.int64)) % height
    cols = (base[:, 1, None, None] + ox[None].astype(np.int64)) % width
    alpha = np.zeros((height, width), np.float64)
    np.maximum.at(alpha, (rows.ravel(), cols.ravel()), profile.ravel() * severity)
    alpha = np.clip(alpha, 0, 1).astype(np.float32)[..., None]

    misty = clean + cfg["mist"] * severity * (1.0 - clean)
    streak_colour = blur(clean, 0.1 * short) * (1.0 - whiteness) + whiteness
    return finish(misty * (1.0 - alpha) + streak_colour * alpha)
