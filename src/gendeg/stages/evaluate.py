"""Stage `evaluate` (one job per restorer): PSNR / SSIM of the restorer on every OOD set and on
the in-distribution test split, distributional distances between its outputs and the
ground truth, and the same numbers for the unrestored input as a baseline.

Fidelity: PSNR and SSIM per image, on RGB in [0, 1] (data range 1), images as stored
(8-bit sRGB, no linearisation or YCbCr), averaged per set.  Every figure has its
unrestored-input twin (`input_*`) and the restorer's gain over it (`psnr_gain`).

Structure or colour: `mean_matched_psnr` scores each image after its per-channel mean is set
to the target's (for the restorer and the input alike), so a restorer that only re-tints
gains nothing there; `mean_matched_gain` is restorer minus input on that score.
`colour_shift` is the mean |restored - target| of the per-channel means (the global tint /
brightness error left), `brightness_shift` its signed mean over channels.

Distributional distances (lower is better), between the set of restored images and the set
of their clean targets, per evaluation set, per OOD degradation and pooled over all OOD
images:
- `kid`, `fid`: KID (unbiased, polynomial kernel) and the Frechet distance in the feature
  space of the frozen degradation classifier of stage `train_classifier` (trained on the
  training split only; see that module for why it stands in for Inception);
- `swd`: sliced Wasserstein-1 distance between raw 7x7 RGB patch distributions, no network.
Subsets, patches and projections come from `seed`, identical for every restorer, so two
restorers are compared on exactly the same draws.  FID is biased upward for small sets:
compare it only between restorers on the same sets, never across sets of other sizes.

Optional (`evaluate.perceptual.torch_home`, the `perceptual` extra; see gendeg.measure.perceptual):
per-image `lpips` (AlexNet) next to PSNR / SSIM, and `inception_kid` / `inception_fid` on
Inception-v3 features next to the classifier-feature ones.

Outputs: metrics/<job>.json (DVC metrics: means per OOD set, per degradation, OOD and
in-distribution overall) and metrics/<job>_per_set.csv (one row per evaluation set, for
`dvc plots`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gendeg.data.manifest import read_manifest
from gendeg.data.pairs import PairBank
from gendeg.measure.classifier import extract_features, load_classifier
from gendeg.measure.metrics import (
    colour_shift,
    frechet_distance,
    kid,
    mean_matched_psnr,
    psnr,
    random_patches_at,
    sliced_wasserstein,
    ssim,
)
from gendeg.measure.perceptual import PerceptualMetrics, inception_distances
from gendeg.pipeline import tracking
from gendeg.restorers import load_restorer, restore_tiled
from gendeg.runtime.atomic import atomic_path, write_json
from gendeg.runtime.devices import compute_device
from gendeg.runtime.progress import progress

FIDELITY = ("psnr", "ssim", "input_psnr", "input_ssim", "psnr_gain", "mean_matched_psnr", "input_mean_matched_psnr",
            "mean_matched_gain", "colour_shift", "input_colour_shift", "brightness_shift", "input_brightness_shift")
DISTANCES = ("kid", "fid", "swd", "input_kid", "input_fid", "input_swd")
PERCEPTUAL_FIDELITY = ("lpips", "input_lpips")
# What MLflow gets per split and per OOD degradation: the restorer beside its input baseline.
HEADLINE = ("psnr", "ssim", "input_psnr", "psnr_gain", "mean_matched_psnr", "input_mean_matched_psnr",
            "mean_matched_gain", "colour_shift", "input_colour_shift", "brightness_shift")
# Patches per side in one SWD: a random subset above it (the pooled OOD set of a paper-scale
# evaluation holds ~10^5 images); the built-in sets stay far below it and use every patch.
SWD_MAX_PATCHES = 65_536
PERCEPTUAL_DISTANCES = ("inception_kid", "inception_fid", "input_inception_kid", "input_inception_fid")


class Evaluated:
    """One split, scored pair by pair: per-image scores, classifier features and random patches.

    Images are read, restored and scored a chunk at a time and then dropped, so memory grows
    with the split's features and patches (about 60 KB an image), never with its pixels.
    With `size` set every image is resized to a `size` square and chunks hold 64 images; with
    `size=None` each image is scored whole as stored, one at a time, restored in tiles of at
    most `tile` pixels a side.  The SWD patches of an image are drawn at the same positions in
    the restored, degraded and clean image, from one generator seeded by `seed`, image by image.
    With `perceptual` (the optional extra) also per-image LPIPS and Inception features.
    """

    CHUNK = 64

    def __init__(self, model: torch.nn.Module, features_net, frame: pd.DataFrame, size: int | None, description: str,
                 perceptual: PerceptualMetrics | None = None, *, tile: int, distances: dict, seed: int):
        bank = PairBank(frame, size=size, description=description, cache_mb=0)  # each image is read once
        chunk = self.CHUNK if size is not None else 1
        generator = torch.Generator().manual_seed(seed)
        scores, features, inception = [], _per_kind(), _per_kind()
        # Filled in place: a list of per-chunk patches and its concatenation would hold them twice.
        patches = {kind: torch.empty(len(bank), distances["patches_per_image"], 3 * distances["patch_size"] ** 2)
                   for kind in _per_kind()}
        for start in progress(range(0, len(bank), chunk), desc=f"evaluating {description}"):
            degraded, clean = bank.tensors(range(start, min(start + chunk, len(bank))))
            images = {"degraded": degraded, "clean": clean, "restored": restore_tiled(model, degraded, tile)}
            scores.append(image_scores(images, perceptual))
            corners = patch_corners(len(degraded), degraded.shape[-2:], distances, generator)
            for kind, batch in images.items():
                features[kind].append(extract_features(features_net, batch))
                patches[kind][start:start + len(batch)] = random_patches_at(
                    batch.cpu(), *corners, distances["patch_size"]).unflatten(0, (len(batch), -1))
                if perceptual is not None:
                    inception[kind].append(perceptual.inception_features(batch))
        self.rows = pd.concat([bank.frame[["dataset", "degradation", "split"]], pd.concat(scores, ignore_index=True)],
                              axis=1)
        self.rows["psnr_gain"] = self.rows["psnr"] - self.rows["input_psnr"]
        self.rows["mean_matched_gain"] = self.rows["mean_matched_psnr"] - self.rows["input_mean_matched_psnr"]
        self.features = {kind: torch.cat(parts) for kind, parts in features.items()}
        self.patches = patches  # N x P x D
        self.perceptual = perceptual is not None
        self.extra_fidelity = PERCEPTUAL_FIDELITY if self.perceptual else ()
        self.fidelity_keys = FIDELITY + self.extra_fidelity
        self.distance_keys = DISTANCES + (PERCEPTUAL_DISTANCES if self.perceptual else ())
        if perceptual is not None:
            self.inception = {kind: torch.cat(parts) for kind, parts in inception.items()}


def _per_kind() -> dict[str, list]:
    return {"degraded": [], "clean": [], "restored": []}


def image_scores(images: dict[str, torch.Tensor], perceptual: PerceptualMetrics | None) -> pd.DataFrame:
    """Per-image fidelity of the restored and (`input_`) the degraded images against the clean ones."""
    clean = images["clean"]
    columns = {}
    for prefix, kind in (("", "restored"), ("input_", "degraded")):
        shift = colour_shift(images[kind], clean)
        columns |= {f"{prefix}psnr": psnr(images[kind], clean).numpy(), f"{prefix}ssim": ssim(images[kind], clean).numpy(),
                    f"{prefix}mean_matched_psnr": mean_matched_psnr(images[kind], clean).numpy(),
                    f"{prefix}colour_shift": shift.abs().mean(dim=1).numpy(),
                    f"{prefix}brightness_shift": shift.mean(dim=1).numpy()}
        if perceptual is not None:
            columns[f"{prefix}lpips"] = perceptual.lpips_per_image(images[kind], clean).numpy()
    return pd.DataFrame(columns)


def patch_corners(count: int, shape, distances: dict, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners (count x patches_per_image each) of SWD patches inside images of `shape` (H, W),
    drawn image by image: the draws do not depend on how images are chunked."""
    height, width = shape
    size, per_image = distances["patch_size"], distances["patches_per_image"]
    if height < size or width < size:
        raise ValueError(f"evaluate: an image of {width}x{height} is smaller than the SWD patch_size {size}")
    corners = [(torch.randint(0, height - size + 1, (per_image,), generator=generator),
                torch.randint(0, width - size + 1, (per_image,), generator=generator)) for _ in range(count)]
    return torch.stack([y for y, _ in corners]), torch.stack([x for _, x in corners])


