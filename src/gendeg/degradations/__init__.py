"""Physics-based degradation generators.

Training generators (one per degradation) stand in for the formula-made existing datasets;
the `ood_*` generators differ from them in *kind* (another depth cue, streak renderer, noise
model, ...) and are used only by the held-out OOD sets.

Every generator is `apply(clean, rng, severity, depth=None, config=None) -> degraded`
(float32 HxWx3 in [0, 1]; severity in [0, 1]; all randomness from the numpy Generator).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gendeg import DEGRADATIONS
from gendeg.degradations import (
    haze,
    low_light,
    motion_blur,
    ood_blur,
    ood_haze,
    ood_low_light,
    ood_rain,
    ood_raindrop,
    ood_snow,
    rain,
    raindrop,
    snow,
)

Generator = Callable[..., np.ndarray]

# name (the module's) -> (apply function, its DEFAULTS).  A training generator is named after its
# degradation (gendeg.DEGRADATIONS, the one list of them); an OOD generator starts with "ood_".
GENERATORS: dict[str, tuple[Generator, Mapping[str, Any]]] = {
    module.__name__.rsplit(".", 1)[1]: (module.apply, module.DEFAULTS)
    for module in (haze, rain, snow, motion_blur, low_light, raindrop,
                   ood_haze, ood_rain, ood_snow, ood_blur, ood_low_light, ood_raindrop)
}
TRAINING_GENERATORS = DEGRADATIONS
OOD_GENERATORS = tuple(name for name in GENERATORS if name.startswith("ood_"))


def generate(name: str, clean: np.ndarray, seed: int, severity: float, depth: np.ndarray | None = None,
             config: Mapping[str, Any] | None = None) -> np.ndarray:
    """Run generator `name` with a fresh Generator from `seed`: same seed, same random draws."""
    if name not in GENERATORS:
        raise KeyError(f"unknown degradation generator {name!r}; known: {sorted(GENERATORS)}")
    apply, _ = GENERATORS[name]
    return apply(clean, np.random.default_rng(seed), severity, depth=depth, config=config)
