"""Camera-shake motion blur from random trajectories (Boracchi & Foi 2012), as in REDS/RealBlur.

The camera path is a random walk whose velocity has inertia (a first-order recursive
filter over random accelerations) plus rare impulsive jerks, so kernels curve and kink
instead of being straight lines.  The path is scaled so its extent is severity x
`length_max` x the shorter side, rasterised with bilinear splatting into a kernel that
sums to 1, and convolved with the image.  `noise` > 0 adds the mild sensor noise of real
captures (RealBlur); it is drawn up front and so does not change with severity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.signal import lfilter

from gendeg.degradations.common import check_input, convolve, finish, merged_config, splat, uniform

DEFAULTS: dict[str, Any] = {
    "length_max": 0.5,  # trajectory extent at severity 1, fraction of the shorter side
    "n_steps": 96,  # samples along the exposure
    "inertia": [0.6, 0.95],  # how strongly velocity persists (higher = smoother paths)
    "jerk_probability": 0.03,  # chance per step of an impulsive shake
    "jerk_strength": 4.0,  # size of a shake relative to an ordinary acceleration
    "noise": 0.0,  # std of additive Gaussian sensor noise on the blurred image
}


def trajectory_kernel(rng: np.random.Generator, extent: float, cfg: Mapping[str, Any]) -> np.ndarray:
    """A blur kernel (sum 1) from a random camera path whose largest extent is `extent` pixels."""
    steps = int(cfg["n_steps"])
    inertia = uniform(rng, cfg["inertia"])
    accelerations = rng.standard_normal((steps, 2))
    jerks = rng.random(steps) < cfg["jerk_probability"]
    accelerations[jerks] *= cfg["jerk_strength"]
    drift = rng.standard_normal(2)
    # AR(1) velocity with unit stationary variance around a drift: paths curve and wander.
    velocity = drift + lfilter([np.sqrt(1.0 - inertia ** 2)], [1.0, -inertia], accelerations, axis=0)
    path = np.cumsum(velocity, axis=0)
    path -= path.mean(axis=0)
    span = float(np.abs(path).max()) * 2.0
    path *= extent / max(span, 1e-9)
    size = int(np.ceil(extent)) // 2 * 2 + 3
    kernel = splat(path, np.ones(steps), size)
    return (kernel / kernel.sum()).astype(np.float32)


def apply(clean: np.ndarray, rng: np.random.Generator, severity: float, depth: np.ndarray | None = None,
          config: Mapping[str, Any] | None = None) -> np.ndarray:
    cfg = merged_config(DEFAULTS, config, "motion_blur")
    clean = check_input(clean, severity, "motion_blur")
    noise = rng.standard_normal(clean.shape).astype(np.float32) * cfg["noise"]
    kernel = trajectory_kernel(rng, severity * cfg["length_max"] * min(clean.shape[:2]), cfg)
    return finish(convolve(clean, kernel) + noise)
