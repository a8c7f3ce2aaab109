"""Stage `synthesize` (one job per degradation and shard): degrade clean images of the *other*
degradations' datasets with GenDeg, at (mu, sigma) drawn per sample as the released code does.

Scene cross-pollination is where the paper's diversity comes from: a haze job degrades the
scenes of the rain, snow, blur, low-light and raindrop datasets.  Work is streamed in chunks
into a work folder (memory flat in the number of images; a killed job resumes at the first
unfinished chunk) and moved into the declared output folder only when complete.

Shards (`synthesis.shards`, one job each) split a degradation's samples into runs of whole
batches: every job plans all of the degradation's samples (a cheap, pure function) and
generates its own slice, so a sample's source, request, seed and batch are the same whatever
the shard count, and so are its bytes (`merge` puts the shards back together).

With `synthesis.calibration.enabled`, the job first measures how the model's realised μ
follows the conditioning μ on a few of its own images and sends each request as the
conditioning that realises it (gendeg.synthesis.mu_calibration).

Output folder (one per shard): images/<index>.png (<index>: the sample's place in its
degradation), targets/<index>.png (the clean image exactly as the generator saw it -- resized and
centre-cropped -- for every source that is not already a size x size RGB image; the manifest's
target_path points at it, so a pair is pixel-aligned by construction, as the released code's
GT/ folder; a source already at that size is its own target), manifest.csv (category
"Synthetic"; mu/sigma are
the *realised* intensity of each output, requested_mu/requested_sigma what was asked,
conditioning_mu/conditioning_sigma what GenDeg was given, and with sample_seed they
regenerate the sample on its own), when calibrated, calibration.json (the measured
curve) and, with `synthesis.colour_range`, colour_range.json (the real pairs' gain bounds
each output was held to, gendeg.synthesis.colour_range).  With `synthesis.oracle: true`, also
oracle/<index>.png and oracle.csv: the same clean images and requested intensities degraded
by the built-in physics generator (gendeg.data.oracle), for the `oracle` training set.
Finished images are moved, not copied, from the work folder into the output.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from gendeg import DEGRADATIONS
from gendeg.synthesis.colour_range import ColourRange, constrain_colour, fit_colour_range
from gendeg.data.images import to_array, write_png
from gendeg.data.manifest import make_frame, phrases_for, read_manifest, write_manifest
from gendeg.data.oracle import oracle_degrade
from gendeg.data.pairs import load_square
from gendeg.data.reference import released_stats_dir
from gendeg.diffusion import GenDegModel, generate
from gendeg.diffusion.structure_correction import load_structure_correction
from gendeg.diffusion.text import prompt_captions
from gendeg.intensity.definition import mu_sigma
from gendeg.intensity.sampler import IntensitySampler
from gendeg.intensity.stats import load_intensity_stats
from gendeg.synthesis.mu_calibration import (
    MuCalibration,
    conditioning_for_requests,
    conditioning_grid,
    fit_mu_calibration,
)
from gendeg.pipeline import tracking
from gendeg.runtime.atomic import atomic_dir, atomic_path, write_json
from gendeg.runtime.devices import compute_device, model_device
from gendeg.runtime.progress import progress
from gendeg.runtime.speed import AutocastForward
from gendeg.runtime.training import run_fingerprint


TARGETS = "targets"  # the clean images as the generator saw them (sources not already at its size)


def sample_seed(seed: int, degradation: str, index: int) -> int:
    digest = hashlib.sha256(f"{seed}:{degradation}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def select_sources(pool: pd.DataFrame, degradation: str, count: int, seed: int) -> pd.DataFrame:
    """Clean images not from this degradation's own datasets, a seeded subset of `count`."""
    others = pool[pool["degradation"] != degradation].reset_index(drop=True)
    if others.empty:
        raise ValueError(f"synthesize {degradation}: the clean pool has no image outside the {degradation} datasets")
    rng = np.random.default_rng(sample_seed(seed, degradation, -1))
    order = rng.permutation(len(others))
    # More requests than images cycle through the pool again (new (mu, sigma), new seed).
    picks = np.resize(order, count) if count > 0 else order
    return others.iloc[picks].reset_index(drop=True)


