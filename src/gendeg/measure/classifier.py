"""Degradation-type classifier: recognises which of `gendeg.DEGRADATIONS` (or "clean") an image shows.

Two uses: (1) type fidelity of GenDeg samples - does a generated "haze" pair show haze to
a classifier trained on real training pairs only (never on generated data)?  That judge
sees the change a pair makes (`pair_change`), not the degraded image: each built-in
stand-in has its own few scenes, so a judge of the degraded image learns the scenes with
the degradations and fails on other scenes (`benchmarks/intensity_control.py` measures
both judges on the true physics generator's output); (2) the frozen penultimate features
of the image classifier are the embedding for `metrics.kid` / `metrics.frechet_distance`,
a download-free stand-in for Inception features that is, by construction, sensitive to
what degradations look like.

The network is a small fully-convolutional CNN (GroupNorm, so a sample's features do not
depend on its batch and train/eval behave alike), any input size; features are the
global mean and standard deviation of the last feature map (std pooling keeps texture
and contrast, which separate e.g. haze from low light).

One statement per setting: width and the training recipe (steps, batch_size, lr,
weight_decay) are params.yaml's ``classifier:`` block, which the train_classifier stage passes
in, so they have no default here.  Outside the pipeline take them from
``gendeg.pipeline.config.load_params()["classifier"]``.  A saved classifier's
``classifier.json`` holds its network's settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from gendeg import DEGRADATIONS
from gendeg.runtime.atomic import atomic_path, write_json
from gendeg.runtime.devices import model_device

CLASSES: tuple[str, ...] = DEGRADATIONS + ("clean",)
WEIGHTS_FILE = "classifier.safetensors"
CONFIG_FILE = "classifier.json"


def class_index(name: str, num_classes: int = len(CLASSES)) -> int:
    """Label of a degradation name (or "clean" when num_classes is 7)."""
    names = CLASSES[:num_classes]
    if name not in names:
        raise KeyError(f"classifier: unknown class {name!r}; known: {list(names)}")
    return names.index(name)


def pair_change(clean: torch.Tensor, degraded: torch.Tensor) -> torch.Tensor:
    """What a degradation did to a pair, as an image in [0, 1]: (degraded - clean + 1) / 2.

    The input of the type judge: it keeps what the degradation added (streaks, flakes, veil,
    blur edges, darkening) and drops most of the scene, so a judge trained on a few scenes
    still recognises the degradation on others.
    """
    if clean.shape != degraded.shape:
        raise ValueError(f"pair_change: clean {tuple(clean.shape)} vs degraded {tuple(degraded.shape)}")
    return (degraded - clean + 1) / 2


def _stage(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    groups = lambda c: min(8, c)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1), nn.GroupNorm(groups(out_ch), out_ch), nn.GELU(),
        nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.GroupNorm(groups(out_ch), out_ch), nn.GELU())


class DegradationClassifier(nn.Module):
    """`width` channels in the first stage (classifier.width; features have 8 * width dims); `num_classes`
    the first classes of CLASSES (6 = degradations only, 7 = with "clean")."""

    def __init__(self, width: int, num_classes: int = len(CLASSES), in_channels: int = 3) -> None:
        super().__init__()
        if not 1 <= num_classes <= len(CLASSES):
            raise ValueError(f"DegradationClassifier: num_classes must be in 1..{len(CLASSES)}, got {num_classes}")
        self.config = {"width": width, "num_classes": num_classes, "in_channels": in_channels}
        self.body = nn.Sequential(_stage(in_channels, width, 1), _stage(width, 2 * width, 2),
                                  _stage(2 * width, 4 * width, 2), _stage(4 * width, 4 * width, 2))
        self.feature_dim = 8 * width
        self.head = nn.Linear(self.feature_dim, num_classes)

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASSES[: self.config["num_classes"]]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW RGB in [0, 1] -> (B, 8 * width) embedding."""
        if x.ndim != 4 or x.shape[1] != self.config["in_channels"]:
            raise ValueError(f"DegradationClassifier: expected Bx{self.config['in_channels']}xHxW, got {tuple(x.shape)}")
        maps = self.body(x * 2 - 1).flatten(2)
        return torch.cat([maps.mean(-1), maps.std(-1, unbiased=False)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def fit_classifier(images: torch.Tensor, labels: torch.Tensor, *, steps: int, batch_size: int, lr: float,
                   weight_decay: float, width: int, seed: int, num_classes: int = len(CLASSES),
                   progress: bool = False) -> tuple[DegradationClassifier, list[float]]:
    """Train from scratch with AdamW + cosine schedule on (N, 3, H, W) images and (N,) int labels.

    `steps`, `batch_size`, `lr`, `weight_decay` and `width` are params.yaml's classifier block.

    Deterministic on CPU: weight init, batch order and the flip augmentation all come from
    `seed` (init inside a forked RNG, batches and flips from a `torch.Generator`).  Flips
    are the only augmentation, since they keep every degradation's appearance (crops or
    colour jitter could change intensity cues).  Returns the model in eval mode and the
    per-step training losses.
    """
    labels = torch.as_tensor(labels, dtype=torch.long)
    if images.ndim != 4 or labels.shape != (images.shape[0],):
        raise ValueError(f"fit_classifier: need (N,3,H,W) images and (N,) labels, got {tuple(images.shape)} "
                         f"and {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"fit_classifier: labels must be in [0, {num_classes}), got range "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DegradationClassifier(width=width, num_classes=num_classes, in_channels=images.shape[1])
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    # OneCycle needs at least one warm-up step (pct_start * steps > 1) or it divides by zero:
    # 10% warm-up as before from 20 steps on, longer for the few-step smoke runs.
    pct_start = min(0.5, max(0.1, 2.0 / max(steps, 1)))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 4), pct_start=pct_start)
    model.train()
    losses: list[float] = []
    order = torch.empty(0, dtype=torch.long)
    for _ in tqdm(range(steps), desc="classifier", disable=not progress):
        if order.numel() < batch_size:
            order = torch.cat([order, torch.randperm(images.shape[0], generator=generator)])
        index, order = order[:batch_size], order[batch_size:]
        batch = images[index]
        flip_h = torch.rand(batch.shape[0], generator=generator) < 0.5
        batch = torch.where(flip_h[:, None, None, None], batch.flip(-1), batch)
        loss = F.cross_entropy(model(batch), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return model.eval(), losses


@torch.no_grad()
def extract_features(model: DegradationClassifier, images: torch.Tensor | Iterable[torch.Tensor],
                     batch_size: int = 64) -> torch.Tensor:
    """(N, F) features of a (N,3,H,W) tensor or of an iterable of (B,3,H,W) batches, in eval mode."""
    model.eval()
    batches = images.split(batch_size) if isinstance(images, torch.Tensor) else images
    device = model_device(model)
    return torch.cat([model.features(batch.to(device)).cpu() for batch in batches])


@torch.no_grad()
def predict(model: DegradationClassifier, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """(N, num_classes) class probabilities."""
    model.eval()
    device = model_device(model)
    return torch.cat([model(batch.to(device)).softmax(-1).cpu() for batch in images.split(batch_size)])


def save_classifier(model: DegradationClassifier, directory: str | Path) -> None:
    """`classifier.safetensors` + `classifier.json` in `directory` (each written atomically)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    write_json({**model.config, "classes": list(model.class_names)}, directory / CONFIG_FILE)


def load_classifier(directory: str | Path) -> DegradationClassifier:
    """Rebuild from `classifier.json`, load weights strictly, return in eval mode."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"classifier checkpoint {str(directory)!r}: missing {path.name}")
    config = json.loads(config_path.read_text())
    classes = config.pop("classes", None)
    model = DegradationClassifier(**config)
    if classes is not None and tuple(classes) != model.class_names:
        raise ValueError(f"{config_path}: classes {classes} differ from this version's {list(model.class_names)}")
    model.load_state_dict(load_file(str(weights_path)), strict=True)
    return model.eval()
