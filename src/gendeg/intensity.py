"""Degradation intensity (mu, sigma) exactly as the paper defines it, and its 128-bin encoding.

mu = mean |clean - degraded| and sigma = population std of the same difference, over all
pixels and channels, after resizing both images to 256x256 (Lanczos).  Each value is put
in one of 128 uniform bins (mu on [0, 0.7], sigma on [0, 0.4], overflow to the top bin);
slot 128 of the 129-slot one-hot means "no intensity condition".

This module also reads and writes the statistics in the layout the GenDeg authors released
(`Mu_<dataset>.json`, `Sigma_<dataset>.json`, `Mu-Sigma.json` per degradation folder) and
samples (mu, sigma) from them the way the released synthesis code does, so the paper preset
and the built-in stand-in datasets go through one code path.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from gendeg import DEGRADATIONS, REFERENCE_FOLDER
from gendeg.atomic import atomic_dir

N_BINS = 128
NULL_SLOT = N_BINS  # index of the "no condition" slot; one-hot vectors have N_BINS + 1 slots
RANGES = {"mu": 0.7, "sigma": 0.4}
STATS_SIZE = 256  # both images are resized to this square size before mu/sigma are measured

# Down-weights of the released synthesis code for datasets whose degradations are extreme, so
# they do not dominate the generated data (a dataset's pick probability is uniform x weight).
# One flat dict serves every degradation: each name belongs to one degradation's datasets.
DEFAULT_DOWN_WEIGHTS: dict[str, float] = {
    "DenseHaze": 0.05,
    "NH-HAZE": 0.1,
    "I-HAZE": 0.25,
    "ORD": 0.2,
    "SID": 0.2,
}

# The original release names this folder "motion blur"; accept it too when reading.
_LEGACY_FOLDERS = {"motion_blur": ("motion blur",)}
_KEY_PREFIX = {"mu": "Mu", "sigma": "Sigma"}


class IntensityStatsError(ValueError):
    """A statistics folder or file is missing, malformed, or inconsistent."""


# --------------------------------------------------------------------------------------
# Bins


def bin_index(values, kind: str):
    """Bin index in [0, 127] of mu or sigma values (numpy array, tensor or float)."""
    if kind not in RANGES:
        raise ValueError(f"intensity kind must be one of {sorted(RANGES)}, got {kind!r}")
    width = RANGES[kind] / N_BINS
    if isinstance(values, torch.Tensor):
        return torch.clamp((values / width).floor().long(), 0, N_BINS - 1)
    index = np.clip(np.floor(np.asarray(values, dtype=np.float64) / width), 0, N_BINS - 1).astype(np.int64)
    return int(index) if index.ndim == 0 else index


def bin_centre(index, kind: str):
    """Centre of a bin: the value a bin stands for when it is sampled back."""
    width = RANGES[kind] / N_BINS
    return (np.asarray(index, dtype=np.float64) + 0.5) * width


def bin_edges(kind: str) -> list[float]:
    """The 129 bin edges as the released files spell them (`i * width`, plain Python floats)."""
    if kind not in RANGES:
        raise ValueError(f"intensity kind must be one of {sorted(RANGES)}, got {kind!r}")
    width = RANGES[kind] / N_BINS
    return [i * width for i in range(N_BINS + 1)]


def histogram_counts(values, kind: str) -> np.ndarray:
    """int64[128] counts of mu or sigma values in the paper's bins (overflow -> top bin)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return np.bincount(bin_index(values, kind), minlength=N_BINS).astype(np.int64)


def joint_counts(mu, sigma) -> np.ndarray:
    """int64[128, 128] joint counts, rows = mu bin, columns = sigma bin (the Mu-Sigma.json matrix)."""
    mu_bins = bin_index(np.asarray(mu, dtype=np.float64).ravel(), "mu")
    sigma_bins = bin_index(np.asarray(sigma, dtype=np.float64).ravel(), "sigma")
    if mu_bins.shape != sigma_bins.shape:
        raise ValueError(f"joint_counts: {mu_bins.size} mu values but {sigma_bins.size} sigma values")
    flat = np.bincount(mu_bins * N_BINS + sigma_bins, minlength=N_BINS * N_BINS)
    return flat.reshape(N_BINS, N_BINS).astype(np.int64)