def plan(config: dict, prepared_dir: Path, degradation: str) -> pd.DataFrame:
    """Every sample of the job: source image, requested intensity, seed. Pure function of the inputs."""
    cfg = config["synthesis"]
    pool = pd.read_csv(Path(prepared_dir) / "clean_pool.csv", keep_default_na=False)
    sources = select_sources(pool, degradation, cfg["per_degradation"], config["seed"])
    stats_root = released_stats_dir() if cfg["intensity_stats"] == "released" else Path(prepared_dir) / "stats"
    down_weights = cfg["down_weights"]  # both kinds of statistics; names that match no dataset are warned about
    sampler = IntensitySampler(load_intensity_stats(stats_root), degradation, down_weights=down_weights,
                               uniform_every=cfg["uniform_every"], mu_cap=cfg.get("mu_cap"))
    draws = sampler.sample(len(sources), np.random.default_rng(sample_seed(config["seed"], degradation, -2)))
    return pd.DataFrame({
        "target_path": sources["image_path"], "dataset": sources["dataset"], "scene": sources["scene"],
        "caption": sources["caption"] if "caption" in sources else "",
        "phrase": phrases_for(Path(prepared_dir) / "train.csv", degradation, [d.sampled_dataset for d in draws]),
        "requested_mu": [d.mu for d in draws], "requested_sigma": [d.sigma for d in draws],
        "random_sampled": [d.random_sampled for d in draws], "sampled_dataset": [d.sampled_dataset for d in draws],
        "sample_seed": [sample_seed(config["seed"], degradation, i) for i in range(len(sources))],
    })


def shard_rows(count: int, batch_size: int, shard: int, shards: int) -> range:
    """Sample indices of shard `shard` of `shards`: a run of whole batches, so each batch holds the
    samples it holds in the unsharded job (batch size changes float sums on some kernels)."""
    batches = math.ceil(count / batch_size)
    first, stop = shard * batches // shards, (shard + 1) * batches // shards
    return range(first * batch_size, min(stop * batch_size, count))


def sampling_model(model, mixed_precision: str):
    """`model` with its UNet evaluations in fp16 / bf16 on a GPU (the official code samples under
    fp16 autocast); on the CPU it stays fp32 whatever the setting, so CPU runs keep their bytes."""
    if mixed_precision == "no" or model_device(model).type != "cuda":
        return model
    return AutocastForward(model, {"fp16": torch.float16, "bf16": torch.bfloat16}[mixed_precision])


def prepare_work_dir(work_dir: Path, stamp: str) -> None:
    marker = work_dir / "fingerprint.txt"
    if work_dir.exists() and (not marker.exists() or marker.read_text() != stamp):
        shutil.rmtree(work_dir)
    (work_dir / "images").mkdir(parents=True, exist_ok=True)
    marker.write_text(stamp)


def is_generator_ready(path: str, size: int) -> bool:
    """True when `load_square(path, size)` is the file's own pixels (an RGB size x size image): the
    source can then be its pair's target as it is, with no resampled copy."""
    with Image.open(path) as image:
        return image.size == (size, size) and image.mode == "RGB"


def _load_clean(rows: pd.DataFrame, size: int) -> torch.Tensor:
    return torch.stack([torch.from_numpy(load_square(p, size)).permute(2, 0, 1) for p in rows["target_path"]]).float() / 255


def _degrade(model, clean: torch.Tensor, rows: pd.DataFrame, degradation: str, cfg: dict) -> torch.Tensor:
    """GenDeg's outputs for `rows` (conditioning_mu / conditioning_sigma / sample_seed / caption)."""
    ids = torch.full((len(rows),), DEGRADATIONS.index(degradation), dtype=torch.long)
    generators = [torch.Generator().manual_seed(int(s)) for s in rows["sample_seed"]]
    with torch.no_grad():
        return generate(model, clean, ids, torch.tensor(rows["conditioning_mu"].to_numpy(), dtype=torch.float32),
                        torch.tensor(rows["conditioning_sigma"].to_numpy(), dtype=torch.float32), generators,
                        num_steps=cfg["steps"], image_guidance=cfg["image_guidance"],
                        text_guidance=cfg["text_guidance"], sampler=cfg["sampler"],
                        captions=prompt_captions(rows, degradation))  # with the sampled dataset's phrase


def calibrate(model, samples: pd.DataFrame, degradation: str, cfg: dict, size: int, seed: int) -> MuCalibration:
    """Realised μ over a grid of conditioning μ, on the job's first `images` sources, and its inverse."""
    settings = cfg["calibration"]
    grid = conditioning_grid(samples["requested_mu"], settings["levels"])
    sources = samples.head(settings["images"])
    sigma_per_mu = float(np.median(samples["requested_sigma"] / samples["requested_mu"]))
    sweep = pd.concat([sources.assign(conditioning_mu=c, conditioning_sigma=c * sigma_per_mu) for c in grid],
                      ignore_index=True)
    sweep["sample_seed"] = [sample_seed(seed, f"{degradation}:calibration", i) for i in range(len(sweep))]
    realised = []
    for start in range(0, len(sweep), cfg["batch_size"]):
        rows = sweep.iloc[start:start + cfg["batch_size"]]
        clean = _load_clean(rows, size)
        out = _degrade(model, clean, rows, degradation, cfg)
        realised += [mu_sigma(to_array(c), to_array(o))[0] for c, o in zip(clean, out, strict=True)]
    return fit_mu_calibration(grid, np.reshape(realised, (len(grid), len(sources))))