def set_distances(split: Evaluated, index: np.ndarray, cfg: dict, seed: int) -> dict:
    """KID / FID / SWD of restored-vs-clean and degraded-vs-clean over the images `index` selects.

    Undefined (None) for fewer than two images: a distribution distance needs a sample.
    """
    if len(index) < 2:
        return dict.fromkeys(split.distance_keys)
    rows = torch.from_numpy(index)
    clean_f, clean_patches = split.features["clean"][rows], split.patches["clean"][rows].flatten(0, 1)
    out = {}
    for prefix, name in (("", "restored"), ("input_", "degraded")):
        feats = split.features[name][rows]
        out[f"{prefix}kid"] = kid(feats, clean_f, subsets=cfg["kid_subsets"], subset_size=cfg["kid_subset_size"], seed=seed)[0]
        out[f"{prefix}fid"] = frechet_distance(feats, clean_f)
        out[f"{prefix}swd"] = sliced_wasserstein(split.patches[name][rows].flatten(0, 1), clean_patches,
                                                 cfg["projections"], torch.Generator().manual_seed(seed), SWD_MAX_PATCHES)
        if split.perceptual:
            extra = inception_distances(split.inception[name][rows], split.inception["clean"][rows],
                                        cfg["kid_subsets"], cfg["kid_subset_size"], seed)
            out |= {f"{prefix}{k}": v for k, v in extra.items()}
    return out


