"""Intensity calibration: which μ to ask GenDeg for, so that it realises the μ a sample requests.

A trained GenDeg can over- or under-shoot a degradation consistently (on the default run,
realised / requested μ was 1.41 for raindrop and 1.15 for snow), while still following the
request monotonically.  Before a synthesis job generates, it sweeps the conditioning μ over
a grid on a few of its own clean images, measures the mean realised μ at each level, and
inverts that curve: a request r is sent as the conditioning c whose realised μ is r.  σ is
scaled by the same factor c / r.  Where the curve hardly rises (the model ignores μ), no
inverse exists and the map stays the identity; the job's summary says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The realised μ must rise by at least this share of the conditioning grid's span for the
# curve to count as invertible (a flat curve would send every request to a grid end).
MIN_RELATIVE_RISE = 0.25


def conditioning_grid(requested_mu, levels: int, low_factor: float = 0.5, high_factor: float = 1.5) -> np.ndarray:
    """`levels` conditioning values from `low_factor` x the 5th to `high_factor` x the 95th percentile of the requests."""
    requested = np.asarray(requested_mu, dtype=np.float64)
    if requested.size == 0 or not np.isfinite(requested).all() or (requested <= 0).any():
        raise ValueError("mu calibration: requested mu must be a non-empty set of finite values > 0")
    if levels < 2:
        raise ValueError(f"mu calibration: levels must be >= 2, got {levels}")
    low, high = np.percentile(requested, 5) * low_factor, np.percentile(requested, 95) * high_factor
    return np.linspace(low, high, levels)


@dataclass(frozen=True)
class MuCalibration:
    """The measured curve conditioning μ -> mean realised μ, and its inverse."""

    conditioning: np.ndarray  # the grid, increasing
    realised: np.ndarray  # mean realised μ per grid value, made non-decreasing
    invertible: bool

    def conditioning_for(self, requested_mu) -> np.ndarray:
        """The conditioning μ for each request (clipped to the grid; the request itself when not invertible)."""
        requested = np.asarray(requested_mu, dtype=np.float64)
        if not self.invertible:
            return requested.copy()
        # A tiny ramp makes plateaus strictly increasing, as np.interp needs.
        ramp = np.arange(len(self.realised)) * 1e-9
        return np.interp(requested, self.realised + ramp, self.conditioning)

    def to_dict(self) -> dict:
        return {"conditioning_mu": [float(v) for v in self.conditioning],
                "realised_mu": [float(v) for v in self.realised], "invertible": self.invertible}

    @classmethod
    def from_dict(cls, saved: dict) -> MuCalibration:
        return cls(np.array(saved["conditioning_mu"], dtype=np.float64), np.array(saved["realised_mu"], dtype=np.float64),
                   bool(saved["invertible"]))


def conditioning_for_requests(calibration: MuCalibration | None, requested_mu, requested_sigma) -> tuple[np.ndarray, np.ndarray]:
    """(μ, σ) to condition GenDeg on for each request: the requests themselves without a
    calibration, else μ through its inverse and σ scaled by the same factor."""
    mu = np.asarray(requested_mu, dtype=np.float64)
    sigma = np.asarray(requested_sigma, dtype=np.float64)
    if calibration is None:
        return mu.copy(), sigma.copy()
    conditioning = calibration.conditioning_for(mu)
    return conditioning, sigma * conditioning / mu


def fit_mu_calibration(conditioning, realised_per_level) -> MuCalibration:
    """Fit from the grid and the realised μ of each sample at each level (levels x samples)."""
    grid = np.asarray(conditioning, dtype=np.float64)
    realised = np.asarray(realised_per_level, dtype=np.float64)
    if realised.ndim != 2 or realised.shape[0] != grid.size:
        raise ValueError(f"mu calibration: need one row of realised mu per grid level ({grid.size}), "
                         f"got shape {realised.shape}")
    if np.any(np.diff(grid) <= 0):
        raise ValueError("mu calibration: the conditioning grid must be increasing")
    curve = np.maximum.accumulate(realised.mean(axis=1))
    invertible = bool(curve[-1] - curve[0] >= MIN_RELATIVE_RISE * (grid[-1] - grid[0]))
    return MuCalibration(grid, curve, invertible)
