"""Stage `train_classifier`: the frozen degradation classifier whose features the evaluation's KID and FID use.

Why a network of our own: KID and FID are usually computed on Inception features, which
would need a download (and torchvision, which does not import beside the pinned CPU
torch).  Instead `gendeg.measure.classifier` is trained to tell the six degradations and "clean"
apart on the *training split only* (degraded images labelled by their degradation, their
clean targets labelled "clean"), then frozen.  Its features are therefore sensitive to
exactly what a restorer should remove, and independent of every OOD set and of every
restorer, so all restorers are measured in one fixed space.  Numbers are comparable
within this project (same features) and not with published Inception-FID figures.

Output: models/classifier/ with classifier.safetensors + classifier.json (the network) and
summary.json (training loss, accuracy on the in-distribution test split).  Deterministic
on CPU for a given seed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from gendeg.data.manifest import read_manifest
from gendeg.data.pairs import PairBank
from gendeg.measure.classifier import CLASSES, class_index, fit_classifier, predict, save_classifier
from gendeg.pipeline import tracking
from gendeg.runtime.atomic import atomic_dir, write_json

SUMMARY_FILE = "summary.json"


def labelled_images(frame: pd.DataFrame, size: int, description: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Degraded images labelled with their degradation, plus each distinct clean target labelled "clean"."""
    bank = PairBank(frame, size=size, description=description)
    degraded, clean = bank.tensors()
    labels = torch.tensor([class_index(name) for name in bank.frame["degradation"]], dtype=torch.long)
    first_of_target = ~bank.frame["target_path"].duplicated().to_numpy()
    clean = clean[torch.from_numpy(first_of_target)]
    images = torch.cat([degraded, clean])
    labels = torch.cat([labels, torch.full((len(clean),), class_index("clean"), dtype=torch.long)])
    return images, labels


def cap_per_degradation(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """At most `limit` pairs of each degradation, drawn with `seed` across all its datasets (None: all).

    Why: every image is held in memory, and a classifier needs a few thousand examples, not
    the paper's 214k pairs.  Rows keep their manifest order, so the result is deterministic.
    """
    if limit is None:
        return frame
    parts = [g if len(g) <= limit else g.sample(n=limit, random_state=seed) for _, g in frame.groupby("degradation")]
    return frame.loc[sorted(i for part in parts for i in part.index)]


def train_classifier(config: dict, prepared_dir: Path, out_dir: Path) -> dict:
    cfg = config["classifier"]
    limit = cfg["max_pairs_per_degradation"]
    train = cap_per_degradation(read_manifest(Path(prepared_dir) / "train.csv"), limit, config["seed"])
    test = cap_per_degradation(read_manifest(Path(prepared_dir) / "test.csv"), limit, config["seed"])
    images, labels = labelled_images(train, cfg["image_size"], "loading training split")
    with tracking.job_run("train_classifier", "train_classifier", config) as run:
        model, losses = fit_classifier(images, labels, steps=cfg["steps"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                                       seed=config["seed"], width=cfg["width"], num_classes=len(CLASSES),
                                       weight_decay=cfg["weight_decay"], progress=True)
        test_images, test_labels = labelled_images(test, cfg["image_size"], "loading test split")
        accuracy = float((predict(model, test_images).argmax(1) == test_labels).double().mean())
        tail = losses[-max(1, len(losses) // 10):]
        summary = {"classes": list(CLASSES), "train_images": len(labels), "test_images": len(test_labels),
                   "feature_dim": model.feature_dim, "steps": cfg["steps"],
                   "loss_first": losses[0] if losses else None, "loss_last_10pct": sum(tail) / len(tail) if losses else None,
                   "test_accuracy": accuracy}
        with atomic_dir(out_dir) as tmp:
            save_classifier(model, tmp)
            write_json(summary, tmp / SUMMARY_FILE)
        for step, loss in enumerate(losses[::10]):
            run.log_metrics({"loss": loss}, step=step * 10)
        run.log_metrics({"test_accuracy": accuracy, "train_images": len(labels)})
    return summary
