"""Stage `prepare`: the existing paired datasets, the clean pool, the test and OOD sets, and
their intensity statistics in the released JSON format.

Built-in data (no download) or the user's folders and manifests (validated before any
work).  Outputs one folder, written atomically:

    train.csv  test.csv  ood.csv  clean_pool.csv   manifests (gendeg.data.manifest columns)
    stats/<degradation>/Mu_<ds>.json ...           our histograms, released layout
    summary.json                                   counts per degradation / dataset / split
    images/                                        built-in images (user images stay put)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gendeg.data.images import read_image
from gendeg.data.manifest import write_manifest
from gendeg.data.pairs import load_square
from gendeg.data.reference import released_stats_dir
from gendeg.intensity.definition import mu_sigma
from gendeg.intensity.sampler import histogram_w1
from gendeg.intensity.stats import load_intensity_stats, write_official_stats
from gendeg.pipeline import tracking
from gendeg.runtime.atomic import atomic_dir, write_json
from gendeg.runtime.progress import notice, progress

SPLITS = ("train", "test", "ood")


def _fill_intensity(frame: pd.DataFrame, description: str) -> pd.DataFrame:
    """Compute (mu, sigma) of pairs that lack them, as the paper defines them."""
    missing = frame.index[frame["mu"].isna() | frame["sigma"].isna()]
    for index in progress(missing, desc=description):
        mu, sigma = mu_sigma(read_image(frame.at[index, "target_path"]), read_image(frame.at[index, "image_path"]))
        frame.at[index, "mu"], frame.at[index, "sigma"] = mu, sigma
    return frame


def clean_pool(train: pd.DataFrame, extra: pd.DataFrame | None) -> pd.DataFrame:
    """Clean images synthesis may degrade: targets of the existing training pairs (labelled
    with the degradation of their dataset, so synthesis can pick *other* degradations' scenes)
    plus any extra clean folders (degradation "")."""
    columns = ["image_path", "dataset", "degradation", "scene", "caption"]
    pool = train.drop_duplicates("target_path")[["target_path", *columns[1:]]].rename(columns={"target_path": "image_path"})
    if extra is not None and len(extra):
        extra = extra.assign(degradation="")[columns]
        pool = pd.concat([pool, extra], ignore_index=True)
    return pool.sort_values(["degradation", "dataset", "image_path"], kind="stable").reset_index(drop=True)


def calibration(train: pd.DataFrame) -> dict:
    """W1 distance of each built-in stand-in's mu / sigma to the real dataset it imitates."""
    from gendeg.data.standins import STANDINS

    released = load_intensity_stats(released_stats_dir())
    specs = {spec.name: spec for spec in STANDINS if spec.reference}
    table = {}
    for name, group in train.groupby("dataset"):
        spec = specs.get(name)
        if spec is None:
            continue
        real = released[spec.degradation]
        table[name] = {
            "imitates": spec.imitates,
            "mu_w1": histogram_w1(group["mu"].to_numpy(), real.mu_counts[spec.reference], "mu"),
            "sigma_w1": histogram_w1(group["sigma"].to_numpy(), real.sigma_counts[spec.reference], "sigma"),
            "n": int(len(group)),
        }
    return table


def _summary(frames: dict[str, pd.DataFrame], pool: pd.DataFrame) -> dict:
    summary = {"clean_pool": int(len(pool))}
    for split, frame in frames.items():
        summary[split] = {
            "pairs": int(len(frame)),
            "per_degradation": {k: int(v) for k, v in frame.groupby("degradation").size().items()},
            "per_dataset": {k: int(v) for k, v in frame.groupby("dataset").size().items()},
            "mu_mean": float(frame["mu"].mean()) if len(frame) else None,  # JSON has no NaN
        }
    return summary


def _relocate(frames: dict[str, pd.DataFrame], tmp: Path, final: Path) -> None:
    """Paths were written under the temporary folder; point them at the final one."""
    for frame in frames.values():
        for column in ("image_path", "target_path"):
            frame[column] = frame[column].str.replace(str(tmp), str(final), regex=False)


def prepare(config: dict, out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    with tracking.job_run("prepare", "prepare", config) as run:
        with atomic_dir(out_dir) as tmp:
            summary, frames = _build(config, tmp, out_dir, run)
        run.log_artifact(out_dir / "summary.json")
        run.log_image(_contact_sheet(frames["train"]), "train_pairs.png")
    return summary


def _build(config: dict, tmp: Path, out_dir: Path, run) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Everything prepare writes, into the temporary folder `tmp` (paths point at `out_dir`)."""
    data = config["data"]
    extra_clean = None
    if data["source"] == "builtin":
        from gendeg.data.builtin_data import build_builtin

        frames = build_builtin(data["builtin"], tmp, seed=config["seed"])
        _relocate(frames, tmp, out_dir)
    else:
        from gendeg.data.ingest import ingest_all, write_problem_report

        result = ingest_all(data["user"])
        frames = {split: getattr(result, split) for split in SPLITS}
        extra_clean = result.clean
        write_problem_report(result.problems, tmp / "problems.csv")
        run.log_metrics({"bad_inputs_skipped": len(result.problems)})
        if result.problems:  # skip mode: never quiet about what was left out
            notice(f"prepare: skipped {len(result.problems)} bad input file(s) (data.user.on_bad_input: skip); "
                   f"the list with reasons: {out_dir / 'problems.csv'}")
    frames = {split: _fill_intensity(frames[split], f"intensity ({split})") for split in SPLITS}
    for split in SPLITS:
        write_manifest(frames[split], tmp / f"{split}.csv")
    pool = clean_pool(frames["train"], extra_clean)
    pool.to_csv(tmp / "clean_pool.csv", index=False, lineterminator="\n")
    write_official_stats(frames["train"], tmp / "stats")
    summary = _summary(frames, pool)
    if data["source"] == "user":
        summary["skipped_inputs"] = {"count": len(result.problems), "list": (out_dir / "problems.csv").as_posix()}
    if data["source"] == "builtin":
        summary["calibration"] = calibration(frames["train"])
        for name, row in summary["calibration"].items():
            run.log_metrics({f"calibration.{name}.mu_w1": row["mu_w1"], f"calibration.{name}.sigma_w1": row["sigma_w1"]})
    write_json(summary, tmp / "summary.json")
    run.log_metrics({f"pairs.{split}": len(frame) for split, frame in frames.items()})
    return summary, frames


def _contact_sheet(frame: pd.DataFrame, per_degradation: int = 3, size: int = 64) -> np.ndarray:
    """Rows of (clean, degraded) pairs, a few per degradation: what the existing data looks like."""
    rows = []
    for _, group in frame.groupby("degradation", sort=True):
        picks = group.iloc[np.linspace(0, len(group) - 1, min(per_degradation, len(group))).astype(int)]
        tiles = [np.concatenate([load_square(r.target_path, size), load_square(r.image_path, size)], axis=1)
                 for r in picks.itertuples()]
        rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return np.concatenate(rows, axis=0).astype(np.float32) / 255.0
