"""Paired images in memory, and batches drawn from them by a seeded generator.

The built-in and small user datasets fit in memory as uint8, which keeps a CPU training
step dominated by the model, not by PNG decoding.  Images of any size are resized so the
shorter side equals `size` and centre-cropped to a square; random crops of `crop` pixels
are then drawn per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch
from PIL import Image

from gendeg import DEGRADATIONS
from gendeg.runtime.progress import progress


def load_square(path: str, size: int) -> np.ndarray:
    """Read an image as uint8 HxWx3, shorter side resized to `size` (Lanczos), centre-cropped."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        width, height = image.size
        if min(width, height) != size:
            scale = size / min(width, height)
            image = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.LANCZOS)
            width, height = image.size
        left, top = (width - size) // 2, (height - size) // 2
        return np.array(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def degradation_index(names) -> torch.Tensor:
    lookup = {name: i for i, name in enumerate(DEGRADATIONS)}
    unknown = sorted(set(names) - set(lookup))
    if unknown:
        raise ValueError(f"unknown degradation name(s) {unknown}; expected one of {list(DEGRADATIONS)}")
    return torch.tensor([lookup[name] for name in names], dtype=torch.long)


@dataclass
class Batch:
    degraded: torch.Tensor  # B x 3 x crop x crop, float in [0, 1]
    clean: torch.Tensor
    degradation: torch.Tensor  # B, index into DEGRADATIONS
    mu: torch.Tensor  # B, float
    sigma: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        """The batch on `device` (drawn on the CPU, trained on wherever the model is)."""
        return Batch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


class PairBank:
    """All pairs of a manifest as uint8 tensors, plus their labels and intensities."""

    def __init__(self, frame: pd.DataFrame, size: int, description: str = "loading pairs"):
        if frame.empty:
            raise ValueError(f"{description}: the manifest has no rows")
        self.frame = frame.reset_index(drop=True)
        self.size = size
        degraded, clean = [], []
        for row in progress(self.frame.itertuples(), total=len(self.frame), desc=description):
            degraded.append(load_square(row.image_path, size))
            clean.append(load_square(row.target_path, size))
        self.degraded = torch.from_numpy(np.stack(degraded)).permute(0, 3, 1, 2).contiguous()
        self.clean = torch.from_numpy(np.stack(clean)).permute(0, 3, 1, 2).contiguous()
        self.degradation = degradation_index(self.frame["degradation"])
        self.mu = torch.tensor(self.frame["mu"].to_numpy(dtype=np.float32))
        self.sigma = torch.tensor(self.frame["sigma"].to_numpy(dtype=np.float32))
        self._groups = [torch.nonzero(self.degradation == d).flatten() for d in range(len(DEGRADATIONS))]

    def __len__(self) -> int:
        return len(self.frame)

    def sample_indices(self, batch_size: int, generator: torch.Generator, balance: str = "degradation") -> torch.Tensor:
        """Uniform over pairs, or uniform over degradations first (`balance="degradation"`)."""
        if balance == "none":
            return torch.randint(len(self), (batch_size,), generator=generator)
        groups = [g for g in self._groups if len(g)]
        choice = torch.randint(len(groups), (batch_size,), generator=generator)
        return torch.stack([groups[c][torch.randint(len(groups[c]), (1,), generator=generator)][0] for c in choice.tolist()])

    def batch(self, indices: torch.Tensor, crop: int, generator: torch.Generator, flip: bool = True) -> Batch:
        """Gather pairs, same random crop and flip for both sides of a pair."""
        degraded = self.degraded[indices].float() / 255.0
        clean = self.clean[indices].float() / 255.0
        if crop < self.size:
            top = torch.randint(self.size - crop + 1, (len(indices),), generator=generator)
            left = torch.randint(self.size - crop + 1, (len(indices),), generator=generator)
            degraded = torch.stack([d[:, y:y + crop, x:x + crop] for d, y, x in zip(degraded, top, left, strict=True)])
            clean = torch.stack([c[:, y:y + crop, x:x + crop] for c, y, x in zip(clean, top, left, strict=True)])
        if flip:
            mirror = torch.rand(len(indices), generator=generator) < 0.5
            degraded[mirror] = degraded[mirror].flip(-1)
            clean[mirror] = clean[mirror].flip(-1)
        return Batch(degraded, clean, self.degradation[indices], self.mu[indices], self.sigma[indices])

    def tensors(self, indices=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole images (no crop) as float tensors, for evaluation."""
        indices = slice(None) if indices is None else indices
        return self.degraded[indices].float() / 255.0, self.clean[indices].float() / 255.0
