"""Held-out raindrops (RainDS-real-drop-like): height-field drops with gradient refraction.

The training renderer treats a drop as a fish-eye that shows a flipped, shrunk view.  Here
each drop is a spherical cap on the glass: its surface normal bends rays by an amount
proportional to the height gradient (no flip, a local swirl of the background), the drop is
strongly out of focus (the camera focuses on the scene, not the glass) and catches a small
specular highlight.  The background stays sharp.  Severity scales the drop radii.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.ndimage import map_coordinates

from gendeg.degradations.common import blur, check_input, ellipse_window, finish, merged_config, uniform

DEFAULTS: dict[str, Any] = {
    "drops_per_area": [6.0, 16.0],  # drops per (64 px)^2
    "radius": [0.08, 0.3],  # at severity 1, fraction of the shorter side
    "aspect": [0.6, 1.0],  # drops elongate downwards (height / width >= 1 after inversion)
    "refraction": [3.0, 8.0],  # ray shift per unit height gradient, in drop radii
    "focus_blur": 0.04,  # blur of everything seen through a drop, fraction of the shorter side
    "highlight": [0.2, 0.6],  # specular highlight strength
}


def apply(clean: np.ndarray, rng: np.random.Generator, severity: float, depth: np.ndarray | None = None,
          config: Mapping[str, Any] | None = None) -> np.ndarray:
    cfg = merged_config(DEFAULTS, config, "ood_raindrop")
    clean = check_input(clean, severity, "ood_raindrop")
    height, width, _ = clean.shape
    short = min(height, width)
    count = max(1, int(round(uniform(rng, cfg["drops_per_area"]) * height * width / 64 ** 2)))
    centres = rng.uniform([0, 0], [height, width], size=(count, 2))
    radii = np.maximum(uniform(rng, cfg["radius"], size=count) * short * severity, 1e-3)
    aspects = uniform(rng, cfg["aspect"], size=count)
    refraction = uniform(rng, cfg["refraction"], size=count)
    highlight = uniform(rng, cfg["highlight"])

    # Visit drops one by one over their bounding boxes; where drops overlap the taller cap wins.
    height_map = np.zeros((height, width), np.float32)
    uy = np.zeros((height, width), np.float32)  # normalised offsets from the winning drop's centre
    ux = np.zeros((height, width), np.float32)
    shift = np.zeros((height, width), np.float32)
    for (cy, cx), radius, aspect, bend in zip(centres, radii, aspects, refraction, strict=False):
        reach_y, reach_x = radius / aspect, radius  # taller than wide
        box = ellipse_window(cy, cx, reach_y, reach_x, height, width)
        if box is None:
            continue
        window, yy, xx = box
        cap = np.sqrt(np.clip(1.0 - yy ** 2 - xx ** 2, 0.0, 1.0))  # spherical-cap height
        taller = cap > height_map[window]
        height_map[window] = np.where(taller, cap, height_map[window])
        uy[window] = np.where(taller, yy, uy[window])
        ux[window] = np.where(taller, xx, ux[window])
        shift[window] = np.where(taller, bend * radius, shift[window])
    inside = height_map > 0
    # Gradient of the cap: d/du sqrt(1 - u^2 - v^2) = -u / h; clipped near the rim.
    safe = np.maximum(height_map, 0.15)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    source_y = y + np.where(inside, -uy / safe * shift * 0.25, 0.0)
    source_x = x + np.where(inside, -ux / safe * shift * 0.25, 0.0)
    seen = np.stack([map_coordinates(clean[..., c], [source_y, source_x], order=1, mode="mirror")
                     for c in range(3)], axis=-1)
    seen = blur(seen, cfg["focus_blur"] * short)
    spot = np.exp(-((uy + 0.4) ** 2 + (ux + 0.3) ** 2) / 0.02)
    seen = seen + highlight * (spot * inside)[..., None]
    alpha = blur(np.clip(height_map * 4.0, 0, 1).astype(np.float32), 0.6)[..., None]
    return finish(clean * (1.0 - alpha) + seen * alpha)