def colour_range_for(config: dict, prepared_dir: Path, degradation: str) -> ColourRange | None:
    """The gain range of the real training pairs of `degradation`, or None when the constraint is off."""
    settings = config["synthesis"]["colour_range"]
    if not settings["enabled"]:
        return None
    train = read_manifest(Path(prepared_dir) / "train.csv")
    real = train[(train["degradation"] == degradation) & (train["category"] != "Synthetic")]
    if real.empty:
        raise ValueError(f"synthesize {degradation}: synthesis.colour_range.enabled is true but "
                         f"{Path(prepared_dir) / 'train.csv'} has no real {degradation} pair to measure the range on")
    return fit_colour_range(real, tuple(settings["quantiles"]), settings["max_pairs"],
                            sample_seed(config["seed"], degradation, -3))


def _run_chunk(model, rows: pd.DataFrame, degradation: str, cfg: dict, size: int, images_dir: Path,
               correction=None, colour_range: ColourRange | None = None) -> list[dict]:
    clean = _load_clean(rows, size)
    out = _degrade(model, clean, rows, degradation, cfg)
    if correction is not None:
        out = correction.apply(clean, out, degradation)
    factors = torch.ones(len(rows), 3, dtype=torch.float64)
    if colour_range is not None:
        out, factors = constrain_colour(clean, out, colour_range)
    records = []
    for i, row in enumerate(rows.itertuples()):
        clean_image, degraded = to_array(clean[i]), to_array(out[i])
        write_png(degraded, images_dir / f"{row.Index:06d}.png")
        target_saved = not is_generator_ready(row.target_path, size)
        if target_saved:  # the clean image the generator saw becomes the pair's target
            write_png(clean_image, images_dir.parent / TARGETS / f"{row.Index:06d}.png")
        mu, sigma = mu_sigma(clean_image, degraded)
        record = {"index": row.Index, "mu": mu, "sigma": sigma, "target_saved": target_saved,
                  "colour_log_factor": float(factors[i].log().abs().max())}
        if cfg["oracle"]:
            truth = oracle_degrade(clean_image, degradation, row.sampled_dataset, row.requested_mu, int(row.sample_seed))
            write_png(truth, images_dir.parent / "oracle" / f"{row.Index:06d}.png")
            record["oracle_mu"], record["oracle_sigma"] = mu_sigma(clean_image, truth)
        records.append(record)
    return records


