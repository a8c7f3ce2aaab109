"""The named stand-in datasets and OOD sets of the built-in default, and how their intensity is set.

Stand-ins imitate the real paired datasets GenDeg was trained on (reference/README.md):
each uses a training generator with its own settings and its own few scenes.  Their
degradation intensities follow the real ones: every pair draws a target mu from the real
dataset's released mu histogram, and the generator's severity is found by root finding so
the pair has that mu.  That matches the mu histograms by construction instead of by
hand-tuned parameter ranges, and stays matched when a generator changes.  sigma is not
targeted; each stand-in's generator settings were chosen so its sigma histogram lands near
the real one too (benchmarks/calibration.py measures both).

OOD sets imitate the paper's nine OOD benchmarks.  They use the `ood_*` generators, which
differ in kind from the training ones, on held-out scenes only.  No intensity statistics
were released for them, so their target mu is uniform over a plausible range.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import wasserstein_distance

from gendeg import REFERENCE_FOLDER
from gendeg.data.images import to_uint8
from gendeg.data.reference import released_stats_dir
from gendeg.intensity.definition import mu_sigma


@dataclass(frozen=True)
class PairSetSpec:
    """One named set of (clean, degraded) pairs: what it imitates and how it is generated."""

    name: str
    degradation: str
    imitates: str
    generator: str  # key of gendeg.degradations.GENERATORS
    generator_config: Mapping[str, Any] = field(default_factory=dict)
    n_scenes: int = 0  # stand-ins: how many scenes of their own (OOD sets share the held-out pool)
    reference: str | None = None  # real dataset whose released mu histogram gives the targets
    mu_range: tuple[float, float] | None = None  # otherwise: uniform target mu over this range


STANDINS: tuple[PairSetSpec, ...] = (
    PairSetSpec("RESIDE-like", "haze", "RESIDE", "haze", {"variant": "homogeneous"}, 2, "RESIDE"),
    PairSetSpec("NH-HAZE-like", "haze", "NH-HAZE", "haze",
                {"variant": "nonhomogeneous", "patchiness": 1.0, "patch_scale": 0.1, "depth_near": [0.0, 0.2]},
                1, "NH-HAZE"),
    PairSetSpec("DenseHaze-like", "haze", "DenseHaze", "haze",
                {"variant": "nonhomogeneous", "airlight": [0.85, 0.98], "patchiness": 1.0, "patch_scale": 0.1,
                 "depth_near": [0.0, 0.2]}, 1, "DenseHaze"),
    PairSetSpec("Rain13K-like", "rain", "Rain13K", "rain", {"brightness": [0.2, 0.6], "softness": 0.8}, 2, "Rain13K"),
    PairSetSpec("SPA-like", "rain", "SPAC", "rain",
                {"layers": 1, "length": [0.15, 0.4], "brightness": [0.2, 0.6], "softness": 0.8}, 1, "SPAC"),
    PairSetSpec("ORD-like", "rain", "ORD", "rain", {"haze_beta_max": 1.5, "density_max": 0.015}, 1, "ORD"),
    PairSetSpec("Snow100K-like", "snow", "Snow100k", "snow", {"opacity": [0.3, 0.7]}, 2, "Snow100k"),
    PairSetSpec("CSD-like", "snow", "CSD", "snow", {"veil_beta_max": 1.2}, 1, "CSD"),
    PairSetSpec("REDS-like", "motion_blur", "REDS", "motion_blur", {}, 2, "REDS"),
    PairSetSpec("RealBlur-like", "motion_blur", "RealBlur", "motion_blur", {"noise": 0.01, "inertia": [0.8, 0.98]},
                1, "RealBlur"),
    PairSetSpec("LOL-like", "low_light", "LOLv2", "low_light", {}, 2, "LOLv2"),
    PairSetSpec("SID-like", "low_light", "SID", "low_light",
                {"full_well": [100.0, 400.0], "read_noise": [0.002, 0.006]}, 1, "SID"),
    PairSetSpec("Raindrop-like", "raindrop", "Raindrop", "raindrop",
                {"radius": [0.1, 0.35], "zoom": [1.2, 2.0], "background_defocus": 0.03}, 2, "Raindrop"),
    PairSetSpec("RainDS-syn-drop-like", "raindrop", "RainDS (raindrop)", "raindrop",
                {"drops_per_area": [3.0, 8.0], "background_defocus": 0.0, "rim_darkening": [0.3, 0.6]}, 1, "RainDS"),
)

OOD_SETS: tuple[PairSetSpec, ...] = (
    PairSetSpec("REVIDE-like", "haze", "REVIDE", "ood_haze",
                {"radial_weight": [0.6, 0.9], "airlight_hues": [[1.0, 0.88, 0.7], [1.0, 0.95, 0.8]]},
                mu_range=(0.08, 0.22)),
    PairSetSpec("O-HAZE-like", "haze", "O-HAZE", "ood_haze",
                {"radial_weight": [0.1, 0.4], "airlight_hues": [[0.8, 0.9, 1.0], [0.95, 0.95, 0.9]],
                 "glow": [0.6, 0.9]},
                mu_range=(0.12, 0.26)),
    PairSetSpec("RainDS-real-rain-like", "rain", "RainDS (real rain)", "ood_rain", {}, mu_range=(0.02, 0.10)),
    PairSetSpec("LHP-like", "rain", "LHP", "ood_rain",
                {"streaks_per_area": [15.0, 40.0], "turbulence": 12.0, "whiteness": [0.2, 0.5]},
                mu_range=(0.01, 0.06)),
    PairSetSpec("RSVD-like", "snow", "RSVD", "ood_snow", {}, mu_range=(0.04, 0.16)),
    PairSetSpec("GoPro-like", "motion_blur", "GoPro", "ood_blur", {}, mu_range=(0.015, 0.06)),
    PairSetSpec("LOLv1-like", "low_light", "LOLv1", "ood_low_light", {"variant": "colour_cast"},
                mu_range=(0.12, 0.28)),
    PairSetSpec("SICE-like", "low_light", "SICE", "ood_low_light", {"variant": "crf"}, mu_range=(0.08, 0.25)),
    PairSetSpec("RainDS-real-drop-like", "raindrop", "RainDS (real raindrop)", "ood_raindrop", {},
                mu_range=(0.015, 0.06)),
)

ALL_SETS: dict[str, PairSetSpec] = {spec.name: spec for spec in STANDINS + OOD_SETS}


def mu_sigma_as_written(clean: np.ndarray, degraded: np.ndarray) -> tuple[float, float]:
    """The paper's (mu, sigma) of a pair as a reader of its written 8-bit PNGs will measure it.

    gendeg.intensity.definition.mu_sigma on both images quantised to 8 bits first, so the manifest's
    values equal what any later stage recomputes from the files.
    """
    if clean.shape != degraded.shape:
        raise ValueError(f"mu_sigma_as_written: clean {clean.shape} and degraded {degraded.shape} differ in shape")
    return mu_sigma(to_uint8(clean) / np.float32(255.0), to_uint8(degraded) / np.float32(255.0))


@dataclass(frozen=True)
class Histogram:
    """A released 128-bin histogram of mu or sigma for one real dataset."""

    low: np.ndarray
    high: np.ndarray
    counts: np.ndarray

    @property
    def centres(self) -> np.ndarray:
        return (self.low + self.high) / 2.0

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray | float:
        """Draw values: a bin by its count, then uniformly inside the bin."""
        bins = rng.choice(len(self.counts), size=size, p=self.counts / self.counts.sum())
        return rng.uniform(self.low[bins], self.high[bins])

    def wasserstein(self, values: np.ndarray) -> float:
        """1-D Wasserstein distance between samples and this histogram (bin centres, count weights)."""
        return float(wasserstein_distance(values, self.centres, v_weights=self.counts))


@lru_cache(maxsize=64)
def reference_histogram(reference_dir: str | None, degradation: str, dataset: str, kind: str = "mu") -> Histogram:
    """Load `<reference_dir>/<degradation folder>/<Mu|Sigma>_<dataset>.json` (None: the project's copy)."""
    if kind not in ("mu", "sigma"):
        raise ValueError(f"kind must be 'mu' or 'sigma', got {kind!r}")
    if degradation not in REFERENCE_FOLDER:
        raise KeyError(f"unknown degradation {degradation!r}; known: {sorted(REFERENCE_FOLDER)}")
    label = "Mu" if kind == "mu" else "Sigma"
    if reference_dir is None:
        reference_dir = str(released_stats_dir())
    path = Path(reference_dir) / REFERENCE_FOLDER[degradation] / f"{label}_{dataset}.json"
    if not path.exists():
        raise FileNotFoundError(f"reference histogram {path} not found (is reference_dir {reference_dir!r} right?)")
    rows = json.loads(path.read_text())
    try:
        low = np.array([row[f"{label} min"] for row in rows], np.float64)
        high = np.array([row[f"{label} max"] for row in rows], np.float64)
        counts = np.array([row["Count"] for row in rows], np.float64)
    except KeyError as error:
        raise ValueError(f"{path}: a row lacks key {error}") from error
    if counts.sum() <= 0:
        raise ValueError(f"{path}: all counts are zero")
    return Histogram(low, high, counts)


def target_mu(spec: PairSetSpec, reference_dir: str | Path | None, rng: np.random.Generator) -> float:
    """The mu one pair of this set should have."""
    if spec.reference is not None:
        folder = None if reference_dir is None else str(reference_dir)
        return float(reference_histogram(folder, spec.degradation, spec.reference, "mu").sample(rng))
    if spec.mu_range is None:
        raise ValueError(f"{spec.name}: needs either a reference dataset or a mu_range")
    return float(rng.uniform(*spec.mu_range))


def degrade_to_mu(degrade: Callable[[float], np.ndarray], clean: np.ndarray, target: float,
                  tolerance: float = 0.002, max_calls: int = 30) -> tuple[np.ndarray, float]:
    """Find a severity whose output has mean |clean - degraded| within `tolerance` of `target`.

    `degrade(severity)` must draw the same random numbers on every call (a fresh Generator
    from one seed), so mu grows smoothly with severity.  Targets outside what the image
    allows clip to severity 0 or 1.  The search is regula falsi with the Illinois fix,
    stopped on the mu error rather than on the severity interval (scipy's brentq only
    offers the latter), which usually needs 3-5 generator calls.  mu is measured at native
    resolution here (cheap); the builder records the official 256x256 value.
    """
    def excess(severity: float) -> tuple[float, np.ndarray]:
        output = degrade(severity)
        return float(np.abs(output - clean).mean()) - target, output

    low, (f_low, out_low) = 0.0, excess(0.0)
    if f_low >= 0:
        return out_low, 0.0
    high, (f_high, out_high) = 1.0, excess(1.0)
    if f_high <= 0:
        return out_high, 1.0
    best = (abs(f_high), out_high, high)
    side = 0
    for _ in range(max_calls - 2):
        severity = (low * f_high - high * f_low) / (f_high - f_low)
        value, output = excess(severity)
        if abs(value) < best[0]:
            best = (abs(value), output, severity)
        if abs(value) <= tolerance or high - low < 1e-6:
            break
        if value < 0:
            low, f_low = severity, value
            if side == -1:
                f_high /= 2.0  # Illinois: stop an endpoint from sticking
            side = -1
        else:
            high, f_high = severity, value
            if side == 1:
                f_low /= 2.0
            side = 1
    return best[1], float(best[2])
