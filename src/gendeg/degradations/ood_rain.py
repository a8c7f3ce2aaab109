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
    # Streaks are semi-transparent layers: composite them as 1 - alpha = prod_i (1 - a_i),
    # accumulated in log space; each streak is drawn over its own thin bounding box only.
    log_clear = np.zeros((height, width), np.float32)
    for (cy, cx), angle, length, width_px, strength in zip(centres, angles, lengths, widths, intensity * severity, strict=False):
        reach_y = abs(np.cos(angle)) * length / 2 + 3 * width_px
        reach_x = abs(np.sin(angle)) * length / 2 + 3 * width_px
        top, bottom = max(int(cy - reach_y), 0), min(int(np.ceil(cy + reach_y)) + 1, height)
        left, right = max(int(cx - reach_x), 0), min(int(np.ceil(cx + reach_x)) + 1, width)
        if top >= bottom or left >= right:
            continue
        qy = np.arange(top, bottom, dtype=np.float32)[:, None] - cy
        qx = np.arange(left, right, dtype=np.float32)[None, :] - cx
        along = qy * np.cos(angle) + qx * np.sin(angle)
        across = -qy * np.sin(angle) + qx * np.cos(angle)
        taper = np.clip((length / 2 - np.abs(along)) / (0.25 * length + 1e-6), 0.0, 1.0)
        opacity = np.clip(strength * taper * np.exp(-0.5 * (across / width_px) ** 2), 0.0, 0.999)
        log_clear[top:bottom, left:right] += np.log1p(-opacity)
    alpha = (1.0 - np.exp(log_clear))[..., None]

    misty = clean + cfg["mist"] * severity * (1.0 - clean)
    streak_colour = blur(clean, 0.1 * short) * (1.0 - whiteness) + whiteness
    return finish(misty * (1.0 - alpha) + streak_colour * alpha)