# --------------------------------------------------------------------------------------
# Measuring (mu, sigma)


def _check_image(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"mu_sigma: {name} must be an HxWx3 array, got shape {array.shape}")
    return array.astype(np.float32, copy=False)


def resize_lanczos(image: np.ndarray, size: int = STATS_SIZE) -> np.ndarray:
    """Lanczos resize of an HxWx3 float image to size x size, clipped back to [0, 1].

    PIL resamples each channel as a 32-bit float ("F") image, so no 8-bit rounding is
    added; clipping removes the Lanczos overshoot exactly as PIL's 8-bit path does.  The
    released code resized 8-bit images; on 8-bit inputs the two agree to about 1e-3 in mu.
    """
    image = _check_image(image, "image")
    if image.shape[:2] == (size, size):
        return np.clip(image, 0.0, 1.0)
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c]), mode="F").resize(
            (size, size), Image.Resampling.LANCZOS))
        for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)


def mu_sigma(clean: np.ndarray, degraded: np.ndarray, size: int = STATS_SIZE) -> tuple[float, float]:
    """The paper's intensity of one pair: (mean, population std) of |clean - degraded|.

    Both float32 HxWx3 images in [0, 1] (sizes may differ) are Lanczos-resized to
    size x size first (see `resize_lanczos`); statistics are taken in float64 over all
    pixels and channels, as the released code does.
    """
    difference = np.abs(resize_lanczos(clean, size).astype(np.float64) - resize_lanczos(degraded, size))
    difference = np.clip(difference, 0.0, 1.0)
    return float(difference.mean()), float(difference.std())


