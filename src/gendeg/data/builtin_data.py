"""Build the built-in default data: stand-in "existing" datasets, an in-distribution test split
and an OOD benchmark, all from bundled and procedural scenes, with no download.

The situation it reproduces in miniature is the paper's: each existing dataset covers few
scenes with formula-made degradations (here 1-2 scenes per stand-in, 3-4 per degradation,
about 20 over all), while the OOD sets use held-out scenes degraded by generators of a
different kind.  The in-distribution test split reuses the training scenes with other crops
and draws, as real test splits do.

Layout under `out_dir`:

    images/<split>/<dataset>/degraded/<index>.png
    images/<split>/<dataset>/clean/<index>.png

`build_builtin` returns manifest frames (gendeg.data.manifest.make_frame) for "train", "test"
and "ood"; writing them is the calling stage's job.  Same config and seed, same bytes.

One statement per setting: the keys params.yaml's ``data.builtin`` sets for every preset
(REQUIRED) have no default here, and a config without one is an error that names it; outside the
pipeline take them from ``gendeg.pipeline.config.load_params()["data"]["builtin"]``.  Every other
key has its one value in DEFAULT_CONFIG (stating it in params.yaml would change
resolved_params/prepare.json and so re-run everything).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from gendeg import DEGRADATIONS
from gendeg.data.images import write_png
from gendeg.data.manifest import make_frame
from gendeg.data.scenes import SceneSplit, caption, catalogue, load_scene, name_seed, random_crop, split_scenes
from gendeg.data.standins import (
    ALL_SETS,
    OOD_SETS,
    STANDINS,
    PairSetSpec,
    degrade_to_mu,
    mu_sigma_as_written,
    target_mu,
)
from gendeg.degradations import GENERATORS, generate
from gendeg.runtime.atomic import atomic_dir

# Set by params.yaml's data.builtin in every preset, the one place their values are stated: crop_size
# (pixels per side of every pair) and the pairs of each stand-in's train and test split and of each OOD set.
REQUIRED = ("crop_size", "train_pairs_per_standin", "test_pairs_per_standin", "pairs_per_ood_set")

# Every other key.
DEFAULT_CONFIG: dict[str, Any] = {
    # Scenes are rendered with their shorter side = scene_scale x crop_size: crops of one
    # scene overlap and look alike, so "few scenes" means little diversity.
    "scene_scale": 2.0,
    # Dead-leaves scenes added to the 18 bundled photos (the split needs 20 + n_ood_scenes).
    "n_procedural_scenes": 14,
    # Held-out scenes, used by the OOD sets only.
    "n_ood_scenes": 10,
    # Which sets to build (null = all, see gendeg.data.standins.STANDINS / OOD_SETS).
    "standins": None,
    "ood_sets": None,
    # Per-set overrides: {set name: n_scenes} and {set name: {generator key: value}}.
    "scenes_per_standin": {},
    "generator_overrides": {},
    # Folder of the released mu/sigma histograms of the real datasets; null = the project's
    # reference/gendeg-intensity-stats (gendeg.data.reference.released_stats_dir()).
    "reference_dir": None,
    # How close (native-resolution) mu must come to each pair's target mu.
    "mu_tolerance": 0.002,
    "progress": False,
}

SPLIT_CODES = {"train": 0, "test": 1, "ood": 2}


def resolve_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """DEFAULT_CONFIG overridden by `cfg`, checked; unknown keys and names are errors, and so are missing
    REQUIRED ones."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(DEFAULT_CONFIG) - set(REQUIRED))
    if unknown:
        raise KeyError(f"builtin data config: unknown key(s) {unknown}; known keys: "
                       f"{sorted({*DEFAULT_CONFIG, *REQUIRED})}")
    missing = [key for key in REQUIRED if key not in cfg]
    if missing:
        raise KeyError(f"builtin data config: missing key(s) {missing} (no default: params.yaml states them under "
                       f"data.builtin)")
    merged = {**copy.deepcopy(DEFAULT_CONFIG), **cfg}
    for key in ("crop_size", "n_ood_scenes", "train_pairs_per_standin", "test_pairs_per_standin", "pairs_per_ood_set",
                "n_procedural_scenes"):
        if not isinstance(merged[key], int) or merged[key] < 0:
            raise ValueError(f"builtin data config: {key} must be a non-negative integer, got {merged[key]!r}")
    if merged["crop_size"] < 16:
        raise ValueError(f"builtin data config: crop_size must be >= 16, got {merged['crop_size']}")
    if merged["scene_scale"] < 1.0:
        raise ValueError(f"builtin data config: scene_scale must be >= 1, got {merged['scene_scale']}")
    for key, known in (("standins", STANDINS), ("ood_sets", OOD_SETS)):
        names = [spec.name for spec in known]
        chosen = names if merged[key] is None else list(merged[key])
        bad = sorted(set(chosen) - set(names))
        if bad:
            raise KeyError(f"builtin data config: {key} names unknown set(s) {bad}; known: {names}")
        merged[key] = chosen
    for key in ("scenes_per_standin", "generator_overrides"):
        bad = sorted(set(merged[key]) - set(ALL_SETS))
        if bad:
            raise KeyError(f"builtin data config: {key} names unknown set(s) {bad}; known: {sorted(ALL_SETS)}")
    return merged


