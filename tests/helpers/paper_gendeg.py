"""The paper preset's GenDeg on a Stable Diffusion folder, and a bank of random pairs to train it on:
the speed tests' fixtures, and what benchmarks/gpu_mfu.py measures (speed does not depend on content)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from PIL import Image

from gendeg import DEGRADATIONS
from gendeg.data.pairs import PairBank
from gendeg.diffusion import GenDegModel

ROOT = Path(__file__).resolve().parents[2]


def paper_gendeg_config() -> dict:
    """params.yaml's `gendeg` section as the pipeline resolves it under the paper preset."""
    from gendeg.pipeline.config import resolve

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["preset"] = "paper"
    return resolve(params)["gendeg"]


def build_model(gendeg_cfg: dict, folder: Path, device: torch.device) -> GenDegModel:
    """The GenDeg of `gendeg_cfg` with its UNet (and VAE, CLIP) read from the SD folder `folder`, seed 0."""
    config = copy.deepcopy(gendeg_cfg["model"])
    config["unet"]["pretrained"] = str(folder)
    torch.manual_seed(0)
    return GenDegModel.from_config(config).to(device)


def random_pairs(count: int, size: int, directory: Path) -> PairBank:
    """`count` pairs of smooth random images, all degradations, written under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(0)
    rows = []
    for i in range(count):
        paths = []
        for side in ("degraded", "clean"):
            small = generator.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
            path = directory / f"{i}_{side}.png"
            Image.fromarray(small).resize((size, size), Image.BICUBIC).save(path)
            paths.append(str(path))
        rows.append({"image_path": paths[0], "target_path": paths[1], "degradation": DEGRADATIONS[i % len(DEGRADATIONS)],
                     "mu": 0.05 + 0.2 * (i % 7) / 7, "sigma": 0.08, "caption": "a street at night"})
    return PairBank(pd.DataFrame(rows), size=size, description=f"loading {size}px pairs")
