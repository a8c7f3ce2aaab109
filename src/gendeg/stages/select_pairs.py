"""Stage `select_pairs` (one job per training set, and one per data-scaling count): the pairs one
restorer trains on, as a manifest with a content hash of every image.

Training sets:
    existing  the existing paired datasets only (prepared/train.csv)
    gends     existing + generated pairs (gends/manifest.csv)
    gendeg    generated pairs only (the Synthetic rows of gends/manifest.csv)
    oracle    existing + the physics generator's pairs on the same clean images and
              intensities as the generated ones (gends/oracle.csv; synthesis.oracle: true)
With `generated_per_degradation` N (the scaling curve), only the first N generated (or
oracle) pairs of each degradation are kept, in manifest order: deterministic, and each
count's subset contains every smaller count's subset, so the curve adds data and changes
nothing else.

Why a stage of its own: restorer jobs are a matrix over architectures x training sets, and
DVC's `matrix:` can name a job's training set but not look up which stage output holds
its pairs.  Each restorer therefore depends on `data/training_sets/<set>.csv`, the same
path pattern for every set.  The `sha1` columns make that file change whenever an image
it lists changes, so a restorer re-runs exactly when its own pairs change: the `existing`
restorers never wait for, or re-run after, GenDeg.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from gendeg.data.manifest import read_manifest, write_manifest
from gendeg.pipeline import tracking

TRAINING_SETS = ("existing", "gends", "gendeg", "oracle")
HASH_COLUMNS = ("image_sha1", "target_sha1")


def source_pairs(train_set: str, data_dir: Path) -> pd.DataFrame:
    """All pairs of a training set, from its data folder (prepared/ or gends/)."""
    if train_set == "existing":
        return read_manifest(Path(data_dir) / "train.csv")
    if train_set == "oracle":
        path = Path(data_dir) / "oracle.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: the oracle training set needs synthesis.oracle: true")
        return read_manifest(path)
    if train_set in ("gends", "gendeg"):
        frame = read_manifest(Path(data_dir) / "manifest.csv")
        return frame[frame["category"] == "Synthetic"] if train_set == "gendeg" else frame
    raise ValueError(f"unknown training set {train_set!r}; expected one of {TRAINING_SETS}")


def first_generated(frame: pd.DataFrame, per_degradation: int) -> pd.DataFrame:
    """Real pairs + the first `per_degradation` non-Real pairs of each degradation (manifest order)."""
    generated = frame["category"] != "Real"
    rank = frame[generated].groupby("degradation", sort=False).cumcount()
    keep = ~generated
    keep[rank.index] = rank < per_degradation
    return frame[keep]


def _sha1(path: str, cache: dict[str, str]) -> str:
    if path not in cache:
        cache[path] = hashlib.sha1(Path(path).read_bytes()).hexdigest()
    return cache[path]


def select_pairs(train_set: str, data_dir: Path, out: Path, generated_per_degradation: int | None = None) -> dict:
    """Write the training set's manifest (+ image hashes) to `out`; return counts per degradation."""
    frame = source_pairs(train_set, data_dir)
    if generated_per_degradation is not None:
        if train_set == "existing":
            raise ValueError("select_pairs: generated_per_degradation needs a training set with generated pairs, "
                             "not 'existing'")
        frame = first_generated(frame, generated_per_degradation)
    if frame.empty:
        raise ValueError(f"select_pairs: training set {train_set!r} from {data_dir} has no pairs")
    frame = frame.reset_index(drop=True)
    cache: dict[str, str] = {}
    for column, path_column in zip(HASH_COLUMNS, ("image_path", "target_path"), strict=True):
        frame[column] = [_sha1(p, cache) for p in frame[path_column]]
    with tracking.job_run("select_pairs", f"select_pairs:{train_set}" + (
            "" if generated_per_degradation is None else f"@{generated_per_degradation}")) as run:
        write_manifest(frame, out)
        generated = frame[frame["category"] != "Real"]
        summary = {"train_set": train_set, "pairs": int(len(frame)), "generated_pairs": int(len(generated)),
                   "generated_per_degradation": generated_per_degradation,
                   "pairs_per_degradation": {k: int(v) for k, v in frame.groupby("degradation").size().items()}}
        run.log_params({"train_set": train_set, "generated_per_degradation": generated_per_degradation})
        run.log_metrics({"pairs": summary["pairs"], "generated_pairs": summary["generated_pairs"]})
    return summary
