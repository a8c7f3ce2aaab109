"""Haze by the atmospheric scattering model (Koschmieder), as RESIDE and its kin are made.

    I = J t + A (1 - t),    t = exp(-beta d)

J is the clean image, d the scene depth (from the scene's depth map, else a ground-plane
ramp), A a near-grey airlight and beta the scattering coefficient, which severity scales
from 0 to `beta_max`.  The "nonhomogeneous" variant multiplies beta by a smooth random
field, giving the patchy haze of NH-HAZE and DenseHaze.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gendeg.degradations.common import check_input, finish, merged_config, smooth_field, uniform

DEFAULTS: dict[str, Any] = {
    "variant": "homogeneous",  # or "nonhomogeneous": beta varies smoothly over the image
    "beta_max": 4.0,  # scattering coefficient at severity 1 (per unit depth)
    "depth_near": [0.2, 0.4],  # depth of the nearest pixel; the farthest is 1
    "airlight": [0.75, 0.98],  # grey level of the airlight A
    "airlight_tint": 0.03,  # per-channel jitter of A (real airlight is rarely exactly grey)
    "patchiness": 0.8,  # nonhomogeneous only: beta ranges over beta * [1 - p, 1 + p]
    "patch_scale": 0.15,  # nonhomogeneous only: size of the haze patches (fraction of the image)
}


def apply(clean: np.ndarray, rng: np.random.Generator, severity: float, depth: np.ndarray | None = None,
          config: Mapping[str, Any] | None = None) -> np.ndarray:
    cfg = merged_config(DEFAULTS, config, "haze")
    if cfg["variant"] not in ("homogeneous", "nonhomogeneous"):
        raise ValueError(f"haze: variant must be 'homogeneous' or 'nonhomogeneous', got {cfg['variant']!r}")
    clean = check_input(clean, severity, "haze")
    height, width, _ = clean.shape
    if depth is None:
        depth = np.broadcast_to(np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None], (height, width))
    near = uniform(rng, cfg["depth_near"])
    distance = near + (1.0 - near) * np.asarray(depth, np.float32)
    airlight = uniform(rng, cfg["airlight"]) + rng.uniform(-1, 1, size=3) * cfg["airlight_tint"]
    beta = np.full((height, width), cfg["beta_max"] * severity, np.float32)
    if cfg["variant"] == "nonhomogeneous":
        field = smooth_field((height, width), rng, cfg["patch_scale"])
        beta = beta * (1.0 - cfg["patchiness"] + 2.0 * cfg["patchiness"] * field)
    transmission = np.exp(-beta * distance)[..., None]
    return finish(clean * transmission + np.clip(airlight, 0, 1).astype(np.float32) * (1.0 - transmission))