def _group_summary(split: Evaluated, index: np.ndarray, cfg: dict, seed: int) -> dict:
    frame = split.rows.iloc[index]
    return {**{k: float(frame[k].mean()) for k in split.fidelity_keys}, **set_distances(split, index, cfg, seed), "n": int(len(index))}


def _groups(split: Evaluated, column: str) -> dict[str, np.ndarray]:
    return {name: np.asarray(index, dtype=np.int64) for name, index in split.rows.groupby(column, sort=True).indices.items()}


def _mean(values: list) -> float | None:
    """Mean over sets (each set weighs the same, as the paper's headline); None if any is undefined."""
    return None if not values or any(v is None for v in values) else float(np.mean(values))


def summarise(ood: Evaluated, in_dist: Evaluated, cfg: dict, seed: int) -> dict:
    per_set = {name: _group_summary(ood, index, cfg, seed) for name, index in _groups(ood, "dataset").items()}
    everything = np.arange(len(ood.rows), dtype=np.int64)
    return {
        "ood": {
            **{f"mean_{k}": _mean([s[k] for s in per_set.values()])
               for k in ood.fidelity_keys + ood.distance_keys},
            # All OOD images as one set: the distributional view of the whole benchmark.
            "pooled": _group_summary(ood, everything, cfg, seed),
            "per_set": per_set,
            "per_degradation": {d: _group_summary(ood, index, cfg, seed) for d, index in _groups(ood, "degradation").items()},
        },
        "in_distribution": {
            **_group_summary(in_dist, np.arange(len(in_dist.rows), dtype=np.int64), cfg, seed),
            "per_degradation": {d: _group_summary(in_dist, index, cfg, seed)
                                for d, index in _groups(in_dist, "degradation").items()},
        },
    }


