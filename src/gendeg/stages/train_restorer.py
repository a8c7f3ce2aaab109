"""Stage `train_restorer` (one job per architecture x training set, and one per data-scaling
count): the same step budget and data pipeline, trained on a different set of pairs.

The pairs come from `data/training_sets/<set>.csv` (stage `select_pairs`, which documents
the training sets); the architecture from the job (`architectures:` in params.yaml), its
settings from `restorer.model.<arch>`.  Every job of one architecture starts from the
same initial weights (seeded by `seed`), so training sets differ only in their data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gendeg.data.images import to_array
from gendeg.data.manifest import read_manifest
from gendeg.data.pairs import PairBank
from gendeg.pipeline import tracking
from gendeg.restorers import RestorerConfigError, build_restorer, restore, save_restorer
from gendeg.runtime.atomic import atomic_dir, write_json
from gendeg.runtime.devices import model_device
from gendeg.runtime.training import LossFn, clear_checkpoint, loss_summary, run_fingerprint, settings_from_config, train


GRID_SIZE = 256


def model_config(config: dict, arch: str) -> dict:
    """`restorer.model.<arch>` plus the architecture name: what build_restorer takes."""
    models = config["restorer"]["model"]
    if arch not in models:
        raise RestorerConfigError(f"restorer.model has no entry for architecture {arch!r} (listed in architectures:); "
                                  f"add e.g. `{arch}: {{width: 16}}` under restorer.model (have {sorted(models)})")
    return {**models[arch], "arch": arch}


def restoration_grid(model: torch.nn.Module, bank: PairBank, per_degradation: int = 1) -> np.ndarray:
    """Rows: one training pair per degradation; columns: degraded, restored, clean (full-resolution
    pairs shown as `GRID_SIZE` squares, so pairs of any size share the grid)."""
    picks = torch.cat([torch.nonzero(bank.degradation == d).flatten()[:per_degradation]
                       for d in bank.degradation.unique(sorted=True)])
    shown = PairBank(bank.frame.iloc[picks.tolist()], size=bank.size or GRID_SIZE, description="training samples")
    degraded, clean = shown.tensors()
    restored = restore(model, degraded)
    rows = [torch.cat([degraded[i], restored[i], clean[i]], dim=2) for i in range(len(picks))]
    return to_array(torch.cat(rows, dim=1))


def augment(degraded: torch.Tensor, clean: torch.Tensor, train_cfg: dict,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two augmentations against a restorer that re-tints instead of restoring:

    - `identity_fraction`: that share of the pairs shows the clean crop as input, so the network
      learns to leave undegraded content as it is (mild OOD inputs then are not "corrected");
    - `colour_augment` a: the same random per-channel gain in [1 - a, 1 + a] on both sides, so a
      scene's colour says nothing about the correction (few scenes per degradation would
      otherwise teach scene -> tint).
    Both draw from `generator` only when enabled, so a recipe without them keeps its bytes.
    """
    if train_cfg["identity_fraction"] > 0:
        keep_clean = torch.rand(len(degraded), generator=generator) < train_cfg["identity_fraction"]
        degraded = torch.where(keep_clean[:, None, None, None], clean, degraded)
    if train_cfg["colour_augment"] > 0:
        spread = train_cfg["colour_augment"]
        gain = 1.0 + spread * (2 * torch.rand(len(degraded), 3, 1, 1, generator=generator) - 1)
        degraded, clean = (degraded * gain).clamp(0, 1), (clean * gain).clamp(0, 1)
    return degraded, clean


def restoration_loss(bank: PairBank, train_cfg: dict) -> LossFn:
    """L1 between the restored crop and the clean one, on a batch drawn on the CPU and trained where the model is."""
    def loss_fn(net, step: int, generator: torch.Generator) -> torch.Tensor:
        indices = bank.sample_indices(train_cfg["batch_size"], generator, train_cfg["balance"])
        batch = bank.batch(indices, train_cfg["crop"], generator)
        degraded, clean = augment(batch.degraded, batch.clean, train_cfg, generator)
        device = model_device(net)
        return F.l1_loss(net(degraded.to(device)), clean.to(device))
    return loss_fn


def train_restorer(config: dict, arch: str, train_set: str, pairs_csv: Path, out_dir: Path,
                   checkpoint_dir: Path | None, name: str | None = None, seed: int | None = None) -> dict:
    """Train `arch` on the pairs listed in `pairs_csv`; `name` labels the job (default `<arch>-<set>`).

    `seed` (one of params.yaml `seeds:`) replaces the config's seed for this restorer alone: its
    initial weights and every batch draw; None keeps the config's."""
    run_name = f"train_restorer:{name or f'{arch}-{train_set}'}" + (f"@{seed}" if seed is not None else "")
    if seed is not None:  # one of the DAG's seeds: named in the run (`nafnet · gends · s1`)
        config = {**config, "seed": seed}
    cfg = config["restorer"]
    train_cfg = cfg["train"]
    name = name or f"{arch}-{train_set}"
    model_cfg = model_config(config, arch)
    frame = read_manifest(pairs_csv)
    bank = PairBank(frame, size=cfg["image_size"], description=f"loading {name}")
    model = build_restorer(model_cfg, seed=config["seed"])  # same initial weights for every training set
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"],
                                  betas=(0.9, 0.9))
    loss_fn = restoration_loss(bank, train_cfg)
    with tracking.job_run("train_restorer", run_name, config) as run:
        run.set_tags({"gendeg.training_set": train_set, "gendeg.arch": arch, "gendeg.job": name,
                      "gendeg.seed": str(config["seed"])})
        run.log_params({"arch": arch, "train_set": train_set, "pairs": len(bank),
                        "model.parameters": sum(p.numel() for p in model.parameters())})
        # The fingerprint keys the resumable checkpoint: a different job or pair list never resumes it.
        settings = settings_from_config(train_cfg, config["seed"], checkpoint_dir, f"train restorer ({name})",
                                        run_fingerprint(config, name, pairs_csv))
        result = train(model, optimizer, loss_fn, settings, tracker=run)
        if not result.main_process:  # multi-process job: the main process writes the outputs
            return {}
        generated = frame[frame["category"] != "Real"]
        summary = {"arch": arch, "train_set": train_set, "seed": config["seed"], "pairs": len(bank),
                   "generated_pairs": int(len(generated)),
                   "steps": train_cfg["steps"], **loss_summary(result.losses),
                   "pairs_per_degradation": {k: int(v) for k, v in frame.groupby("degradation").size().items()}}
        run.log_metrics({k: v for k, v in summary.items() if k.startswith("loss")})
        with atomic_dir(out_dir) as tmp:
            save_restorer(model, model_cfg, tmp)
            write_json(summary, tmp / "train_summary.json")
        run.log_image(restoration_grid(model, bank), "train_samples.png",  # one name across jobs: MLflow compares same-named images
                      columns=["input", "restored", "target"])
    clear_checkpoint(checkpoint_dir)
    return summary
