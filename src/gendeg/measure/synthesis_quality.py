"""What GenDeg and GenDS really do: intensity control, type fidelity and seed-to-seed spread.

Pure measurement functions (numbers in, numbers out) shared by the benchmark scripts
(`benchmarks/intensity_control.py`, `benchmarks/ood_default.py`) and any later report.
They never train or sample; the benchmarks do that and hand the results here.

Why these statistics:

* Control of mu is judged by three numbers, because each one alone can mislead: Pearson r
  (does the output follow the request?), the mean absolute error (is it at the level?) and
  the ratio of mean realised to mean requested mu (a 2x overshoot still has r = 1).
* A correlation of mu alone does not show that the right degradation was made (haze that
  turns into rain-like bands at high mu still correlates), hence `type_accuracy` from a
  classifier trained on real training pairs only, judging the change a pair makes
  (`gendeg.measure.classifier.pair_change`), with the physics generator's own score as its ceiling.
* A gain of restorers trained on GenDS that is smaller than the seed-to-seed spread is
  no gain: `compare_over_seeds` says so explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

MIN_SAMPLES_FOR_R = 3  # below this a correlation is meaningless, reported as nan


def _as_vector(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"{name}: no values")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: {int((~np.isfinite(array)).sum())} non-finite value(s)")
    return array


def _paired(requested, realised, name: str) -> tuple[np.ndarray, np.ndarray]:
    requested, realised = _as_vector(requested, f"{name} requested"), _as_vector(realised, f"{name} realised")
    if requested.shape != realised.shape:
        raise ValueError(f"{name}: {requested.size} requested vs {realised.size} realised values")
    return requested, realised


def pearson_r(x, y) -> float:
    """Pearson correlation; nan (not a warning or a division error) when either side is
    constant or there are fewer than MIN_SAMPLES_FOR_R pairs, since then r is undefined."""
    x, y = _paired(x, y, "pearson_r")
    if x.size < MIN_SAMPLES_FOR_R:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    # "Constant" up to float rounding, relative to the values' magnitude.
    if any(np.abs(d).max() <= 1e-12 * max(np.abs(v).max(), 1e-300) for d, v in ((dx, x), (dy, y))):
        return math.nan
    norm = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(np.clip(dx @ dy / norm, -1.0, 1.0))


def control_stats(requested, realised, prefix: str = "") -> dict[str, float]:
    """How well realised intensities follow requested ones.

    Returns `{prefix}pearson_r`, `{prefix}mae` and `{prefix}ratio`: mean(realised) /
    mean(requested), a ratio of means rather than a mean of ratios so that near-zero
    requests (every degradation's low end) do not dominate it.
    """
    requested, realised = _paired(requested, realised, "control_stats")
    mean_requested = float(requested.mean())
    return {
        f"{prefix}pearson_r": pearson_r(requested, realised),
        f"{prefix}mae": float(np.abs(realised - requested).mean()),
        f"{prefix}ratio": float(realised.mean() / mean_requested) if mean_requested > 0 else math.nan,
    }


def sweep_levels(train_mu, levels: int, low_percentile: float = 5.0, high_percentile: float = 95.0) -> np.ndarray:
    """`levels` evenly spaced mu requests between two percentiles of the training pairs' mu:
    the range a degradation really has, without its outliers."""
    train_mu = _as_vector(train_mu, "sweep_levels train_mu")
    if levels < 2:
        raise ValueError(f"sweep_levels: levels must be >= 2, got {levels}")
    if not 0 <= low_percentile < high_percentile <= 100:
        raise ValueError(f"sweep_levels: need 0 <= low < high <= 100, got {low_percentile}, {high_percentile}")
    low, high = np.percentile(train_mu, [low_percentile, high_percentile])
    return np.linspace(low, high, levels)


def sigma_at_mu(train_mu, train_sigma, requested_mu, neighbours: int = 16) -> np.ndarray:
    """Mean sigma of the `neighbours` training pairs whose mu is closest to each request:
    the (mu, sigma) pairs a degradation really produces, so no request asks for an
    impossible combination.  Ties are broken by index (stable sort), so it is deterministic."""
    train_mu, train_sigma = _paired(train_mu, train_sigma, "sigma_at_mu train")
    requested_mu = _as_vector(requested_mu, "sigma_at_mu requested_mu")
    k = max(1, min(int(neighbours), train_mu.size))
    distance = np.abs(requested_mu[:, None] - train_mu[None, :])
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
    return train_sigma[nearest].mean(axis=1)


def type_accuracy(predicted, requested) -> float:
    """Share of samples whose predicted class equals the requested one.

    `predicted` is (N,) class indices or (N, C) class scores / probabilities (argmax taken).
    """
    predicted = torch.as_tensor(predicted)
    if predicted.ndim == 2:
        predicted = predicted.argmax(dim=1)
    requested = torch.as_tensor(requested).long().ravel()
    if predicted.ndim != 1 or predicted.shape != requested.shape:
        raise ValueError(f"type_accuracy: {tuple(predicted.shape)} predictions vs {tuple(requested.shape)} requests")
    if requested.numel() == 0:
        raise ValueError("type_accuracy: no samples")
    return float((predicted.long() == requested).double().mean())


def class_shares(predicted, class_names: Sequence[str]) -> dict[str, float]:
    """Share of samples per predicted class name: where the misclassified samples went."""
    predicted = torch.as_tensor(predicted)
    if predicted.ndim == 2:
        predicted = predicted.argmax(dim=1)
    counts = torch.bincount(predicted.long().ravel(), minlength=len(class_names)).double()
    if counts.numel() > len(class_names):
        raise ValueError(f"class_shares: class index {counts.numel() - 1} out of {len(class_names)} names")
    return {name: float(c) for name, c in zip(class_names, counts / max(predicted.numel(), 1), strict=True)}


def mean_std(values) -> dict:
    """{"mean", "std" (population, 0 for one value), "per_seed"} of per-seed figures."""
    array = _as_vector(values, "mean_std")
    return {"mean": float(array.mean()), "std": float(array.std()), "per_seed": [float(v) for v in array]}


def compare_over_seeds(baseline, candidate) -> dict:
    """Per-seed paired comparison of `candidate` against `baseline` (e.g. OOD PSNR of the
    restorer trained on GenDS vs on existing data, one value per seed).

    The verdict is "gain" / "loss" only when the mean gain exceeds the seed-to-seed spread:
    the largest of the per-seed gains' std and either side's std.  Otherwise it is
    "within spread", which is no gain.  With one seed there is no spread, and the verdict
    says so.  `same_sign_every_seed` is the weaker, paired view (every seed moved the same
    way), reported beside the verdict and never instead of it.
    """
    baseline, candidate = _paired(baseline, candidate, "compare_over_seeds")
    gains = candidate - baseline
    spread = float(max(gains.std(), baseline.std(), candidate.std()))
    mean_gain = float(gains.mean())
    if gains.size < 2:
        verdict = "single seed: spread unknown"
    elif mean_gain > spread:
        verdict = "gain"
    elif mean_gain < -spread:
        verdict = "loss"
    else:
        verdict = "within spread"
    return {"mean": mean_gain, "std": float(gains.std()), "per_seed": [float(g) for g in gains],
            "spread": spread, "verdict": verdict,
            "same_sign_every_seed": bool((gains > 0).all() or (gains < 0).all())}
