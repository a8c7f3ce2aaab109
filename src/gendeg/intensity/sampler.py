"""Sampling requested (mu, sigma) for synthesis the way the released synthesis code does, and
the distance used to check a sampler or a generator against a histogram.

One statement per setting: the down-weights of the released synthesis code (datasets whose
degradations are extreme, so they do not dominate the generated data) are params.yaml's
``synthesis.down_weights``, which the synthesize stage passes in; they have no copy here.  Outside
the pipeline take them from ``gendeg.pipeline.config.load_params()["synthesis"]["down_weights"]``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gendeg.intensity.definition import N_BINS, RANGES, bin_centre, bin_edges
from gendeg.intensity.stats import IntensityStats, IntensityStatsError


# --------------------------------------------------------------------------------------
# Sampling (mu, sigma) for synthesis


@dataclass(frozen=True)
class IntensityDraw:
    """One requested intensity, with the provenance columns of the GenDS manifest."""

    mu: float
    sigma: float
    random_sampled: bool
    sampled_dataset: str


def _inverse_cdf(counts: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise bin whose cumulative count interval holds u * total; empty bins are never hit."""
    cumulative = np.cumsum(counts, axis=-1)
    threshold = u * cumulative[..., -1]
    index = (cumulative <= threshold[..., None]).sum(axis=-1)
    # u * total can round up to total when u is within an ulp of 1: stay on the last non-empty bin.
    last_non_empty = counts.shape[-1] - 1 - np.argmax(np.flip(np.asarray(counts), axis=-1) > 0, axis=-1)
    return np.minimum(index, last_non_empty)


def dataset_key(name: str) -> str:
    """A dataset name as down-weights match it: "Dense-Haze", "dense_haze", "DenseHaze" alike."""
    return re.sub(r"[\s\-_]+", "", str(name)).lower()


def _capped(mu_counts: np.ndarray, cap: float, degradation: str, datasets: list[str]) -> np.ndarray:
    """Per-dataset mu histograms without the bins that lie wholly above `cap`."""
    counts = np.array(mu_counts, copy=True)
    counts[:, np.asarray(bin_edges("mu")[:-1]) >= cap] = 0
    empty = [d for d, row in zip(datasets, counts, strict=True) if row.sum() == 0]
    if empty:
        raise IntensityStatsError(f"{degradation}: datasets {empty} have no mu below synthesis.mu_cap={cap}; "
                                  f"nothing to sample under the cap (raise it, or null for none)")
    return counts


def _observed_range(counts: np.ndarray, kind: str) -> tuple[float, float]:
    nonzero = np.flatnonzero(counts)
    edges = bin_edges(kind)
    return edges[nonzero[0]], edges[nonzero[-1] + 1]


