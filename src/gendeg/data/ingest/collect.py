"""Configured sources -> validated manifest frames (train / test / ood / clean) + problems.

Order of work: parse every config entry, list every source (no pixels yet), stop on config
problems; then check every file once, drop bad pairs and duplicates, and either raise one
error listing every bad file (`fail`) or return the problems for a report (`skip`).
Nothing on disk is touched: files are only read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gendeg.data.ingest.captions import add_captions_and_phrases
from gendeg.data.ingest.fingerprint import outside_folder
from gendeg.data.ingest.problems import CONFIG_HINT, IngestError, OnBad, Problem, check_on_bad, raise_if_any
from gendeg.data.ingest.sources import (
    SourceRows,
    rows_from_clean_folder,
    rows_from_folders,
    rows_from_gends,
    rows_from_manifest,
)
from gendeg.data.ingest.specs import (
    CleanFolderSpec,
    GenDSSpec,
    PairedFolderSpec,
    PairedManifestSpec,
    parse_clean,
    parse_paired,
)
from gendeg.data.ingest.validation import ImageChecker, drop_duplicates, validate_pairs
from gendeg.data.manifest import make_frame

USER_KEYS = ("folder", "on_bad_input", "workers", "paired", "ood", "clean", "captioner")
# Duplicates are resolved in this order, so a copy of a benchmark image leaves training, not the benchmark.
SPLIT_PRIORITY = ("ood", "test", "train", "clean")

Spec = PairedFolderSpec | PairedManifestSpec | GenDSSpec | CleanFolderSpec


@dataclass
class IngestResult:
    """Validated pairs per split (gendeg.data.manifest frames) and every problem found on the way.

    `clean` holds the extra clean-image pools: image_path = target_path = the clean file,
    degradation "" and split "clean".
    """

    train: pd.DataFrame = field(default_factory=lambda: make_frame([]))
    test: pd.DataFrame = field(default_factory=lambda: make_frame([]))
    ood: pd.DataFrame = field(default_factory=lambda: make_frame([]))
    clean: pd.DataFrame = field(default_factory=lambda: make_frame([]))
    problems: list[Problem] = field(default_factory=list)


def _rows_of(spec: Spec) -> SourceRows:
    readers: dict[type, Callable[[Any], SourceRows]] = {
        PairedFolderSpec: rows_from_folders,
        PairedManifestSpec: rows_from_manifest,
        GenDSSpec: rows_from_gends,
        CleanFolderSpec: rows_from_clean_folder,
    }
    return readers[type(spec)](spec)


def _check_inside(source: SourceRows, dataset: str, folder: str) -> None:
    """Files outside data.user.folder stop the run, in both modes: DVC would not see them change, and
    skipping them could drop a whole dataset.  One problem per dataset, naming the first such file.
    Checked once per parent folder (an image file is never a symlinked folder): a GenDS manifest
    lists hundreds of thousands of files in a few folders."""
    parents: dict[str, bool] = {}

    def outside(path: str) -> bool:
        parent = os.path.dirname(path)
        if parent not in parents:
            parents[parent] = outside_folder(parent, folder)
        return parents[parent]

    away = [path for row in source.rows for path in (row["image_path"], row["target_path"]) if outside(path)]
    if away:
        source.fatal.append(Problem(away[0], dataset, f"{len(away)} file(s) of this dataset lie outside "
                                                      f"data.user.folder ({folder}), where DVC would not see them "
                                                      f"change; move them under it (this is the first)"))


def _ingest(specs: Sequence[Spec], on_bad: OnBad, workers: int | None, folder: str | None = None) -> IngestResult:
    """List all sources, stop on fatal problems, then validate pixels and drop duplicates.

    `folder`: data.user.folder (the pipeline always sets it); files outside it are fatal.
    """
    listed = [_rows_of(spec) for spec in specs]
    for spec, source in zip(specs, listed, strict=True):
        add_captions_and_phrases(spec, source)
    if folder is not None:
        for spec, source in zip(specs, listed, strict=True):
            _check_inside(source, spec.name, folder)
    fatal = [problem for source in listed for problem in source.fatal]
    if fatal:
        raise IngestError(fatal, hint=CONFIG_HINT)
    checker = ImageChecker(workers)
    rows: list[dict] = []
    problems: list[Problem] = []
    for spec, source in zip(specs, listed, strict=False):
        kept, bad_files = validate_pairs(source.rows, checker, desc=f"validating {spec.name}")
        rows += kept
        problems += source.problems + bad_files
    by_priority = sorted(rows, key=lambda row: SPLIT_PRIORITY.index(row["split"]))  # stable: source order kept
    unique, duplicates = drop_duplicates(by_priority, checker)
    problems += duplicates
    raise_if_any(problems, on_bad)
    frames = {split: make_frame([row for row in unique if row["split"] == split]) for split in SPLIT_PRIORITY}
    return IngestResult(**frames, problems=problems)


def _parsed(result: tuple[Spec | None, list[Problem]]) -> Spec:
    spec, problems = result
    if problems:
        raise IngestError(problems, hint=CONFIG_HINT)
    assert spec is not None
    return spec


def ingest_paired(spec: Mapping[str, Any], on_bad: OnBad = "fail", *, workers: int | None = None) -> IngestResult:
    """One `data.user.paired` entry -> pairs in `train` or `test` (GenDS: both, per row).

    Keys (exactly one source):
      name, degradation, split (train|test, default train), and either
        degraded_dir, clean_dir [, key_regex, clean_key_regex, recursive]   paired folders
        manifest [, root]                      CSV/Parquet with image_path, target_path
      or gends_manifest [, root, name, phrases] the released GenDS manifest (its own
                                               dataset/degradation/split columns)
    and optionally captions (a CSV/Parquet of image_path, caption) and phrase (the dataset's
    own prompt phrase); see gendeg.data.ingest.captions.
    key_regex maps a file-name stem to the pair key with a named group `key` (default: the
    whole stem); clean_key_regex defaults to key_regex.  Relative manifest paths are
    resolved against `root` (default: the manifest's folder).
    """
    return _ingest([_parsed(parse_paired(spec, "paired spec"))], check_on_bad(on_bad), workers)


def ingest_ood(spec: Mapping[str, Any], on_bad: OnBad = "fail", *, workers: int | None = None) -> IngestResult:
    """One `data.user.ood` entry (paired folders or a manifest, as for ingest_paired) -> `ood` frame."""
    return _ingest([_parsed(parse_paired(spec, "ood spec", ood=True))], check_on_bad(on_bad), workers)


def ingest_clean_folder(spec: Mapping[str, Any], on_bad: OnBad = "fail", *, workers: int | None = None) -> IngestResult:
    """One `data.user.clean` entry {name, dir [, recursive]} -> `clean` frame."""
    return _ingest([_parsed(parse_clean(spec, "clean spec"))], check_on_bad(on_bad), workers)


def _entries(user_cfg: Mapping[str, Any], key: str, problems: list[Problem]) -> list:
    value = user_cfg.get(key) or []
    if not isinstance(value, list):
        problems.append(Problem("params.yaml", f"data.user.{key}", f"must be a list, got {type(value).__name__}"))
        return []
    return value


def ingest_all(user_cfg: Mapping[str, Any] | None) -> IngestResult:
    """All of `data.user` -> IngestResult; see gendeg.data.ingest's docstring for the YAML shape.

    Raises IngestError listing every config problem (always) or every bad file (with
    on_bad_input: fail, the default).
    """
    user_cfg = user_cfg or {}
    problems: list[Problem] = []
    if not isinstance(user_cfg, Mapping):
        raise IngestError([Problem("params.yaml", "data.user", f"must be a mapping, got {user_cfg!r}")])
    unknown = sorted(set(user_cfg) - set(USER_KEYS))
    if unknown:
        problems.append(Problem("params.yaml", "data.user", f"unknown key(s) {unknown}; allowed: {list(USER_KEYS)}"))
    on_bad = check_on_bad(user_cfg.get("on_bad_input", "fail"))
    workers = user_cfg.get("workers")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        problems.append(Problem("params.yaml", "data.user.workers", f"must be a positive integer, got {workers!r}"))
        workers = None
    captioner = user_cfg.get("captioner")
    if captioner is not None and (not isinstance(captioner, str) or not captioner.strip()):
        problems.append(Problem("params.yaml", "data.user.captioner",
                                f"must be null or the path of a local BLIP-2 folder, got {captioner!r}"))
    elif captioner is not None and not Path(captioner).expanduser().is_dir():
        problems.append(Problem(captioner, "data.user.captioner", "is not an existing folder (a saved BLIP-2 model)"))
    parsed: list[tuple[Spec | None, list[Problem]]] = []
    parsed += [parse_paired(e, f"data.user.paired[{i}]") for i, e in enumerate(_entries(user_cfg, "paired", problems))]
    parsed += [parse_paired(e, f"data.user.ood[{i}]", ood=True) for i, e in enumerate(_entries(user_cfg, "ood", problems))]
    parsed += [parse_clean(e, f"data.user.clean[{i}]") for i, e in enumerate(_entries(user_cfg, "clean", problems))]
    specs = [spec for spec, _ in parsed if spec is not None]
    problems += [problem for _, entry_problems in parsed for problem in entry_problems]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            problems.append(Problem("params.yaml", spec.name, "dataset name used by more than one data.user entry"))
        seen.add(spec.name)
    if problems:
        raise IngestError(problems, hint=CONFIG_HINT)
    return _ingest(specs, on_bad, workers, user_cfg.get("folder"))