def per_set_table(splits: dict[str, Evaluated], cfg: dict, seed: int, job: str) -> pd.DataFrame:
    """One row per (split, dataset, degradation): fidelity means and distances, for `dvc plots`."""
    records = []
    for split in splits.values():
        for (split_name, dataset, degradation), index in sorted(split.rows.groupby(["split", "dataset", "degradation"]).indices.items()):
            summary = _group_summary(split, np.asarray(index, dtype=np.int64), cfg, seed)
            records.append({"split": split_name, "dataset": dataset, "degradation": degradation,
                            **{k: summary[k] for k in split.fidelity_keys + split.distance_keys}, "n": summary["n"]})
    table = pd.DataFrame.from_records(records).sort_values(["split", "dataset", "degradation"], kind="stable")
    return table.reset_index(drop=True).assign(job=job)


def restorer_identity(model_dir: Path) -> dict:
    """What the restorer is (architecture, training set, generated pairs per degradation), from its folder.

    Copied into the metrics so that the report, `dvc metrics show` and MLflow can group
    results without parsing file names.
    """
    identity = {}
    config_path, summary_path = Path(model_dir) / "config.json", Path(model_dir) / "train_summary.json"
    if config_path.is_file():
        identity["arch"] = json.loads(config_path.read_text()).get("arch")
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        identity |= {k: summary[k] for k in ("train_set", "seed", "pairs", "generated_pairs") if k in summary}
    return identity


def evaluate(config: dict, job: str, model_dir: Path, classifier_dir: Path, prepared_dir: Path, out_json: Path,
             out_csv: Path) -> dict:
    """Score the restorer in `model_dir`; `job` names it in outputs and MLflow (e.g. `nafnet-gends`)."""
    cfg = config["evaluate"]
    tags = restorer_identity(model_dir)
    distances = cfg["distances"]
    model = load_restorer(model_dir).eval().to(compute_device())
    features_net = load_classifier(classifier_dir).to(compute_device())
    torch_home = cfg["perceptual"]["torch_home"]
    perceptual = PerceptualMetrics(torch_home) if torch_home else None
    frames = {split: read_manifest(Path(prepared_dir) / f"{split}.csv") for split in ("ood", "test")}
    label = f"{job}@{tags['seed']}" if "seed" in tags else job  # the restorer's seed, as its training run names it
    with tracking.job_run("evaluate", f"evaluate:{label}", config) as run:
        run.set_tags(tracking.restorer_tags(job, tags))
        splits = {split: Evaluated(model, features_net, frame, cfg["image_size"], split, perceptual, tile=cfg["tile"],
                                   distances=distances, seed=config["seed"])
                  for split, frame in frames.items()}
        summary = summarise(splits["ood"], splits["test"], distances, config["seed"])
        summary["job"] = job
        summary["restorer"] = tags
        table = per_set_table(splits, distances, config["seed"], job)
        with atomic_path(out_csv) as tmp:
            table.to_csv(tmp, index=False, float_format="%.4f", lineterminator="\n", na_rep="")
        write_json(summary, out_json)
        ood = summary["ood"]
        distance_keys = splits["ood"].distance_keys
        extra_fidelity = splits["ood"].extra_fidelity
        metrics = {**{f"ood.mean_{k}": ood[f"mean_{k}"] for k in HEADLINE},
                   **{f"id.{k}": summary["in_distribution"][k] for k in HEADLINE},
                   **{f"ood.mean_{k}": ood[f"mean_{k}"] for k in distance_keys + extra_fidelity},
                   **{f"ood.pooled.{k}": ood["pooled"][k] for k in distance_keys},
                   **{f"id.{k}": summary["in_distribution"][k] for k in distance_keys + extra_fidelity}}
        for name, d in ood["per_degradation"].items():
            metrics |= {f"ood.{name}.{k}": d[k] for k in HEADLINE}
        per_set_keys = ("psnr", "ssim", "psnr_gain", "mean_matched_gain", "colour_shift", "kid", "fid", "swd") + tuple(k for k in extra_fidelity + distance_keys
                                                                    if not k.startswith("input_"))
        for name, s in ood["per_set"].items():
            metrics |= {f"ood.{name}.{k}": s[k] for k in per_set_keys}
        run.log_metrics({k: v for k, v in metrics.items() if v is not None and math.isfinite(v)})
    return summary
