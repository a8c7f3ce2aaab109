"""Pair manifests: the one table format every stage reads and writes.

The columns are those of the released GenDS manifest, so a user who has GenDS can feed it
straight in; a few extra columns record provenance that the release lacks (scene, per-sample
seed, requested intensity, the intensity GenDeg was conditioned on).  Paths are relative to
the project root or absolute.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from gendeg.runtime.atomic import atomic_path

# Columns of the released GenDS manifest (MISSION.md), in order.  Our meaning of two of them differs
# from the dataset card's, on purpose (the stages select by them): on the card `degradation` and
# `category` describe a row's SOURCE clean image (its dataset's degradation, Real / Synthetic dataset),
# here they describe the PAIR (the degradation it shows; GenDeg output or not).  The columns both
# layouts share -- dataset (the source), degradation_sub_type ("Original" or the applied degradation),
# split -- are all gendeg.data.ingest's GenDS reader uses, so it reads the card and our manifests alike.
GENDS_COLUMNS = [
    "image_path",  # degraded image
    "target_path",  # clean image
    "dataset",  # the source dataset (of the clean image, for a generated pair)
    "degradation",  # the degradation the pair shows (card: the source dataset's)
    "category",  # "Real" (existing pairs) or "Synthetic" (GenDeg output) (card: the source dataset's kind)
    "degradation_sub_type",  # "Original" or the generated degradation
    "split",  # train / test / ood
    "mu",
    "sigma",
    "random_sampled",  # True when (mu, sigma) were drawn uniformly (every 20th sample)
    "sampled_dataset",  # source dataset whose histogram (mu, sigma) was drawn from
]
# Provenance this project adds; optional on input, always written by our stages.  conditioning_*:
# the intensity GenDeg was given for a generated sample (the request after calibration).
EXTRA_COLUMNS = ["scene", "sample_seed", "requested_mu", "requested_sigma", "caption", "conditioning_mu",
                 "conditioning_sigma"]
REQUIRED_COLUMNS = ["image_path", "target_path", "dataset", "degradation", "split"]
# Written only when some row has one, so manifests without it keep their bytes: the dataset's own
# prompt phrase (data.user `phrase:`, e.g. "in snowy and hazy conditions" for CSD), blank = the
# degradation's phrase.  A generated row carries the phrase it was prompted with.
OPTIONAL_COLUMNS = ["phrase"]


class ManifestError(ValueError):
    """A manifest is missing columns or holds values no stage can use."""


def empty_row() -> dict:
    return {
        "category": "Real",
        "degradation_sub_type": "Original",
        "mu": math.nan,
        "sigma": math.nan,
        "random_sampled": False,
        "sampled_dataset": "",
        "scene": "",
        "sample_seed": -1,
        "requested_mu": math.nan,
        "requested_sigma": math.nan,
        "caption": "",
        "conditioning_mu": math.nan,
        "conditioning_sigma": math.nan,
    }


def make_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows (dicts) -> a frame with every column, in canonical order, defaults filled."""
    filled = [{**empty_row(), **row} for row in rows]
    optional = [c for c in OPTIONAL_COLUMNS if any(_present(row.get(c)) for row in rows)]
    frame = pd.DataFrame(filled, columns=GENDS_COLUMNS + EXTRA_COLUMNS + optional)
    return normalise(frame, source="<rows>")


def normalise(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ManifestError(f"{source}: missing required column(s) {missing}; has {list(frame.columns)}")
    defaults = empty_row()
    for column in GENDS_COLUMNS + EXTRA_COLUMNS:
        if column not in frame.columns:
            frame[column] = defaults.get(column, "")
    frame = frame[GENDS_COLUMNS + EXTRA_COLUMNS + [c for c in frame.columns if c not in GENDS_COLUMNS + EXTRA_COLUMNS]]
    for column in ("image_path", "target_path", "dataset", "degradation", "split", "category",
                   "degradation_sub_type", "sampled_dataset", "scene", "caption"):
        frame[column] = frame[column].astype("object").fillna("").astype(str)
    for column in OPTIONAL_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].astype("object").fillna("").astype(str)
            if not frame[column].str.strip().any():  # all blank: not written (the bytes of a manifest without it)
                frame = frame.drop(columns=column)
    for column in ("mu", "sigma", "requested_mu", "requested_sigma", "conditioning_mu", "conditioning_sigma"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["random_sampled"] = frame["random_sampled"].map(_as_bool).astype(bool)
    frame["sample_seed"] = pd.to_numeric(frame["sample_seed"], errors="coerce").fillna(-1).astype("int64")
    empty_paths = frame.index[(frame["image_path"] == "") | (frame["target_path"] == "")]
    if len(empty_paths):
        raise ManifestError(f"{source}: rows {list(empty_paths[:10])} have an empty image_path or target_path")
    return frame.reset_index(drop=True)


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and str(value).strip() != ""


def dataset_phrases(frame: pd.DataFrame, degradation: str) -> dict[str, str]:
    """{dataset: its own phrase} for the datasets of `degradation` that set one (data.user `phrase:`).

    Synthesis prompts a sample with the phrase of the dataset its intensity was drawn from, as the
    official code does (a request drawn from CSD's statistics says "snowy and hazy")."""
    if "phrase" not in frame:
        return {}
    rows = frame[(frame["degradation"] == degradation) & frame["phrase"].astype(str).str.strip().ne("")]
    return dict(zip(rows["dataset"], rows["phrase"].astype(str).str.strip(), strict=True))


def phrases_for(train_csv: str | Path, degradation: str, datasets) -> list[str]:
    """The phrase of each of `datasets` (blank: none) among the `degradation` datasets of a prepared train.csv."""
    phrases = dataset_phrases(read_manifest(train_csv), degradation)
    return [phrases.get(str(d), "") for d in datasets]


def _as_bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return bool(value)


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet manifest and bring it to the canonical columns."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"manifest not found: {path}")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    return normalise(frame, source=str(path))


def write_manifest(frame: pd.DataFrame, path: str | Path) -> None:
    """Write atomically, floats at fixed precision so the bytes are stable across runs."""
    frame = normalise(frame.copy(), source=str(path))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f", lineterminator="\n")
