"""Held-out snow (RSVD-like), rendered the ImageNet-C way rather than by particle masks.

Following Hendrycks & Dietterich (2019): a Gaussian noise layer is zoomed up into blobs,
thresholded into flakes, smeared by a straight motion kernel (kornia's motion_blur), and
added twice (the second copy rotated by 180 degrees); the image is first washed towards a
brightened grey copy of itself (snow light).  Severity lowers the threshold (more flakes)
and strengthens the wash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kornia
import numpy as np
import torch
from scipy.ndimage import zoom

from gendeg.degradations.common import check_input, finish, luminance, merged_config, uniform

DEFAULTS: dict[str, Any] = {
    "noise_mean": 0.1,
    "noise_std": 0.3,
    "zoom": [1.5, 3.0],  # blob size of the noise layer (ImageNet-C: 2 .. 4.5 at 224 px)
    "threshold": [0.9, 0.45],  # flake threshold at severity 0 .. 1 (lower = more snow)
    "motion_length": [0.06, 0.16],  # fraction of the shorter side
    "angle": [-135.0, -45.0],  # degrees, as in ImageNet-C
    "flake_gain": 3.0,  # ImageNet-C's wand motion blur keeps flakes bright; kornia's unit-sum kernel dims them
    "wash": 0.35,  # 1 - c6 at severity 1: how far the image moves towards the bright grey copy
}


def apply(clean: np.ndarray, rng: np.random.Generator, severity: float, depth: np.ndarray | None = None,
          config: Mapping[str, Any] | None = None) -> np.ndarray:
    cfg = merged_config(DEFAULTS, config, "ood_snow")
    clean = check_input(clean, severity, "ood_snow")
    height, width, _ = clean.shape
    factor = uniform(rng, cfg["zoom"])
    small = (int(np.ceil(height / factor)) + 1, int(np.ceil(width / factor)) + 1)
    layer = rng.normal(cfg["noise_mean"], cfg["noise_std"], size=small)
    layer = zoom(layer, factor, order=1)[:height, :width]
    length = int(round(uniform(rng, cfg["motion_length"]) * min(height, width))) // 2 * 2 + 3
    angle = float(uniform(rng, cfg["angle"]))

    start, end = cfg["threshold"]
    threshold = start + (end - start) * severity
    flakes = np.where(layer > threshold, layer, 0.0).astype(np.float32)
    flakes_t = torch.from_numpy(np.ascontiguousarray(flakes))[None, None]
    smeared = kornia.filters.motion_blur(flakes_t, length, angle, 0.0, border_type="reflect")[0, 0].numpy()
    smeared = smeared * cfg["flake_gain"]

    wash = cfg["wash"] * severity
    grey = luminance(clean)[..., None] * 1.5 + 0.5
    washed = (1.0 - wash) * clean + wash * np.maximum(clean, grey)
    snow = smeared[..., None] + np.rot90(smeared, 2)[..., None]
    return finish(washed + snow)