class IntensitySampler:
    """The released synthesis procedure for requested (mu, sigma).

    Per sample: pick a source dataset of the degradation (uniform x down-weight), draw a mu
    bin from its mu histogram and mu uniformly inside that bin, then a sigma bin from the
    pooled conditional p(sigma | mu bin) (the Mu-Sigma.json row) and sigma uniformly inside
    it.  If that row is empty (never in the released statistics, whose rows sum to the
    pooled mu counts), sigma falls back to the chosen dataset's own sigma histogram.

    Every `uniform_every`-th sample, counting from index 0 like the released code's
    counter, draws mu and sigma independently and uniformly between the lowest and highest
    non-empty bin edges of the chosen dataset (`random_sampled=True`; `sampled_dataset`
    still names the dataset whose range was used, as in the released manifest).
    `uniform_every=0` turns this off.

    `down_weights` (synthesis.down_weights; {} for none) maps a dataset name to its pick weight (a
    dataset's pick probability is uniform x weight, 1 for a dataset it does not name); names of other
    degradations' datasets are ignored, so one flat dict serves all degradations.  Names match datasets
    whatever their case, spaces, hyphens and underscores ("Dense-Haze" is DenseHaze); a name that
    matches no dataset of the statistics is warned about, naming both lists (a warning, not an error:
    the one dict serves every degradation and every subset of the datasets a user has).

    `mu_cap` (synthesis.mu_cap = merge.filter.mu_cap, 0.28: the largest mu of the real data, where the released
    histograms end) truncates the requests: mu bins wholly above it are never drawn, and a draw
    inside the bin that straddles it is clipped to it.  None: no cap.
    """

    def __init__(self, stats: IntensityStats, degradation: str, down_weights: Mapping[str, float],
                 uniform_every: int = 20, mu_cap: float | None = None):
        entry = stats[degradation]
        if uniform_every < 0:
            raise ValueError(f"uniform_every must be >= 0 (0 = never), got {uniform_every}")
        down_weights = dict(down_weights)
        for name, weight in down_weights.items():
            if not np.isfinite(weight) or weight < 0:
                raise ValueError(f"down_weights[{name!r}] must be a finite weight >= 0, got {weight}")
        known = sorted({d for deg in stats.degradations for d in stats[deg].datasets})
        matched = {dataset_key(d): w for d, w in down_weights.items()}
        unknown = sorted(d for d in down_weights if dataset_key(d) not in {dataset_key(k) for k in known})
        if unknown:
            warnings.warn(f"synthesis.down_weights name(s) {unknown} match no dataset of the intensity statistics "
                          f"{known} (compared ignoring case, spaces, '-' and '_'): those weights apply to nothing",
                          stacklevel=2)
        self.degradation = degradation
        self.uniform_every = int(uniform_every)
        self.datasets = entry.datasets
        for dataset in self.datasets:
            if entry.mu_counts[dataset].sum() == 0:
                raise IntensityStatsError(f"{degradation}/{dataset}: empty mu histogram, nothing to sample")
        weights = np.array([matched.get(dataset_key(d), 1.0) for d in self.datasets], dtype=np.float64)
        if weights.sum() <= 0:
            raise ValueError(f"down_weights leave no dataset of {degradation!r} to sample from")
        self.dataset_probabilities = weights / weights.sum()
        self.mu_cap = None if mu_cap is None else float(mu_cap)
        self._mu_counts = np.stack([entry.mu_counts[d] for d in self.datasets])
        if self.mu_cap is not None:
            self._mu_counts = _capped(self._mu_counts, self.mu_cap, degradation, self.datasets)
        self._sigma_counts = np.stack([entry.sigma_counts[d] for d in self.datasets])
        self._joint = np.asarray(entry.joint_counts)
        self._mu_range = np.array([_observed_range(c, "mu") for c in self._mu_counts])
        if self.mu_cap is not None:
            self._mu_range[:, 1] = np.minimum(self._mu_range[:, 1], self.mu_cap)
        self._sigma_range = np.array([_observed_range(c, "sigma") for c in self._sigma_counts])

    def sample(self, n: int, rng: np.random.Generator, start_index: int = 0) -> list[IntensityDraw]:
        """`n` draws for samples start_index .. start_index + n - 1.

        Each sample consumes one row of five uniforms from `rng`, so drawing in chunks
        (passing the running start_index) gives exactly the draws of one big call.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        u = rng.random((n, 5))
        dataset = _inverse_cdf(self.dataset_probabilities, u[:, 0])
        mu_bin = _inverse_cdf(self._mu_counts[dataset], u[:, 1])
        conditional = self._joint[mu_bin]
        empty_row = conditional.sum(axis=1) == 0
        conditional[empty_row] = self._sigma_counts[dataset[empty_row]]
        sigma_bin = _inverse_cdf(conditional, u[:, 3])
        mu_width, sigma_width = RANGES["mu"] / N_BINS, RANGES["sigma"] / N_BINS
        mu = (mu_bin + u[:, 2]) * mu_width
        sigma = (sigma_bin + u[:, 4]) * sigma_width

        index = start_index + np.arange(n)
        uniform = (index % self.uniform_every == 0) if self.uniform_every else np.zeros(n, dtype=bool)
        mu_low, mu_high = self._mu_range[dataset].T
        sigma_low, sigma_high = self._sigma_range[dataset].T
        mu = np.where(uniform, mu_low + u[:, 2] * (mu_high - mu_low), mu)
        if self.mu_cap is not None:
            mu = np.minimum(mu, self.mu_cap)
        sigma = np.where(uniform, sigma_low + u[:, 4] * (sigma_high - sigma_low), sigma)
        return [IntensityDraw(float(m), float(s), bool(r), self.datasets[d])
                for m, s, r, d in zip(mu, sigma, uniform, dataset, strict=False)]


# --------------------------------------------------------------------------------------
# Calibration


def histogram_w1(samples, counts, kind: str) -> float:
    """1-D Wasserstein distance between samples and a 128-bin histogram (bin centres x counts)."""
    counts = np.asarray(counts, dtype=np.float64)
    samples = np.asarray(samples, dtype=np.float64).ravel()
    if counts.shape != (N_BINS,) or counts.sum() <= 0 or (counts < 0).any():
        raise ValueError(f"histogram_w1: counts must be {N_BINS} non-negative values with a positive sum, "
                         f"got shape {counts.shape}, sum {counts.sum()}")
    if samples.size == 0:
        raise ValueError("histogram_w1: no samples")
    import scipy.stats  # here, not at the top: it adds ~1 s to every job's start-up

    return float(scipy.stats.wasserstein_distance(samples, bin_centre(np.arange(N_BINS), kind), v_weights=counts))
