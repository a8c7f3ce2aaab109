"""Held-out haze (REVIDE-like, O-HAZE-like): a scattering model of a different kind.

Differences from the training haze, each a real effect the training generator lacks:
- depth from a different cue: a radial falloff towards a random vanishing point blended
  with an image cue (bright, unsaturated regions read as far), not the scene's depth map;
- wavelength-dependent scattering: beta_c = beta (550 nm / lambda_c) ** q, so haze tints;
- coloured, non-uniform airlight: a hue away from grey that brightens along a random
  direction (a light source, a window);
- glow: light scattered towards the camera blurs the scene where transmission is low.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gendeg.degradations.common import blur, check_input, finish, luminance, merged_config, uniform

WAVELENGTHS_NM = np.array([650.0, 550.0, 450.0], np.float32)

DEFAULTS: dict[str, Any] = {
    "beta_max": 3.0,  # scattering coefficient of green light at severity 1
    "wavelength_exponent": [0.3, 1.2],  # q in beta_c ~ lambda_c ** -q (4 = Rayleigh, 0 = grey)
    "radial_weight": [0.3, 0.8],  # share of the vanishing-point cue in the depth (rest: image cue)
    "airlight_hues": [[1.0, 0.9, 0.75], [0.8, 0.9, 1.0], [0.95, 0.95, 0.85]],  # warm, cold, cream
    "airlight_level": [0.7, 0.95],
    "airlight_gradient": [0.1, 0.35],  # airlight brightness change across the frame
    "glow": [0.3, 0.8],  # blend towards the blurred image where transmission is low
    "glow_sigma": 0.05,  # glow blur, fraction of the shorter side
}


def apply(clean: np.ndarray, rng: np.random.Generator, severity: float, depth: np.ndarray | None = None,
          config: Mapping[str, Any] | None = None) -> np.ndarray:
    cfg = merged_config(DEFAULTS, config, "ood_haze")
    clean = check_input(clean, severity, "ood_haze")
    height, width, _ = clean.shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / max(height - 1, 1), x / max(width - 1, 1)

    vanishing = rng.uniform(0.2, 0.8, size=2)
    radial = 1.0 - np.hypot(y - vanishing[0], x - vanishing[1]) / np.sqrt(2.0)
    saturation = clean.max(axis=2) - clean.min(axis=2)
    content = blur(np.clip(luminance(clean) * (1.0 - saturation), 0, 1), 0.08 * min(height, width))
    weight = uniform(rng, cfg["radial_weight"])
    pseudo_depth = weight * radial + (1.0 - weight) * content / max(float(content.max()), 1e-6)

    exponent = uniform(rng, cfg["wavelength_exponent"])
    beta = cfg["beta_max"] * severity * (550.0 / WAVELENGTHS_NM) ** exponent
    hue = np.asarray(cfg["airlight_hues"], np.float32)[rng.integers(len(cfg["airlight_hues"]))]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (x - 0.5) + np.sin(angle) * (y - 0.5))[..., None]
    gradient = uniform(rng, cfg["airlight_gradient"])
    airlight = np.clip(uniform(rng, cfg["airlight_level"]) * hue * (1.0 + gradient * ramp), 0.0, 1.0)
    glow = uniform(rng, cfg["glow"])

    transmission = np.exp(-beta[None, None, :] * (0.2 + 0.8 * pseudo_depth)[..., None])
    hazy = clean * transmission + airlight * (1.0 - transmission)
    glow_weight = glow * (1.0 - transmission.mean(axis=2, keepdims=True))
    hazy = hazy * (1.0 - glow_weight) + blur(hazy, cfg["glow_sigma"] * min(height, width)) * glow_weight
    return finish(hazy)