def selected_specs(cfg: Mapping[str, Any]) -> tuple[list[PairSetSpec], list[PairSetSpec]]:
    """The stand-ins and OOD sets `cfg` asks for, with its overrides applied."""
    def with_overrides(spec: PairSetSpec) -> PairSetSpec:
        generator_config = {**spec.generator_config, **cfg["generator_overrides"].get(spec.name, {})}
        n_scenes = int(cfg["scenes_per_standin"].get(spec.name, spec.n_scenes))
        return PairSetSpec(spec.name, spec.degradation, spec.imitates, spec.generator, generator_config,
                           n_scenes, spec.reference, spec.mu_range)

    standins = [with_overrides(spec) for spec in STANDINS if spec.name in cfg["standins"]]
    ood_sets = [with_overrides(spec) for spec in OOD_SETS if spec.name in cfg["ood_sets"]]
    return standins, ood_sets


def plan_scenes(cfg: Mapping[str, Any], seed: int) -> SceneSplit:
    """Which scenes every stand-in gets, and the held-out OOD scenes (disjoint, seeded)."""
    standins, _ = selected_specs(cfg)
    names = catalogue(cfg["n_procedural_scenes"])
    return split_scenes(names, {spec.name: spec.n_scenes for spec in standins}, cfg["n_ood_scenes"],
                        np.random.default_rng([seed, 0x5CE7E5]))


def pair_seed(seed: int, dataset: str, split: str, index: int) -> int:
    """Per-pair seed: independent of every other pair, so sets and sizes can change independently."""
    sequence = np.random.SeedSequence([seed, name_seed(dataset), SPLIT_CODES[split], index])
    return int(sequence.generate_state(1, np.uint32)[0])


