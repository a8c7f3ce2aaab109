"""Each kind of source (paired folders, a pair manifest, the GenDS manifest, a clean folder)
-> candidate manifest rows.  Nothing here opens an image: pixels are validation's job.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gendeg import DEGRADATIONS
from gendeg.data.ingest.problems import Problem
from gendeg.data.ingest.specs import PAIRED_SPLITS, CleanFolderSpec, GenDSSpec, PairedFolderSpec, PairedManifestSpec
from gendeg.data.ingest.validation import IMAGE_EXTENSIONS, list_images, list_other_files, not_an_image

# Spellings other tools (and the GenDS release: "motion blur", "low-light") use for our names.
_DEGRADATION_ALIASES = {
    "blur": "motion_blur",
    "motion": "motion_blur",  # the GenDS card's degradation_sub_type for generated motion blur
    "motionblur": "motion_blur",
    "lowlight": "low_light",
    "hazy": "haze",
    "rainy": "rain",
    "rain_streak": "rain",
    "snowy": "snow",
    "rain_drop": "raindrop",
    "raindrops": "raindrop",
}


@dataclass
class SourceRows:
    """Candidate pairs of one source, problems with single files, and problems that stop the run."""

    rows: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    fatal: list[Problem] = field(default_factory=list)


def canonical_degradation(name: str) -> str | None:
    """'motion blur', 'Low-Light', 'raindrops' -> our names; None when it is not one we know."""
    key = re.sub(r"[\s\-]+", "_", str(name).strip().lower())
    key = _DEGRADATION_ALIASES.get(key, key)
    return key if key in DEGRADATIONS else None


def _key(pattern: re.Pattern, path: Path) -> str | None:
    """The pair key of a file, or None when the regex does not match or captures nothing."""
    match = pattern.search(path.stem)
    return (match.group("key") or None) if match else None


def _keyed(folder: Path, pattern: re.Pattern, recursive: bool, side: str, spec: PairedFolderSpec,
           out: SourceRows) -> dict[str, list[Path]]:
    """Files of one side grouped by pair key; files whose name the regex does not match are problems."""
    files = list_images(folder, recursive)
    if not files:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        out.fatal.append(Problem(str(folder), spec.name, f"{side}_dir holds no images ({extensions})"))
    out.problems += [Problem(path.as_posix(), spec.name, not_an_image(path)) for path in list_other_files(folder, recursive)]
    groups: dict[str, list[Path]] = {}
    for path in files:
        key = _key(pattern, path)
        if key is None:
            out.problems.append(Problem(path.as_posix(), spec.name,
                                        f"file name {path.stem!r} does not match key_regex {pattern.pattern!r}"))
        else:
            groups.setdefault(key, []).append(path)
    return groups


def rows_from_folders(spec: PairedFolderSpec) -> SourceRows:
    """Pair degraded and clean files by key; several degraded files may share one clean file."""
    out = SourceRows()
    degraded = _keyed(spec.degraded_dir, spec.key_regex, spec.recursive, "degraded", spec, out)
    clean = _keyed(spec.clean_dir, spec.clean_key_regex, spec.recursive, "clean", spec, out)
    for key, paths in clean.items():
        if len(paths) > 1:
            for path in paths:
                others = ", ".join(p.as_posix() for p in paths if p != path)
                out.problems.append(Problem(path.as_posix(), spec.name,
                                            f"clean files share the pair key {key!r} (also {others}); cannot tell which is the target"))
        if key not in degraded:
            for path in paths:
                out.problems.append(Problem(path.as_posix(), spec.name,
                                            f"no degraded counterpart with key {key!r} in {spec.degraded_dir}"))
    pairs: list[tuple[Path, Path]] = []
    for key, paths in degraded.items():
        targets = clean.get(key, [])
        if not targets:
            for path in paths:
                out.problems.append(Problem(path.as_posix(), spec.name,
                                            f"no clean counterpart with key {key!r} in {spec.clean_dir}"))
        elif len(targets) == 1:
            pairs += [(path, targets[0]) for path in paths]
    pairs.sort(key=lambda pair: pair[0].relative_to(spec.degraded_dir).as_posix())
    out.rows = [
        {"image_path": d.as_posix(), "target_path": c.as_posix(), "dataset": spec.name,
         "degradation": spec.degradation, "split": spec.split}
        for d, c in pairs
    ]
    return out


def _read_table(path: Path, required: list[str], dataset: str, out: SourceRows) -> pd.DataFrame | None:
    """CSV or Parquet, every value as text; missing columns are fatal (the file is the wrong one)."""
    try:
        if path.suffix.lower() == ".parquet":
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as error:  # pandas raises many types for a malformed file
        out.fatal.append(Problem(str(path), dataset, f"cannot read manifest: {error}"))
        return None
    missing = [column for column in required if column not in table.columns]
    if missing:
        out.fatal.append(Problem(str(path), dataset,
                                 f"manifest is missing column(s) {missing}; it has {list(table.columns)}"))
        return None
    return table


def _text(value) -> str:
    """A table cell as stripped text; missing cells (None, NaN from Parquet) are ""."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()


def _resolve(root: Path, value) -> str:
    text = _text(value)
    if not text:
        return ""
    path = Path(text).expanduser()
    return (path if path.is_absolute() else root / path).as_posix()