def synthesize(config: dict, prepared_dir: Path, model_dir: Path, degradation: str, out_dir: Path,
               work_dir: Path, structure_correction_dir: Path | None = None, shard: int = 0) -> dict:
    cfg = config["synthesis"]
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    shards = len(cfg["shards"])
    if shard not in cfg["shards"]:
        raise ValueError(f"synthesize {degradation}: shard {shard} is not one of synthesis.shards: {cfg['shards']}")
    samples = plan(config, prepared_dir, degradation)
    rows = shard_rows(len(samples), cfg["batch_size"], shard, shards)
    if not rows:
        raise ValueError(f"synthesize {degradation}: shard {shard} of {shards} has no sample: {len(samples)} samples "
                         f"in batches of {cfg['batch_size']} make fewer batches than shards")
    model = GenDegModel.from_pretrained(model_dir).eval().to(compute_device())
    model = sampling_model(model, cfg["mixed_precision"])
    # The paper samples at 512 from a model trained at 256 (the UNet is convolutional).
    size = cfg["image_size"] or json.loads((Path(model_dir) / "train_summary.json").read_text())["image_size"]
    correction = load_structure_correction(structure_correction_dir) if structure_correction_dir else None
    colour_range = colour_range_for(config, prepared_dir, degradation)
    # "targets": chunks written before targets/ existed are not resumed (their records lack target_saved).
    stamp = {**config, "shard": shard, "work_layout": "targets"}
    prepare_work_dir(work_dir, run_fingerprint(stamp, prepared_dir, model_dir,
                                               *([structure_correction_dir] if structure_correction_dir else [])))
    images_dir = work_dir / "images"
    (work_dir / "oracle").mkdir(exist_ok=True)
    (work_dir / TARGETS).mkdir(exist_ok=True)
    chunk = cfg["batch_size"]
    name = f"synthesize:{degradation}" + (f"/shard-{shard}" if shards > 1 else "")
    with tracking.job_run("synthesize", name, config) as run:
        calibration = None
        if cfg["calibration"]["enabled"]:  # on the whole degradation's requests: every shard fits the same map
            calibration = _cached_calibration(work_dir, lambda: calibrate(model, samples, degradation, cfg, size,
                                                                          config["seed"]))
        samples["conditioning_mu"], samples["conditioning_sigma"] = conditioning_for_requests(
            calibration, samples["requested_mu"], samples["requested_sigma"])
        samples = samples.iloc[rows].copy()  # this shard's slice; the index stays the sample's index
        done = 0
        for start in progress(range(rows.start, rows.stop, chunk), desc=name.replace(":", " ")):
            part = work_dir / f"chunk_{start:06d}.csv"
            if part.exists():  # finished before an interruption
                continue
            records = _run_chunk(model, samples.loc[start:start + chunk - 1], degradation, cfg, size, images_dir,
                                 correction, colour_range)
            with atomic_path(part) as tmp:
                pd.DataFrame(records).to_csv(tmp, index=False, lineterminator="\n")
            done += len(records)
        measured = pd.concat([pd.read_csv(p) for p in sorted(work_dir.glob("chunk_*.csv"))]).set_index("index").sort_index()
        measured = measured.loc[samples.index]
        samples["mu"], samples["sigma"] = measured["mu"].to_numpy(), measured["sigma"].to_numpy()
        saved = measured["target_saved"].to_numpy(dtype=bool)
        samples["target_path"] = np.where(saved, [str(out_dir / TARGETS / f"{i:06d}.png") for i in samples.index],
                                          samples["target_path"])
        with atomic_dir(out_dir) as tmp:
            samples["image_path"] = [str(out_dir / "images" / f"{i:06d}.png") for i in samples.index]
            write_manifest(_frame(samples, degradation, "Synthetic"), tmp / "manifest.csv")
            if calibration is not None:
                write_json(calibration.to_dict(), tmp / "calibration.json")
            if colour_range is not None:
                write_json(colour_range.to_dict(), tmp / "colour_range.json")
            if cfg["oracle"]:
                oracle = samples.assign(image_path=[str(out_dir / "oracle" / f"{i:06d}.png") for i in samples.index],
                                        mu=measured["oracle_mu"].to_numpy(), sigma=measured["oracle_sigma"].to_numpy())
                write_manifest(_frame(oracle, degradation, "Oracle"), tmp / "oracle.csv")
            # Last, the images move (a rename, not ~10^5 copies).  Once they have left, the work
            # folder is no resume point: without its fingerprint a rerun starts afresh.
            (work_dir / "fingerprint.txt").unlink()
            shutil.move(images_dir, tmp / "images")
            if saved.any():
                shutil.move(work_dir / TARGETS, tmp / TARGETS)
            if cfg["oracle"]:
                shutil.move(work_dir / "oracle", tmp / "oracle")
        report = {"samples": len(samples), "generated_now": done,
                  "structure_correction": bool(correction is not None and correction.covers(degradation)),
                  "requested_mu_mean": float(samples["requested_mu"].mean()), "realised_mu_mean": float(samples["mu"].mean()),
                  "mu_pearson_r": float(np.corrcoef(samples["requested_mu"], samples["mu"])[0, 1]) if len(samples) > 2 else float("nan")}
        if colour_range is not None:
            log_factors = measured["colour_log_factor"]
            report["colour_range"] = {"corrected_fraction": float((log_factors > 0).mean()),
                                      "mean_abs_log_factor": float(log_factors.mean())}
            run.log_metrics({f"colour_range.{k}": v for k, v in report["colour_range"].items()})
        run.log_metrics({k: v for k, v in report.items() if not isinstance(v, dict)})
        if calibration is not None:
            report["calibration"] = calibration.to_dict()
            run.log_metrics({"calibration.invertible": float(calibration.invertible),
                             "conditioning_mu_mean": float(samples["conditioning_mu"].mean())})
        run.log_image(_grid(samples.head(8), out_dir), "samples.png")  # one name across jobs: MLflow compares same-named images
    shutil.rmtree(work_dir, ignore_errors=True)
    return report


def _cached_calibration(work_dir: Path, fit) -> MuCalibration:
    """The job's calibration, fitted once: a resumed job reuses the one its first attempt measured."""
    path = work_dir / "calibration.json"
    if path.exists():
        return MuCalibration.from_dict(json.loads(path.read_text()))
    calibration = fit()
    write_json(calibration.to_dict(), path)
    return calibration


def _frame(samples: pd.DataFrame, degradation: str, category: str) -> pd.DataFrame:
    return make_frame([{**row, "degradation": degradation, "category": category, "degradation_sub_type": degradation,
                        "split": "train"} for row in samples.to_dict("records")])


def _grid(rows: pd.DataFrame, out_dir: Path) -> np.ndarray:
    """Clean above generated, a few samples side by side."""
    from gendeg.data.images import read_image

    size = read_image(rows["image_path"].iloc[0]).shape[0]
    top = [load_square(p, size) / 255.0 for p in rows["target_path"]]
    bottom = [read_image(p) for p in rows["image_path"]]
    return np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0).astype(np.float32)
