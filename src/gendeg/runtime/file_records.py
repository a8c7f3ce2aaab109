"""Per-file records a stage keeps between runs, so that a re-run, or a killed job run again,
computes only what is new: (mu, sigma) of prepare's pairs, the SHA-1 of select_pairs' images.

A record is keyed by its files' (path, size, mtime_ns), plus any parameter its value depends on
(prepare's measuring size), and is reused only while all of them are as they were: a file
written again gets a new mtime and is read again, with nothing to invalidate by hand.  A stat is
all a look-up costs.

The records live in the job's work folder (`--work checkpoints/<stage>/...`, not an output, so
neither Snakemake nor DVC tracks it), one record set per folder and one folder per job, so
concurrent jobs never write one file:

    <name>.parquet        the records of the last finished run's files
    part_NNNNNN.parquet   records made since, written atomically every `flush_every` records:
                          a killed job loses at most that many

At the end of a run the parts fold into <name>.parquet, which then holds the run's own files
only (the folder does not grow with files that are gone).  Parquet keeps values exactly (float64
bits, strings), so a reused record gives an output the same bytes as a recomputed one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from gendeg.runtime.atomic import atomic_path
from gendeg.runtime.progress import notice, progress

FILE_KEY = ("path", "size", "mtime_ns")


def stat_files(paths: Iterable, prefix: str = "") -> pd.DataFrame:
    """Key columns `<prefix>path`, `<prefix>size`, `<prefix>mtime_ns` of each file: a stat, no read."""
    rows = []
    for path in paths:
        stat = os.stat(path)
        rows.append((path, stat.st_size, stat.st_mtime_ns))
    columns = [prefix + name for name in FILE_KEY]
    return pd.DataFrame(rows, columns=columns).astype({columns[1]: np.int64, columns[2]: np.int64})


class FileRecords:
    """One record set in a work folder: `key` columns -> `values` columns.

    `key` names paths (columns ending in "path") and integers (sizes, mtimes, parameters);
    `values` maps each kept column to its dtype.  With `folder` None nothing is kept and every
    record is computed: the same code path with and without a work folder."""

    def __init__(self, folder: Path | None, name: str, key: list[str], values: dict, flush_every: int,
                 label: str):
        self.dir = None if folder is None else Path(folder)
        self.name = name
        self.main = None if folder is None else self.dir / f"{name}.parquet"
        self.key = list(key)
        self.values = list(values)
        self.dtypes = {column: str if column.endswith("path") else np.int64 for column in self.key} | values
        self.flush_every = flush_every
        self.label = label  # the stage, for the notice about a cache it cannot read
        self.pending: list[tuple] = []

    def _parts(self) -> list[Path]:
        return sorted(self.dir.glob("part_*.parquet"))

    def _empty(self) -> pd.DataFrame:
        return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in self.dtypes.items()})

    def load(self) -> pd.DataFrame:
        """The records kept (the latest of a key wins); none where the folder cannot be read: a
        cache is only ever a shortcut, so one that is damaged, not ours or of another version is
        ignored with a notice and everything is computed again (and it is then overwritten)."""
        if self.dir is None:
            return self._empty()
        files = ([self.main] if self.main.exists() else []) + self._parts()
        try:
            frames = [pd.read_parquet(path, columns=list(self.dtypes)).astype(self.dtypes) for path in files]
        except (OSError, ValueError, KeyError, TypeError) as error:
            notice(f"{self.label}: ignoring the {self.name} records in {self.dir} ({error}); "
                   f"every one is computed again")
            return self._empty()
        if not frames:
            return self._empty()
        return pd.concat(frames, ignore_index=True).drop_duplicates(self.key, keep="last", ignore_index=True)

    def add(self, key: tuple, values: tuple) -> None:
        if self.dir is None:
            return
        self.pending.append((*key, *values))
        if len(self.pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        parts = self._parts()
        number = int(parts[-1].stem.split("_")[1]) + 1 if parts else 0
        with atomic_path(self.dir / f"part_{number:06d}.parquet") as tmp:
            pd.DataFrame(self.pending, columns=list(self.dtypes)).astype(self.dtypes).to_parquet(tmp, index=False)
        self.pending = []

    def compact(self, records: pd.DataFrame) -> None:
        """Keep `records` (the run's own, complete) as <name>.parquet, and no part."""
        self.flush()
        if self.dir is None:
            return
        parts = self._parts()
        with atomic_path(self.main) as tmp:
            records[list(self.dtypes)].astype(self.dtypes).to_parquet(tmp, index=False)
        for path in parts:
            path.unlink()

    def complete(self, keys: pd.DataFrame, compute: Callable[[pd.DataFrame], Iterator[tuple]],
                 desc: str) -> tuple[pd.DataFrame, int]:
        """`keys` (key columns, one row per record) with their values, and how many were computed.

        Values kept here are reused; the others come from `compute(rows)`, given the key rows
        still missing and yielding one tuple of values per row in their order, and are kept as
        they come, so a failure part-way (an unreadable file, a kill) keeps those made before it.
        The folder is then compacted to these records."""
        known = keys[self.key].merge(self.load(), on=self.key, how="left")
        todo = np.flatnonzero(known[self.values].isna().any(axis=1).to_numpy())
        rows = known.loc[todo, self.key]
        made = []
        computed = compute(rows)  # before the bar: it may announce what it is about to do
        try:
            with progress(total=len(todo), desc=desc) as bar:
                row_keys = zip(*(rows[column].tolist() for column in self.key))  # faster than itertuples
                for key, values in zip(row_keys, computed, strict=True):
                    self.add(key, values)
                    made.append(values)
                    bar.update()
        finally:
            self.flush()
        for number, column in enumerate(self.values):
            filled = known[column].to_numpy(copy=True)
            filled[todo] = [values[number] for values in made]
            known[column] = filled
        self.compact(known)
        return known, len(todo)
