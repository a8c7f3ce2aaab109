"""Raindrops stuck on the lens or glass, as the Raindrop (Qian et al.) and RainDS sets show them.

Each drop is an ellipse that acts as a tiny fish-eye lens: inside it the background appears
flipped and shrunk (we sample it at c - zoom * (p - c) around the drop centre c), blurred
because the drop is out of focus, and darkened towards the rim.  The background itself is
slightly defocused (the camera focuses on the glass).  Severity scales drop radii and the
background defocus, so drops grow smoothly instead of popping in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.ndimage import map_coordinates

from gendeg.degradations.common import blur, check_input, ellipse_window, finish, merged_config, uniform

DEFAULTS: dict[str, Any] = {
    "drops_per_area": [8.0, 20.0],  # drops per (64 px)^2 of image
    "radius": [0.05, 0.3],  # drop radius at severity 1, fraction of the shorter side
    "aspect": [0.75, 1.33],  # ellipse axis ratio
    "zoom": [1.5, 3.0],  # lens magnification of the flipped view inside a drop
    "drop_blur": 0.015,  # blur of the view inside drops, fraction of the shorter side
    "rim_darkening": [0.1, 0.4],  # how much darker the drop rim is than its centre
    "background_defocus": 0.012,  # background blur at severity 1, fraction of the shorter side
}


def apply(clean: np.ndarray, rng: np.random.Generator, severity: float, depth: np.ndarray | None = None,
          config: Mapping[str, Any] | None = None) -> np.ndarray:
    cfg = merged_config(DEFAULTS, config, "raindrop")
    clean = check_input(clean, severity, "raindrop")
    height, width, _ = clean.shape
    short = min(height, width)
    count = max(1, int(round(uniform(rng, cfg["drops_per_area"]) * height * width / 64 ** 2)))
    centres = rng.uniform([0, 0], [height, width], size=(count, 2))
    radii = uniform(rng, cfg["radius"], size=count) * short
    aspects = uniform(rng, cfg["aspect"], size=count)
    zooms = uniform(rng, cfg["zoom"], size=count)
    rims = uniform(rng, cfg["rim_darkening"], size=count)

    radii = np.maximum(radii * severity, 1e-3)
    # Each pixel belongs to the drop whose normalised radius rho is smallest there; drops
    # are visited one by one over their bounding boxes only (cheap, and never per pixel).
    rho_min = np.full((height, width), np.inf, np.float32)
    nearest = np.zeros((height, width), np.int64)
    for i, ((cy, cx), radius, aspect) in enumerate(zip(centres, radii, aspects, strict=False)):
        reach_y, reach_x = radius * aspect, radius / aspect
        box = ellipse_window(cy, cx, reach_y, reach_x, height, width)
        if box is None:
            continue
        window, yy, xx = box
        rho = np.sqrt(yy ** 2 + xx ** 2)
        closer = rho < rho_min[window]
        rho_min[window] = np.where(closer, rho, rho_min[window])
        nearest[window] = np.where(closer, i, nearest[window])
    rho_min = np.minimum(rho_min, 2.0)
    alpha = np.clip((1.0 - rho_min) / 0.15, 0.0, 1.0)[..., None]  # soft drop edge

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    zoom = zooms[nearest]
    source_y = centres[nearest, 0] - (y - centres[nearest, 0]) * zoom
    source_x = centres[nearest, 1] - (x - centres[nearest, 1]) * zoom
    view = np.stack([map_coordinates(clean[..., c], [source_y, source_x], order=1, mode="mirror")
                     for c in range(3)], axis=-1)
    view = blur(view, cfg["drop_blur"] * short) * (1.0 - rims[nearest] * rho_min.clip(0, 1) ** 3)[..., None]
    background = blur(clean, cfg["background_defocus"] * short * severity)
    return finish(background * (1.0 - alpha) + view * alpha)
