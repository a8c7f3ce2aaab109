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

Hashing reads every image (GenDS: 780k pairs, ~1.56M files), so with a work folder
(`--work checkpoints/select_pairs/<set>`, one per job, not an output) a file's hash is kept and
reused while its size and mtime are unchanged (gendeg.runtime.file_records): a re-run reads only
new or rewritten files, and a killed run keeps what it hashed.  Files are hashed on threads.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from gendeg.data.manifest import read_manifest, write_manifest
from gendeg.pipeline import tracking
from gendeg.runtime.file_records import FILE_KEY, FileRecords, stat_files
from gendeg.runtime.progress import notice

TRAINING_SETS = ("existing", "gends", "gendeg", "oracle")
HASH_COLUMNS = ("image_sha1", "target_sha1")
FLUSH_EVERY = 10_000  # files hashed between cache writes: what a killed select_pairs hashes again at most


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


def _sha1(path: str) -> str:
    """SHA-1 of a file's bytes.  hashlib releases the GIL while it hashes a large buffer (as the
    read does), so threads hash side by side; one read of the whole file (an image: a few MB at
    most) costs less than a loop over chunks."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def _threads() -> int:
    """Hashing waits on reads as much as it computes (a cluster's shared filesystem), so a few
    threads more than the cores this process may use: ThreadPoolExecutor's own rule."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(32, cores + 4)


def _sha1_chunk(paths: list[str]) -> list[str]:
    return [_sha1(path) for path in paths]


def _hashed(paths: list[str], workers: int) -> Iterator[str]:
    """SHA-1 of each file, in input order, on `workers` threads.  A task hashes a few files, so its
    cost (a future, a wake-up) is spread over them (one task per file was slower than one thread
    on small cached files); only a few tasks are in flight (not one per file of a million)."""
    if workers <= 1:
        yield from map(_sha1, paths)
        return
    chunk = max(1, min(16, len(paths) // (workers * 4)))
    with ThreadPoolExecutor(workers) as pool:
        window: deque = deque()
        for start in range(0, len(paths), chunk):
            window.append(pool.submit(_sha1_chunk, paths[start:start + chunk]))
            if len(window) >= 2 * workers:
                yield from window.popleft().result()
        while window:
            yield from window.popleft().result()


def file_hashes(paths: list[str], work_dir: Path | None = None,
                workers: int | None = None) -> tuple[list[str], int]:
    """SHA-1 of each file, in order, and how many files were read: each distinct file once, and with
    `work_dir` none whose size and mtime are unchanged since it was hashed there."""
    unique = list(dict.fromkeys(paths))
    workers = workers or _threads()

    def hash_files(rows: pd.DataFrame):
        threads = max(1, min(workers, len(rows)))
        notice(f"select_pairs: SHA-1 of {len(unique)} file(s): {len(unique) - len(rows)} unchanged since hashed, "
               f"{len(rows)} to hash on {threads} thread(s)")
        return ((digest,) for digest in _hashed(rows["path"].tolist(), threads))

    records = FileRecords(work_dir, "sha1", list(FILE_KEY), {"sha1": str}, FLUSH_EVERY, "select_pairs")
    known, hashed = records.complete(stat_files(unique), hash_files, "sha1 of images")
    digests = dict(zip(known["path"], known["sha1"], strict=True))
    return [digests[path] for path in paths], hashed


def select_pairs(train_set: str, data_dir: Path, out: Path, generated_per_degradation: int | None = None,
                 work_dir: Path | None = None, workers: int | None = None) -> dict:
    """Write the training set's manifest (+ image hashes) to `out`; return counts per degradation.

    `work_dir` (checkpoints/select_pairs/<job> under the orchestrators) keeps the hashes for the
    next run; `workers`: hashing threads (default: the usable cores + 4)."""
    frame = source_pairs(train_set, data_dir)
    if generated_per_degradation is not None:
        if train_set == "existing":
            raise ValueError("select_pairs: generated_per_degradation needs a training set with generated pairs, "
                             "not 'existing'")
        frame = first_generated(frame, generated_per_degradation)
    if frame.empty:
        raise ValueError(f"select_pairs: training set {train_set!r} from {data_dir} has no pairs")
    frame = frame.reset_index(drop=True)
    paths = frame["image_path"].tolist() + frame["target_path"].tolist()
    digests, hashed = file_hashes(paths, work_dir, workers)
    frame[HASH_COLUMNS[0]], frame[HASH_COLUMNS[1]] = digests[:len(frame)], digests[len(frame):]
    with tracking.job_run("select_pairs", f"select_pairs:{train_set}" + (
            "" if generated_per_degradation is None else f"@{generated_per_degradation}")) as run:
        write_manifest(frame, out)
        generated = frame[frame["category"] != "Real"]
        summary = {"train_set": train_set, "pairs": int(len(frame)), "generated_pairs": int(len(generated)),
                   "generated_per_degradation": generated_per_degradation,
                   "pairs_per_degradation": {k: int(v) for k, v in frame.groupby("degradation").size().items()}}
        run.log_params({"train_set": train_set, "generated_per_degradation": generated_per_degradation})
        run.log_metrics({"pairs": summary["pairs"], "generated_pairs": summary["generated_pairs"],
                         "files_hashed": hashed})
    return summary
