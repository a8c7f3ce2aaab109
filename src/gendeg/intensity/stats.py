"""Intensity statistics: per-dataset mu and sigma histograms and the pooled joint, in memory
and in the layout the GenDeg authors released (`Mu_<dataset>.json`, `Sigma_<dataset>.json`,
`Mu-Sigma.json` per degradation folder), so the paper preset and the built-in stand-in
datasets go through one code path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gendeg import DEGRADATIONS, REFERENCE_FOLDER
from gendeg.intensity.definition import N_BINS, RANGES, bin_edges, histogram_counts, joint_counts
from gendeg.runtime.atomic import atomic_dir

# The original release names this folder "motion blur"; accept it too when reading.
_LEGACY_FOLDERS = {"motion_blur": ("motion blur",)}
_KEY_PREFIX = {"mu": "Mu", "sigma": "Sigma"}


class IntensityStatsError(ValueError):
    """A statistics folder or file is missing, malformed, or inconsistent."""


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
