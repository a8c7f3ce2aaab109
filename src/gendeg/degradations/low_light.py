"""Low light by a simple camera model, as LOL and SID pairs differ from their references.

    linear = J ** gamma                              (undo the display gamma)
    photons ~ Poisson(full_well * exposure * linear)  (shot noise)
    raw = photons / full_well + read_noise * N(0, 1)  (read noise)
    I = clip(raw) ** (1 / gamma)                      (re-apply the gamma)

Severity lowers the exposure geometrically from 1 to `exposure_min`; fewer photons per
pixel make the shot noise relatively stronger, as in real dark captures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gendeg.degradations.common import check_input, finish, merged_config, uniform

DEFAULTS: dict[str, Any] = {
    "exposure_min": 0.01,  # exposure factor at severity 1 (1 at severity 0)
    "gamma": 2.2,
    "full_well": [300.0, 3000.0],  # photons for a white pixel at full exposure (fewer = noisier)
    "read_noise": [0.0005, 0.003],  # std of read noise, linear units
}


def apply(clean: np.ndarray, rng: np.random.Generator, severity: float, depth: np.ndarray | None = None,
          config: Mapping[str, Any] | None = None) -> np.ndarray:
    cfg = merged_config(DEFAULTS, config, "low_light")
    if not 0.0 < cfg["exposure_min"] <= 1.0:
        raise ValueError(f"low_light: exposure_min must lie in (0, 1], got {cfg['exposure_min']}")
    clean = check_input(clean, severity, "low_light")
    full_well = uniform(rng, cfg["full_well"])
    read_noise = uniform(rng, cfg["read_noise"])
    read = rng.standard_normal(clean.shape).astype(np.float32)
    exposure = cfg["exposure_min"] ** severity
    linear = np.power(clean, cfg["gamma"])
    photons = rng.poisson(full_well * exposure * linear).astype(np.float32)
    raw = photons / full_well + read_noise * read
    return finish(np.power(np.clip(raw, 0.0, 1.0), 1.0 / cfg["gamma"]))
