"""Stage `train_restorer` (one job per training set): the same all-in-one restorer, the same
step budget and data pipeline, trained on a different set of pairs.

Training sets:
    existing  the existing paired datasets only (prepared/train.csv)
    gends     existing + generated pairs (gends/manifest.csv)
    gendeg    generated pairs only (the Synthetic rows of gends/manifest.csv)
    oracle    existing + the physics generator's pairs on the same clean images and
              intensities as the generated ones (gends/oracle.csv; synthesis.oracle: true)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from gendeg import tracking
from gendeg.atomic import atomic_dir, write_json
from gendeg.images import to_array
from gendeg.manifest import read_manifest
from gendeg.pairs import PairBank
from gendeg.restorers import build_restorer, save_restorer
from gendeg.training import clear_checkpoint, loss_summary, run_fingerprint, settings_from_config, train

TRAINING_SETS = ("existing", "gends", "gendeg", "oracle")


def training_pairs(train_set: str, data_dir: Path) -> pd.DataFrame:
    """The pairs a training set consists of, from its data folder (prepared/ or gends/)."""
    if train_set == "existing":
        return read_manifest(Path(data_dir) / "train.csv")
    if train_set == "oracle":
        path = Path(data_dir) / "oracle.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: the oracle training set needs synthesis.oracle: true")
        return read_manifest(path)
    if train_set in ("gends", "gendeg"):
        frame = read_manifest(Path(data_dir) / "manifest.csv")
        return frame[frame["category"] == "Synthetic"] if train_set == "gendeg" else frame
    raise ValueError(f"unknown training set {train_set!r}; expected one of {TRAINING_SETS}")


def restoration_grid(model: torch.nn.Module, bank: PairBank, per_degradation: int = 1) -> np.ndarray:
    """Rows: one training pair per degradation; columns: degraded, restored, clean."""
    picks = torch.cat([torch.nonzero(bank.degradation == d).flatten()[:per_degradation]
                       for d in bank.degradation.unique(sorted=True)])
    degraded, clean = bank.tensors(picks)
    with torch.no_grad():
        restored = model(degraded).clamp(0, 1)
    rows = [torch.cat([degraded[i], restored[i], clean[i]], dim=2) for i in range(len(picks))]
    return to_array(torch.cat(rows, dim=1))


def train_restorer(config: dict, train_set: str, data_dir: Path, out_dir: Path, checkpoint_dir: Path | None) -> dict:
    cfg = config["restorer"]
    train_cfg = cfg["train"]
    frame = training_pairs(train_set, data_dir)
    bank = PairBank(frame, size=cfg["image_size"], description=f"loading {train_set}")
    model = build_restorer(cfg["model"], seed=config["seed"])  # same initial weights for every training set
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg["lr"], weight_decay=train_cfg.get("weight_decay", 0.0),
                                  betas=(0.9, 0.9))

    def loss_fn(net, step: int, generator: torch.Generator) -> torch.Tensor:
        indices = bank.sample_indices(train_cfg["batch_size"], generator, train_cfg.get("balance", "degradation"))
        batch = bank.batch(indices, train_cfg["crop"], generator)
        return F.l1_loss(net(batch.degraded), batch.clean)

    with tracking.job_run("train_restorer", f"train_restorer:{train_set}", config) as run:
        run.set_tags({"gendeg.training_set": train_set})
        run.log_params({"train_set": train_set, "pairs": len(bank),
                        "model.parameters": sum(p.numel() for p in model.parameters())})
        settings = settings_from_config(train_cfg, config["seed"], checkpoint_dir, f"train restorer ({train_set})",
                                        run_fingerprint(config, train_set, data_dir))
        result = train(model, optimizer, loss_fn, settings, tracker=run)
        summary = {"train_set": train_set, "pairs": len(bank), "steps": train_cfg["steps"],
                   "resumed_from": result.resumed_from, **loss_summary(result.losses),
                   "pairs_per_degradation": {k: int(v) for k, v in frame.groupby("degradation").size().items()}}
        run.log_metrics({k: v for k, v in summary.items() if k.startswith("loss")})
        with atomic_dir(out_dir) as tmp:
            save_restorer(model, cfg["model"], tmp)
            write_json(summary, tmp / "train_summary.json")
        run.log_image(restoration_grid(model, bank), f"train_samples_{train_set}.png")
    clear_checkpoint(checkpoint_dir)
    return summary
