"""Stage `prepare`: the existing paired datasets, the clean pool, the test and OOD sets, and
their intensity statistics in the released JSON format.

Built-in data (no download) or the user's folders and manifests (validated before any
work).  Outputs one folder, written atomically:

    train.csv  test.csv  ood.csv  clean_pool.csv   manifests (gendeg.data.manifest columns)
    stats/<degradation>/Mu_<ds>.json ...           our histograms, released layout
    summary.json                                   counts per degradation / dataset / split
    images/                                        built-in images (user images stay put)

(mu, sigma) of pairs that lack them (user data) are measured over the job's cores (params.yaml
`threads:`), and with a work folder (`--work checkpoints/prepare`, not an output) a re-run or a
resumed killed run reads again only the files that are new or changed since they were measured.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from gendeg.data.images import read_image
from gendeg.data.manifest import write_manifest
from gendeg.data.pairs import load_square
from gendeg.data.reference import released_stats_dir
from gendeg.intensity.definition import STATS_SIZE, mu_sigma
from gendeg.intensity.sampler import histogram_w1
from gendeg.intensity.stats import load_intensity_stats, write_official_stats
from gendeg.pipeline import tracking
from gendeg.runtime.atomic import atomic_dir, write_json
from gendeg.runtime.file_records import FileRecords, stat_files
from gendeg.runtime.progress import notice

SPLITS = ("train", "test", "ood")


# A pair's (mu, sigma) depend only on its two files and the measuring size: a record is reused
# while both files keep the size and mtime they had when it was measured.
CACHE_KEY = ["image_path", "image_size", "image_mtime_ns", "target_path", "target_size", "target_mtime_ns",
             "stats_size"]
FLUSH_EVERY = 2000  # pairs measured between cache writes: what a killed prepare measures again at most


def _measure(pair: tuple[str, str]) -> tuple[float, float]:
    """(mu, sigma) of one (clean, degraded) file pair.  Module level: worker processes import it."""
    target, image = pair
    return mu_sigma(read_image(target), read_image(image), STATS_SIZE)


def _measured(pairs: list[tuple[str, str]], workers: int):
    """(mu, sigma) of each pair, in input order whatever `workers` is, so the outputs' bytes are too.

    Workers come from a fork server, not a fork of this process: this one runs other threads
    (tqdm's monitor, native ones), and a fork of a multi-threaded process may deadlock.  The
    server is a fresh process that imports this module once (~2-3 s, torch included) and forks
    each worker ready to measure; 'spawn' would import it again in every worker (measured here:
    5-8 s for two).  Chunks of several pairs keep the inter-process traffic small beside the
    decoding.  Threads instead of processes: no faster at 256 px (the GIL)."""
    if workers <= 1 or len(pairs) < 2:
        yield from map(_measure, pairs)
        return
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:  # Windows
        context = multiprocessing.get_context("spawn")
    chunk = max(1, min(64, len(pairs) // (workers * 16)))
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(_measure, pairs, chunksize=chunk)


class IntensityCache(FileRecords):
    """(mu, sigma) already measured, one small row per pair (never an image), in prepare's work
    folder as intensity.parquet (gendeg.runtime.file_records): reused while both files of the pair
    and the measuring size are unchanged."""

    def __init__(self, work_dir: Path | None):
        super().__init__(work_dir, "intensity", CACHE_KEY, {"mu": np.float64, "sigma": np.float64},
                         FLUSH_EVERY, "prepare")


def _file_keys(image_paths, target_paths) -> pd.DataFrame:
    """Each pair's cache key from a stat of its files (no read)."""
    keys = pd.concat([stat_files(image_paths, "image_"), stat_files(target_paths, "target_")], axis=1)
    return keys.assign(stats_size=np.int64(STATS_SIZE))[CACHE_KEY]


def measure_pairs(image_paths, target_paths, workers: int = 1,
                  work_dir: Path | None = None) -> tuple[pd.DataFrame, int]:
    """(mu, sigma) of each (degraded, clean) pair, in order, and how many pairs were read.

    Over `workers` processes; with `work_dir`, pairs whose files are unchanged since they were
    measured there are not read again, and what is measured is kept there for the next run."""
    keys = _file_keys(image_paths, target_paths)
    unique = keys.drop_duplicates(CACHE_KEY, ignore_index=True)

    def measure(rows: pd.DataFrame):
        processes = max(1, min(workers, len(rows)))
        notice(f"prepare: (mu, sigma) of {len(unique)} pair(s): {len(unique) - len(rows)} unchanged since measured, "
               f"{len(rows)} to measure on {processes} process(es)")
        return _measured(list(zip(rows["target_path"], rows["image_path"])), processes)

    known, measured = IntensityCache(work_dir).complete(unique, measure, "intensity (mu, sigma)")
    return keys.merge(known, on=CACHE_KEY, how="left")[["mu", "sigma"]], measured


def _fill_intensity(frames: dict[str, pd.DataFrame], workers: int, work_dir: Path | None) -> int:
    """Compute (mu, sigma) of pairs that lack them, as the paper defines them (all splits in one
    pass over the job's cores); returns how many pairs were read."""
    missing = {split: frame.index[frame["mu"].isna() | frame["sigma"].isna()] for split, frame in frames.items()}
    if not any(len(index) for index in missing.values()):
        return 0  # built-in data come measured; the work folder is left as it is
    wanted = [frames[split].loc[index, ["image_path", "target_path"]] for split, index in missing.items()]
    wanted = pd.concat(wanted, ignore_index=True)
    values, measured = measure_pairs(wanted["image_path"].tolist(), wanted["target_path"].tolist(), workers, work_dir)
    start = 0
    for split, index in missing.items():
        for name in ("mu", "sigma"):
            frames[split].loc[index, name] = values[name].to_numpy()[start:start + len(index)]
        start += len(index)
    return measured


def _fill_captions(train: pd.DataFrame, extra: pd.DataFrame | None, folder: str, work_dir: Path | None) -> int:
    """BLIP-2 captions (gendeg.data.ingest.blip2) for blank captions of the training pairs' clean
    images and of the extra clean pools, in place; returns how many rows were filled."""
    from gendeg.data.ingest.blip2 import caption_images

    parts = [(train, "target_path")] + ([(extra, "image_path")] if extra is not None and len(extra) else [])
    blank = [(frame, column, frame.index[frame["caption"].str.strip() == ""]) for frame, column in parts]
    paths = [path for frame, column, index in blank for path in frame.loc[index, column]]
    captions = iter(caption_images(paths, folder, work_dir))
    for frame, column, index in blank:
        frame.loc[index, "caption"] = [next(captions) for _ in index]
    return len(paths)


def clean_pool(train: pd.DataFrame, extra: pd.DataFrame | None) -> pd.DataFrame:
    """Clean images synthesis may degrade: targets of the existing training pairs (labelled
    with the degradation of their dataset, so synthesis can pick *other* degradations' scenes)
    plus any extra clean folders (degradation "")."""
    columns = ["image_path", "dataset", "degradation", "scene", "caption"]
    train = train[train["category"] == "Real"]  # a generated pair's clean image is a copy of a real pair's
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


def prepare(config: dict, out_dir: Path, work_dir: Path | None = None) -> dict:
    """`work_dir` (checkpoints/prepare under the orchestrators) keeps measured (mu, sigma) for the
    next run; without it every pair lacking them is measured."""
    out_dir = Path(out_dir)
    with tracking.job_run("prepare", "prepare", config) as run:
        with atomic_dir(out_dir) as tmp:
            summary, frames = _build(config, tmp, out_dir, run, work_dir)
        run.log_artifact(out_dir / "summary.json")
        run.log_image(_contact_sheet(frames["train"]), "train_pairs.png")
    return summary


def _build(config: dict, tmp: Path, out_dir: Path, run, work_dir: Path | None) -> tuple[dict, dict[str, pd.DataFrame]]:
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
    if data["source"] == "user" and data["user"].get("captioner"):
        run.log_metrics({"images_captioned": _fill_captions(frames["train"], extra_clean, data["user"]["captioner"],
                                                            work_dir)})
    measured = _fill_intensity({split: frames[split] for split in SPLITS}, config["threads"], work_dir)
    run.log_metrics({"intensity_pairs_measured": measured})
    for split in SPLITS:
        write_manifest(frames[split], tmp / f"{split}.csv")
    pool = clean_pool(frames["train"], extra_clean)
    pool.to_csv(tmp / "clean_pool.csv", index=False, lineterminator="\n")
    write_official_stats(frames["train"][frames["train"]["category"] == "Real"], tmp / "stats")  # not GenDS's generated rows
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
