"""Stage `evaluate` (one job per training set): PSNR / SSIM of the restorer on every OOD set and
on the in-distribution test split, next to the same metrics of the unrestored input.

Outputs: metrics/<set>.json (DVC metrics: means per OOD set, per degradation, OOD and
in-distribution overall) and metrics/<set>_per_set.csv (one row per evaluation set, for
`dvc plots`).  Metrics are on RGB in [0, 1] (data range 1), images as stored (8-bit sRGB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gendeg import tracking
from gendeg.atomic import atomic_path, write_json
from gendeg.manifest import read_manifest
from gendeg.metrics import psnr, ssim
from gendeg.pairs import PairBank
from gendeg.progress import progress
from gendeg.restorers import load_restorer, restore


def score(model: torch.nn.Module, frame: pd.DataFrame, size: int, description: str) -> pd.DataFrame:
    """One row per image: dataset, degradation, PSNR/SSIM of input and of restoration."""
    bank = PairBank(frame, size=size, description=f"loading {description}")
    degraded, clean = bank.tensors()
    restored = torch.cat([restore(model, degraded[i:i + 64]) for i in
                          progress(range(0, len(degraded), 64), desc=f"restoring {description}")])
    return pd.DataFrame({
        "dataset": bank.frame["dataset"], "degradation": bank.frame["degradation"], "split": bank.frame["split"],
        "psnr": psnr(restored, clean).numpy(), "ssim": ssim(restored, clean).numpy(),
        "input_psnr": psnr(degraded, clean).numpy(), "input_ssim": ssim(degraded, clean).numpy(),
    })


def _means(frame: pd.DataFrame) -> dict:
    return {k: float(frame[k].mean()) for k in ("psnr", "ssim", "input_psnr", "input_ssim")} | {"n": int(len(frame))}


def summarise(rows: pd.DataFrame) -> dict:
    ood, in_dist = rows[rows["split"] == "ood"], rows[rows["split"] == "test"]
    per_set = {name: _means(g) for name, g in ood.groupby("dataset")}
    return {
        "ood": {
            # The paper's headline: the mean over OOD sets (each set weighs the same).
            "mean_psnr": float(np.mean([s["psnr"] for s in per_set.values()])),
            "mean_ssim": float(np.mean([s["ssim"] for s in per_set.values()])),
            "mean_input_psnr": float(np.mean([s["input_psnr"] for s in per_set.values()])),
            "per_set": per_set,
            "per_degradation": {d: _means(g) for d, g in ood.groupby("degradation")},
        },
        "in_distribution": {**_means(in_dist), "per_degradation": {d: _means(g) for d, g in in_dist.groupby("degradation")}},
    }


def evaluate(config: dict, train_set: str, model_dir: Path, prepared_dir: Path, out_json: Path, out_csv: Path) -> dict:
    cfg = config["evaluate"]
    model = load_restorer(model_dir).eval()
    frames = [read_manifest(Path(prepared_dir) / f"{split}.csv") for split in ("ood", "test")]
    with tracking.job_run("evaluate", f"evaluate:{train_set}", config) as run:
        run.set_tags({"gendeg.training_set": train_set})
        rows = pd.concat([score(model, frame, cfg["image_size"], split) for frame, split in zip(frames, ("ood", "test"), strict=True)],
                         ignore_index=True)
        summary = summarise(rows)
        per_set = rows.groupby(["split", "dataset", "degradation"], sort=True)[["psnr", "ssim", "input_psnr", "input_ssim"]]
        table = per_set.mean().reset_index().assign(train_set=train_set)
        with atomic_path(out_csv) as tmp:
            table.to_csv(tmp, index=False, float_format="%.4f", lineterminator="\n")
        write_json(summary, out_json)
        run.log_metrics({"ood.mean_psnr": summary["ood"]["mean_psnr"], "ood.mean_ssim": summary["ood"]["mean_ssim"],
                         "id.psnr": summary["in_distribution"]["psnr"], "id.ssim": summary["in_distribution"]["ssim"],
                         **{f"ood.{name}.psnr": s["psnr"] for name, s in summary["ood"]["per_set"].items()}})
    return summary
