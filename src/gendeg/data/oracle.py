"""The oracle: the built-in physics generator itself, applied where GenDeg was applied.

A restorer trained on oracle pairs (the same clean images and requested intensities as the
generated pairs, degraded by the true generator of the existing data) bounds what GenDeg
could give: how close does a learned degradation model get to the one that made the data?
"""

from __future__ import annotations

import numpy as np

from gendeg.data.standins import STANDINS, PairSetSpec, degrade_to_mu
from gendeg.degradations import generate


def oracle_spec(degradation: str, sampled_dataset: str) -> PairSetSpec:
    """The stand-in whose histogram the intensity came from, else the degradation's first stand-in."""
    candidates = [spec for spec in STANDINS if spec.degradation == degradation]
    if not candidates:
        raise KeyError(f"no built-in generator for degradation {degradation!r}")
    return next((spec for spec in candidates if spec.name == sampled_dataset), candidates[0])


def oracle_degrade(clean: np.ndarray, degradation: str, sampled_dataset: str, requested_mu: float,
                   seed: int) -> np.ndarray:
    """Degrade `clean` with the physics generator, its severity solved to hit `requested_mu`."""
    spec = oracle_spec(degradation, sampled_dataset)
    degraded, _ = degrade_to_mu(
        lambda severity: generate(spec.generator, clean, seed, severity, config=spec.generator_config),
        clean, float(requested_mu))
    return degraded