def mu_sigma_torch(clean: torch.Tensor, degraded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched (mu[B], sigma[B]) of Bx3xHxW tensors in [0, 1] at their native resolution.

    No resize: this is for model outputs during training and filtering, where the images
    are already at one size.  Use `mu_sigma` for numbers comparable with the released
    statistics, which were measured at 256x256.  Differentiable.
    """
    if clean.shape != degraded.shape or clean.ndim != 4:
        raise ValueError(f"mu_sigma_torch: need two Bx3xHxW tensors of one shape, got "
                         f"{tuple(clean.shape)} and {tuple(degraded.shape)}")
    difference = (clean - degraded).abs().clamp(0.0, 1.0).flatten(1)
    return difference.mean(dim=1), difference.std(dim=1, unbiased=False)


# --------------------------------------------------------------------------------------
# Statistics in memory


@dataclass(frozen=True)
class DegradationStats:
    """Histograms of one degradation: per dataset mu and sigma counts, and the pooled joint."""

    degradation: str
    mu_counts: Mapping[str, np.ndarray]  # dataset -> int64[128]
    sigma_counts: Mapping[str, np.ndarray]  # dataset -> int64[128]
    joint_counts: np.ndarray  # int64[128, 128], rows mu bin, columns sigma bin, all datasets pooled

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(sorted(self.mu_counts))


@dataclass(frozen=True)
class IntensityStats:
    """Intensity statistics of several degradations (a `load_intensity_stats` result)."""

    by_degradation: Mapping[str, DegradationStats]

    @property
    def degradations(self) -> tuple[str, ...]:
        return tuple(d for d in DEGRADATIONS if d in self.by_degradation)

    def __getitem__(self, degradation: str) -> DegradationStats:
        if degradation not in self.by_degradation:
            raise KeyError(f"no intensity statistics for degradation {degradation!r}; "
                           f"have {list(self.degradations)}")
        return self.by_degradation[degradation]

    def __contains__(self, degradation: object) -> bool:
        return degradation in self.by_degradation


def stats_from_frame(frame: pd.DataFrame) -> IntensityStats:
    """Histogram a manifest frame (columns degradation, dataset, mu, sigma) per degradation."""
    missing = [c for c in ("degradation", "dataset", "mu", "sigma") if c not in frame.columns]
    if missing:
        raise IntensityStatsError(f"stats_from_frame: frame lacks column(s) {missing}")
    unknown = sorted(set(frame["degradation"]) - set(DEGRADATIONS))
    if unknown:
        raise IntensityStatsError(f"stats_from_frame: unknown degradation(s) {unknown}; expected {DEGRADATIONS}")
    values = frame[["mu", "sigma"]].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values).all(axis=1) | (values < 0).any(axis=1)
    if bad.any():
        first = frame.loc[bad].iloc[0]
        raise IntensityStatsError(
            f"stats_from_frame: {int(bad.sum())} row(s) have missing or negative mu/sigma, first: "
            f"dataset={first['dataset']!r} degradation={first['degradation']!r} "
            f"mu={first['mu']} sigma={first['sigma']}")
    by_degradation = {}
    for degradation, rows in frame.groupby("degradation", sort=True):
        mu_counts, sigma_counts = {}, {}
        for dataset, group in rows.groupby("dataset", sort=True):
            _check_dataset_name(dataset)
            mu_counts[dataset] = histogram_counts(group["mu"], "mu")
            sigma_counts[dataset] = histogram_counts(group["sigma"], "sigma")
        by_degradation[degradation] = DegradationStats(
            degradation, mu_counts, sigma_counts, joint_counts(rows["mu"], rows["sigma"]))
    return IntensityStats(by_degradation)


def _check_dataset_name(dataset: str) -> None:
    if not dataset or "/" in dataset or "\\" in dataset:
        raise IntensityStatsError(f"dataset name {dataset!r} cannot be used in a file name")


# --------------------------------------------------------------------------------------
# The released JSON layout


def _histogram_json(counts: np.ndarray, kind: str, dataset: str) -> list[dict]:
    edges, key = bin_edges(kind), _KEY_PREFIX[kind]
    return [{f"{key} min": edges[i], f"{key} max": edges[i + 1], "Count": int(counts[i]), "Dataset": dataset}
            for i in range(N_BINS)]


def _mu_range_label(index: int) -> str:
    edges = bin_edges("mu")
    return f"{edges[index]:.3f} - {edges[index + 1]:.3f}"


def _joint_json(joint: np.ndarray, dataset_label: str) -> list[dict]:
    sigma_edges = bin_edges("sigma")
    return [
        {
            "Mu range": _mu_range_label(m),
            "Count": [{"Sigma min": sigma_edges[s], "Sigma max": sigma_edges[s + 1], "Count": int(joint[m, s])}
                      for s in range(N_BINS)],
            "Dataset": dataset_label,
        }
        for m in range(N_BINS)
    ]


def _dump(obj, path: Path) -> None:
    # json.dumps(indent=4) with no trailing newline is byte-for-byte the released layout.
    path.write_text(json.dumps(obj, indent=4))


def write_intensity_stats(stats: IntensityStats, out_dir: str | Path) -> None:
    """Write `stats` in the released layout, replacing `out_dir` atomically.

    One folder per degradation (named by gendeg.REFERENCE_FOLDER) with Mu_<dataset>.json,
    Sigma_<dataset>.json and Mu-Sigma.json.  The release shipped one copy of the pooled
    joint per dataset, identical but for its "Dataset" label; the copy kept there carries
    the alphabetically first dataset name, so we label ours the same way.
    """
    with atomic_dir(out_dir) as tmp:
        for degradation in stats.degradations:
            entry = stats[degradation]
            folder = tmp / REFERENCE_FOLDER[degradation]
            folder.mkdir()
            for dataset in entry.datasets:
                _check_dataset_name(dataset)
                _dump(_histogram_json(entry.mu_counts[dataset], "mu", dataset), folder / f"Mu_{dataset}.json")
                _dump(_histogram_json(entry.sigma_counts[dataset], "sigma", dataset), folder / f"Sigma_{dataset}.json")
            _dump(_joint_json(entry.joint_counts, entry.datasets[0]), folder / "Mu-Sigma.json")


def write_official_stats(frame: pd.DataFrame, out_dir: str | Path) -> IntensityStats:
    """Histogram a manifest frame and write it in the released layout (see write_intensity_stats).

    Every row counts: pass only the pairs the statistics should describe (for the released
    kind, the real training pairs, e.g. `frame[frame.category == "Real"]`).
    """
    stats = stats_from_frame(frame)
    write_intensity_stats(stats, out_dir)
    return stats


def _read_json_list(path: Path) -> list:
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise IntensityStatsError(f"{path}: cannot read intensity statistics: {error}") from error
    if not isinstance(content, list) or len(content) != N_BINS or not all(isinstance(r, dict) for r in content):
        raise IntensityStatsError(f"{path}: expected a list of {N_BINS} bin objects")
    return content


def _parse_edges_and_counts(rows: list, kind: str, path: Path, where: str = "") -> np.ndarray:
    key = _KEY_PREFIX[kind]
    try:
        low = np.array([r[f"{key} min"] for r in rows], dtype=np.float64)
        high = np.array([r[f"{key} max"] for r in rows], dtype=np.float64)
        counts = np.array([r["Count"] for r in rows])
    except (KeyError, TypeError, ValueError) as error:
        raise IntensityStatsError(f"{path}{where}: bins need '{key} min', '{key} max' and 'Count': {error}") from error
    edges = np.array(bin_edges(kind))
    if not (np.allclose(low, edges[:-1], atol=1e-9) and np.allclose(high, edges[1:], atol=1e-9)):
        raise IntensityStatsError(f"{path}{where}: bin edges are not the {N_BINS} uniform bins on [0, {RANGES[kind]}]")
    if counts.dtype.kind not in "iu" or (counts < 0).any():
        raise IntensityStatsError(f"{path}{where}: 'Count' values must be non-negative integers")
    return counts.astype(np.int64)


def _read_histogram(path: Path, kind: str, dataset: str) -> np.ndarray:
    if not path.is_file():
        raise IntensityStatsError(f"missing intensity statistics file {path}")
    rows = _read_json_list(path)
    labels = {r.get("Dataset") for r in rows}
    if labels != {dataset}:
        raise IntensityStatsError(f"{path}: 'Dataset' fields {sorted(map(str, labels))} do not match the file name")
    return _parse_edges_and_counts(rows, kind, path)


def _read_joint(path: Path) -> np.ndarray:
    rows = _read_json_list(path)
    matrix = []
    for index, row in enumerate(rows):
        if row.get("Mu range") != _mu_range_label(index):
            raise IntensityStatsError(f"{path}: row {index} has 'Mu range' {row.get('Mu range')!r}, "
                                      f"expected {_mu_range_label(index)!r}")
        cells = row.get("Count")
        if not isinstance(cells, list) or len(cells) != N_BINS:
            raise IntensityStatsError(f"{path}: row {index} needs a 'Count' list of {N_BINS} sigma bins")
        matrix.append(_parse_edges_and_counts(cells, "sigma", path, f" row {index}"))
    return np.stack(matrix)


def _degradation_folder(root: Path, degradation: str) -> Path | None:
    for name in (REFERENCE_FOLDER[degradation], *_LEGACY_FOLDERS.get(degradation, ())):
        if (root / name).is_dir():
            return root / name
    return None


def _load_degradation(folder: Path, degradation: str) -> DegradationStats:
    datasets = sorted(p.name[len("Mu_"):-len(".json")] for p in folder.glob("Mu_*.json"))
    if not datasets:
        raise IntensityStatsError(f"{folder}: no Mu_<dataset>.json files")
    mu_counts = {d: _read_histogram(folder / f"Mu_{d}.json", "mu", d) for d in datasets}
    sigma_counts = {d: _read_histogram(folder / f"Sigma_{d}.json", "sigma", d) for d in datasets}
    # Ours: Mu-Sigma.json.  The original release: one identical copy per dataset (Mu-Sigma-<ds>.json).
    joint_files = [folder / "Mu-Sigma.json"]
    if not joint_files[0].is_file():
        joint_files = sorted(folder.glob("Mu-Sigma-*.json"))
    if not joint_files:
        raise IntensityStatsError(f"missing intensity statistics file {folder / 'Mu-Sigma.json'}")
    joints = [_read_joint(path) for path in joint_files]
    for path, other in zip(joint_files[1:], joints[1:], strict=False):
        if not np.array_equal(other, joints[0]):
            raise IntensityStatsError(f"{path}: joint counts differ from {joint_files[0]}; expected identical copies")
    joint = joints[0]
    pooled_mu = sum(mu_counts.values())
    if not np.array_equal(joint.sum(axis=1), pooled_mu):
        raise IntensityStatsError(f"{joint_files[0]}: joint row sums do not equal the pooled Mu_<dataset>.json counts")
    for dataset in datasets:
        if mu_counts[dataset].sum() != sigma_counts[dataset].sum():
            raise IntensityStatsError(f"{folder}: Mu_{dataset}.json and Sigma_{dataset}.json count different pairs")
    return DegradationStats(degradation, mu_counts, sigma_counts, joint)


def load_intensity_stats(root: str | Path, degradations: Sequence[str] | None = None) -> IntensityStats:
    """Read statistics in the released layout: ours, the shared reference copy, or the original.

    `degradations=None` loads every degradation whose folder exists (at least one must);
    a named degradation without a folder is an error.  Besides the file checks, the joint's
    row sums must equal the summed per-dataset mu counts, as they do in the release.
    """
    root = Path(root)
    if not root.is_dir():
        raise IntensityStatsError(f"intensity statistics folder not found: {root}")
    wanted = DEGRADATIONS if degradations is None else tuple(degradations)
    by_degradation = {}
    for degradation in wanted:
        if degradation not in REFERENCE_FOLDER:
            raise IntensityStatsError(f"unknown degradation {degradation!r}; expected one of {DEGRADATIONS}")
        folder = _degradation_folder(root, degradation)
        if folder is None:
            if degradations is not None:
                raise IntensityStatsError(f"missing folder {root / REFERENCE_FOLDER[degradation]} "
                                          f"for degradation {degradation!r}")
            continue
        by_degradation[degradation] = _load_degradation(folder, degradation)
    if not by_degradation:
        raise IntensityStatsError(f"{root}: no degradation folders ({sorted(REFERENCE_FOLDER.values())})")
    return IntensityStats(by_degradation)


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

    `down_weights=None` uses DEFAULT_DOWN_WEIGHTS; names of other degradations' datasets
    are ignored, so one dict serves all degradations.
    """

    def __init__(self, stats: IntensityStats, degradation: str,
                 down_weights: Mapping[str, float] | None = None, uniform_every: int = 20):
        entry = stats[degradation]
        if uniform_every < 0:
            raise ValueError(f"uniform_every must be >= 0 (0 = never), got {uniform_every}")
        explicit = down_weights is not None
        down_weights = dict(DEFAULT_DOWN_WEIGHTS if down_weights is None else down_weights)
        for name, weight in down_weights.items():
            if not np.isfinite(weight) or weight < 0:
                raise ValueError(f"down_weights[{name!r}] must be a finite weight >= 0, got {weight}")
        if explicit:
            known = {d for deg in stats.degradations for d in stats[deg].datasets}
            unknown = sorted(set(down_weights) - known)
            if unknown:
                warnings.warn(f"down_weights names no dataset of the statistics: {unknown}", stacklevel=2)
        self.degradation = degradation
        self.uniform_every = int(uniform_every)
        self.datasets = entry.datasets
        for dataset in self.datasets:
            if entry.mu_counts[dataset].sum() == 0:
                raise IntensityStatsError(f"{degradation}/{dataset}: empty mu histogram, nothing to sample")
        weights = np.array([down_weights.get(d, 1.0) for d in self.datasets], dtype=np.float64)
        if weights.sum() <= 0:
            raise ValueError(f"down_weights leave no dataset of {degradation!r} to sample from")
        self.dataset_probabilities = weights / weights.sum()
        self._mu_counts = np.stack([entry.mu_counts[d] for d in self.datasets])
        self._sigma_counts = np.stack([entry.sigma_counts[d] for d in self.datasets])
        self._joint = np.asarray(entry.joint_counts)
        self._mu_range = np.array([_observed_range(c, "mu") for c in self._mu_counts])
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