def make_pair(spec: PairSetSpec, scene_names: list[str], sample_seed: int, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """One pair: a crop of a seeded scene choice, degraded to a target mu drawn for this set."""
    rng = np.random.default_rng([sample_seed, 1])
    scene = load_scene(scene_names[int(rng.integers(len(scene_names)))],
                       int(round(cfg["crop_size"] * cfg["scene_scale"])))
    clean, depth = random_crop(scene, cfg["crop_size"], rng)
    target = target_mu(spec, cfg["reference_dir"], rng)
    degraded, severity = degrade_to_mu(
        lambda s: generate(spec.generator, clean, sample_seed, s, depth=depth, config=spec.generator_config),
        clean, target, tolerance=cfg["mu_tolerance"])
    mu, sigma = mu_sigma_as_written(clean, degraded)
    return {"clean": clean, "degraded": degraded, "scene": scene.name, "requested_mu": target,
            "severity": severity, "mu": mu, "sigma": sigma}


def make_pairs(spec: PairSetSpec, scene_names: list[str], split: str, count: int, seed: int,
               cfg: Mapping[str, Any]):
    """Yield (index, sample_seed, pair) for `count` pairs of one set and split."""
    if not scene_names:
        raise ValueError(f"{spec.name}: no scenes assigned")
    for index in range(count):
        sample_seed = pair_seed(seed, spec.name, split, index)
        yield index, sample_seed, make_pair(spec, scene_names, sample_seed, cfg)


def build_builtin(cfg: Mapping[str, Any], out_dir: Path, seed: int) -> dict[str, pd.DataFrame]:
    """Write every pair's PNGs under out_dir/images and return the "train", "test" and "ood" frames."""
    cfg = resolve_config(cfg)
    out_dir = Path(out_dir)
    standins, ood_sets = selected_specs(cfg)
    for spec in standins + ood_sets:
        if spec.degradation not in DEGRADATIONS or spec.generator not in GENERATORS:
            raise ValueError(f"{spec.name}: unknown degradation {spec.degradation!r} or generator {spec.generator!r}")
    split = plan_scenes(cfg, seed)
    jobs = [(spec, split.groups[spec.name], "train", cfg["train_pairs_per_standin"]) for spec in standins]
    jobs += [(spec, split.groups[spec.name], "test", cfg["test_pairs_per_standin"]) for spec in standins]
    jobs += [(spec, split.ood, "ood", cfg["pairs_per_ood_set"]) for spec in ood_sets]
    rows: dict[str, list[dict]] = {"train": [], "test": [], "ood": []}
    images = out_dir / "images"
    with atomic_dir(images) as tmp:
        progress = tqdm(total=sum(job[3] for job in jobs), desc="built-in pairs", disable=not cfg["progress"])
        for spec, scene_names, split_name, count in jobs:
            for index, sample_seed, pair in make_pairs(spec, scene_names, split_name, count, seed, cfg):
                relative = Path(split_name) / spec.name
                write_png(pair["degraded"], tmp / relative / "degraded" / f"{index:05d}.png")
                write_png(pair["clean"], tmp / relative / "clean" / f"{index:05d}.png")
                rows[split_name].append({
                    "image_path": str(images / relative / "degraded" / f"{index:05d}.png"),
                    "target_path": str(images / relative / "clean" / f"{index:05d}.png"),
                    "dataset": spec.name,
                    "degradation": spec.degradation,
                    "category": "Real",
                    "degradation_sub_type": "Original",
                    "split": split_name,
                    "mu": pair["mu"],
                    "sigma": pair["sigma"],
                    "scene": pair["scene"],
                    "sample_seed": sample_seed,
                    "requested_mu": pair["requested_mu"],
                    "caption": caption(pair["scene"]),
                })
                progress.update()
        progress.close()
    return {name: make_frame(split_rows) for name, split_rows in rows.items()}


def describe(cfg: Mapping[str, Any], seed: int = 0) -> dict[str, Any]:
    """What a build would contain: per set, what it imitates and its scenes (for reports and the README)."""
    cfg = resolve_config(cfg)
    standins, ood_sets = selected_specs(cfg)
    split = plan_scenes(cfg, seed)
    return {
        "standins": {spec.name: {"degradation": spec.degradation, "imitates": spec.imitates,
                                 "generator": spec.generator, "scenes": split.groups[spec.name]} for spec in standins},
        "ood_sets": {spec.name: {"degradation": spec.degradation, "imitates": spec.imitates,
                                 "generator": spec.generator, "mu_range": list(spec.mu_range or ())}
                     for spec in ood_sets},
        "ood_scenes": split.ood,
    }