def _paths(table_row, root: Path, manifest: Path, index: int, dataset: str, out: SourceRows) -> tuple[str, str] | None:
    image, target = _resolve(root, table_row["image_path"]), _resolve(root, table_row["target_path"])
    if not image or not target:
        out.problems.append(Problem(f"{manifest} row {index + 1}", dataset, "empty image_path or target_path"))
        return None
    return image, target


def rows_from_manifest(spec: PairedManifestSpec) -> SourceRows:
    """Pairs listed in a CSV/Parquet table (image_path = degraded, target_path = clean), in file order."""
    out = SourceRows()
    table = _read_table(spec.manifest, ["image_path", "target_path"], spec.name, out)
    if table is None:
        return out
    for index, table_row in enumerate(table.to_dict("records")):
        paths = _paths(table_row, spec.root, spec.manifest, index, spec.name, out)
        if paths:
            out.rows.append({"image_path": paths[0], "target_path": paths[1], "dataset": spec.name,
                             "degradation": spec.degradation, "split": spec.split,
                             "caption": _text(table_row.get("caption"))})
    return out


_GENDS_KEPT = ("mu", "sigma", "random_sampled", "sampled_dataset")
ORIGINAL = "Original"


def _gends_row(table_row: dict) -> tuple[str | None, str, list[str]]:
    """(degradation the pair shows, our degradation_sub_type, reasons it cannot be placed) of one row.

    On the dataset card, `dataset`, `degradation` and `category` describe the SOURCE clean image
    (its dataset, that dataset's degradation, whether that dataset is Real or Synthetic);
    `degradation_sub_type` is "Original" for an existing pair and, for a generated one, the
    degradation GenDeg applied ("haze", "motion", ...).  So a pair shows `degradation` when it is
    an original and `degradation_sub_type` otherwise, and it is generated exactly when its
    sub-type is not "Original".  Our own manifests (gendeg.data.manifest) write the applied
    degradation in both columns of a generated row, so this one rule reads both layouts alike.
    """
    sub_type = _text(table_row.get("degradation_sub_type")) or ORIGINAL
    if sub_type.lower() == ORIGINAL.lower():
        degradation = canonical_degradation(table_row["degradation"])
        reason = f"unknown degradation {table_row['degradation']!r}; expected one of {list(DEGRADATIONS)}"
        return degradation, ORIGINAL, [] if degradation else [reason]
    degradation = canonical_degradation(sub_type)
    reason = f"unknown degradation_sub_type {sub_type!r}; expected 'Original' or one of {list(DEGRADATIONS)}"
    return degradation, degradation or "", [] if degradation else [reason]


def rows_from_gends(spec: GenDSSpec) -> SourceRows:
    """Rows of the released GenDS manifest (the dataset card's layout), in our manifest's meaning.

    See _gends_row for the card's columns.  Each row becomes: `degradation` = the degradation the
    pair shows, `category` = "Synthetic" for a generated pair (sub-type not "Original") and "Real"
    for an existing one -- our stages' meaning of both columns (gendeg.data.manifest); the card's
    per-source Real/Synthetic label is not kept.  `dataset` stays the source dataset, as on the
    card.  mu/sigma and sampling provenance are kept; rows we cannot place are problems.
    """
    out = SourceRows()
    table = _read_table(spec.manifest, ["image_path", "target_path", "dataset", "degradation", "split"], spec.name, out)
    if table is None:
        return out
    for index, table_row in enumerate(table.to_dict("records")):
        paths = _paths(table_row, spec.root, spec.manifest, index, spec.name, out)
        if not paths:
            continue
        dataset = _text(table_row["dataset"]) or spec.name
        degradation, sub_type, reasons = _gends_row(table_row)
        split = _text(table_row["split"]).lower()
        if split not in PAIRED_SPLITS:
            reasons.append(f"unknown split {table_row['split']!r}; expected one of {list(PAIRED_SPLITS)}")
        if reasons:
            out.problems.append(Problem(paths[0], dataset, "; ".join(reasons)))
            continue
        row = {"image_path": paths[0], "target_path": paths[1], "dataset": dataset, "degradation": degradation,
               "category": "Real" if sub_type == ORIGINAL else "Synthetic", "degradation_sub_type": sub_type,
               "split": split}
        row.update({column: table_row[column] for column in _GENDS_KEPT
                    if _text(table_row.get(column)) != ""})
        if _text(table_row.get("caption")):
            row["caption"] = _text(table_row["caption"])
        out.rows.append(row)
    return out


def rows_from_clean_folder(spec: CleanFolderSpec) -> SourceRows:
    """One row per clean image: image_path = target_path = the file, split "clean", no degradation."""
    out = SourceRows()
    files = list_images(spec.dir, spec.recursive)
    if not files:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        out.fatal.append(Problem(str(spec.dir), spec.name, f"dir holds no images ({extensions})"))
    out.problems += [Problem(path.as_posix(), spec.name, not_an_image(path))
                     for path in list_other_files(spec.dir, spec.recursive)]
    out.rows = [{"image_path": path.as_posix(), "target_path": path.as_posix(), "dataset": spec.name,
                 "degradation": "", "split": "clean"} for path in files]
    return out
