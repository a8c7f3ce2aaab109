"""Stage `merge`: GenDS = the existing training pairs + the generated pairs that pass the filter.

The paper filters generated samples by intensity without publishing the rule.  Ours: keep a
sample when its realised mu is within `mu_tolerance` (relative) of the requested mu, or within
`mu_abs_tolerance` absolutely (small requests), and below `mu_cap` (0.28, the largest mu in
the real data).  Turn it off with `merge.filter.enabled: false` to measure its effect.

Generated images are linked (or copied) into the output folder, so the folder is the whole
training set and its hash changes whenever any of its images changes.  When synthesis made
oracle pairs, oracle.csv = existing + oracle pairs (the `oracle` training set).

A degradation synthesised in shards (`synthesis.shards`) is read as the concatenation of its
shards in order; images are named by their sample index, so GenDS is the same, byte for byte,
whatever the shard count.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from gendeg.data.manifest import read_manifest, write_manifest
from gendeg.pipeline import tracking
from gendeg.runtime.atomic import atomic_dir, write_json


def intensity_filter(frame: pd.DataFrame, cfg: dict) -> pd.Series:
    """True for generated rows to keep."""
    if not cfg["enabled"]:
        return pd.Series(True, index=frame.index)
    error = (frame["mu"] - frame["requested_mu"]).abs()
    close = (error <= cfg["mu_tolerance"] * frame["requested_mu"]) | (error <= cfg["mu_abs_tolerance"])
    return close & (frame["mu"] <= cfg["mu_cap"])


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _by_degradation(synthetic_dirs: list[Path]) -> dict[str, list[Path]]:
    """Synthesis outputs (one per degradation, or per degradation and shard) grouped by degradation, in order."""
    groups: dict[str, list[Path]] = {}
    for folder in map(Path, synthetic_dirs):
        first = pd.read_csv(folder / "manifest.csv", usecols=["degradation"], nrows=1)["degradation"]
        named = folder.parent if folder.name.startswith("shard-") else folder  # data/synthetic/<degradation>/shard-<k>
        groups.setdefault(first.iloc[0] if len(first) else named.name, []).append(folder)
    return groups


def _read_shards(folders: list[Path], name: str, degradation: str) -> pd.DataFrame:
    """The manifests `name` of one degradation's shards as one; overlapping shards (a sample twice) are an error."""
    frame = pd.concat([read_manifest(folder / name) for folder in folders], ignore_index=True)
    images = frame["image_path"].map(lambda p: Path(p).name)
    if images.duplicated().any():
        raise ValueError(f"merge: the {degradation} shards {[str(f) for f in folders]} repeat sample(s) "
                         f"{sorted(set(images[images.duplicated()]))[:5]}: they come from different synthesis runs")
    return frame


def _oracle_pairs(degradation: str, folders: list[Path], out_dir: Path, tmp: Path) -> pd.DataFrame | None:
    """The physics-generator pairs of a degradation's synthesis (unfiltered: they are the reference)."""
    if not all((folder / "oracle.csv").exists() for folder in folders):
        return None
    oracle = _read_shards(folders, "oracle.csv", degradation)
    targets = [Path("oracle") / degradation / Path(p).name for p in oracle["image_path"]]
    for source, target in zip(oracle["image_path"], targets, strict=True):
        _link_or_copy(Path(source), tmp / target)
    return oracle.assign(image_path=[str(out_dir / t) for t in targets])


def merge(config: dict, prepared_dir: Path, synthetic_dirs: list[Path], out_dir: Path) -> dict:
    cfg = config["merge"]
    out_dir = Path(out_dir)
    existing = read_manifest(Path(prepared_dir) / "train.csv")
    groups = _by_degradation(synthetic_dirs)
    with tracking.job_run("merge", "merge", config) as run, atomic_dir(out_dir) as tmp:
        kept, acceptance = [], {}
        for degradation, folders in groups.items():
            generated = _read_shards(folders, "manifest.csv", degradation)
            keep = intensity_filter(generated, cfg["filter"])
            acceptance[degradation] = {"generated": int(len(generated)), "kept": int(keep.sum()),
                                       "acceptance": float(keep.mean()) if len(generated) else float("nan")}
            generated = generated[keep].copy()
            targets = [Path("images") / degradation / Path(p).name for p in generated["image_path"]]
            for source, target in zip(generated["image_path"], targets, strict=True):
                _link_or_copy(Path(source), tmp / target)
            generated["image_path"] = [str(out_dir / t) for t in targets]
            kept.append(generated)
        gends = pd.concat([existing, *kept], ignore_index=True)
        write_manifest(gends, tmp / "manifest.csv")
        oracles = [_oracle_pairs(degradation, folders, out_dir, tmp) for degradation, folders in groups.items()]
        if all(o is not None for o in oracles):
            write_manifest(pd.concat([existing, *oracles], ignore_index=True), tmp / "oracle.csv")
        summary = {
            "existing_pairs": int(len(existing)),
            "generated_pairs": int(sum(len(k) for k in kept)),
            "total_pairs": int(len(gends)),
            "filter": cfg["filter"],
            "acceptance": acceptance,
            "per_degradation": {d: {c: int(n) for c, n in g.groupby("category").size().items()}
                                for d, g in gends.groupby("degradation")},
            "scenes_per_degradation": {d: int(g["scene"].replace("", np.nan).nunique()) for d, g in gends.groupby("degradation")},
        }
        write_json(summary, tmp / "summary.json")
        run.log_metrics({"pairs.existing": summary["existing_pairs"], "pairs.generated": summary["generated_pairs"],
                         **{f"acceptance.{d}": a["acceptance"] for d, a in acceptance.items()}})
    return summary


def merge_shards(config: dict, prepared_dir: Path, synthetic_root: Path, out_dir: Path) -> dict:
    """`merge` over `<synthetic_root>/<degradation>/shard-<k>` for every degradation and shard of the config."""
    shards = [Path(synthetic_root) / d / f"shard-{k}" for d in config["degradations"] for k in config["synthesis"]["shards"]]
    return merge(config, prepared_dir, shards, out_dir)
