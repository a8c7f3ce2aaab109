"""Paired images read from disk when a batch asks for them, and batches drawn by a seeded generator.

Only the manifest and one label, mu and sigma per pair stay in memory (a few hundred bytes a
pair), plus decoded pairs up to `CACHE_MB` (first come, first kept), so a job's memory is
bounded for the CPU default's few hundred pairs and the paper's 780k alike, and its first step
starts as soon as the manifest is read.  The pixels of a batch are
read when it is drawn, by a pool of threads (Pillow decodes and resizes with the GIL
released), and gathered in batch order: the bytes never depend on the number of readers.

Images are read as stored (`size=None`: restorers train on random crops of full-resolution
pairs, the convention of NAFNet / PromptIR / BasicSR) or resized so the shorter side equals
`size` and centre-cropped to a square (GenDeg's 256 px training, the CPU default's small
images).  Every random draw (pairs, crop corners, flips) comes from the step's generator in
a fixed order, so a batch is a function of (seed, step) alone: kill and resume give the same
bytes.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np
import pandas as pd
import torch
from PIL import Image

from gendeg import DEGRADATIONS

# Readers per bank: enough to keep a GPU fed on a cluster node, few enough not to thrash a laptop.
READERS = min(8, len(os.sched_getaffinity(0)))
# Decoded pairs kept per bank, first come first kept: a small set (the CPU default's few hundred
# 64 px pairs, ~20 MB) is decoded once, a large one costs at most this much memory.
CACHE_MB = 512


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


def load_image(path: str, size: int | None) -> np.ndarray:
    """uint8 HxWx3: as stored (`size=None`) or as `load_square` makes it."""
    if size is not None:
        return load_square(path, size)
    with Image.open(path) as image:
        return np.array(image.convert("RGB"), dtype=np.uint8)


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
    """The pairs of a manifest: labels and intensities in memory, pixels read per batch.

    `size`: None reads images as stored; an int resizes each to a `size` x `size` square.
    """

    def __init__(self, frame: pd.DataFrame, size: int | None, description: str = "pairs", readers: int = READERS,
                 cache_mb: float = CACHE_MB):
        if frame.empty:
            raise ValueError(f"{description}: the manifest has no rows")
        self.frame = frame.reset_index(drop=True)
        self.size = size
        self.description = description
        self.readers = readers
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._cache_room = int(cache_mb * 2**20)
        self._cache_lock = threading.Lock()
        self._degraded_paths = self.frame["image_path"].astype(str).to_numpy()
        self._clean_paths = self.frame["target_path"].astype(str).to_numpy()
        self.degradation = degradation_index(self.frame["degradation"])
        self.mu = torch.tensor(self.frame["mu"].to_numpy(dtype=np.float32))
        self.sigma = torch.tensor(self.frame["sigma"].to_numpy(dtype=np.float32))
        self._groups = [torch.nonzero(self.degradation == d).flatten() for d in range(len(DEGRADATIONS))]

    def __len__(self) -> int:
        return len(self.frame)

    def __getstate__(self) -> dict:  # a thread pool or lock does not cross process boundaries; new ones are made there
        return {k: v for k, v in self.__dict__.items() if k not in ("_pool", "_cache_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _cache_lock=threading.Lock())

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=max(1, self.readers), thread_name_prefix="pair-reader")

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(degraded, clean) of pair `index` as uint8 HxWx3 (read-only: it may be the cached copy)."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        pair = self._decode(index)
        with self._cache_lock:
            size = pair[0].nbytes + pair[1].nbytes
            if size <= self._cache_room:
                self._cache_room -= size
                for image in pair:
                    image.flags.writeable = False
                self._cache[index] = pair
        return pair

    def _decode(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Both images of a pair from disk; they must have one shape."""
        degraded_path, clean_path = self._degraded_paths[index], self._clean_paths[index]
        degraded, clean = load_image(degraded_path, self.size), load_image(clean_path, self.size)
        if degraded.shape != clean.shape:
            raise ValueError(f"{self.description}: pair {index} has a {degraded.shape[1]}x{degraded.shape[0]} degraded "
                             f"image ({degraded_path}) and a {clean.shape[1]}x{clean.shape[0]} clean one ({clean_path}); "
                             f"a pair must be aligned pixel for pixel")
        return degraded, clean

    def read_many(self, indices) -> list[tuple[np.ndarray, np.ndarray]]:
        """`read` of each index, in the order given; pairs not in the cache are decoded in parallel."""
        indices = [int(i) for i in indices]
        missing = list(dict.fromkeys(i for i in indices if i not in self._cache))
        if len(missing) > 1 and self.readers > 1:
            found = dict(zip(missing, self._pool.map(self.read, missing), strict=True))
        else:
            found = {i: self.read(i) for i in missing}
        return [found[i] if i in found else self._cache[i] for i in indices]

    def sample_indices(self, batch_size: int, generator: torch.Generator, balance: str = "degradation") -> torch.Tensor:
        """Uniform over pairs, or uniform over degradations first (`balance="degradation"`)."""
        if balance == "none":
            return torch.randint(len(self), (batch_size,), generator=generator)
        groups = [g for g in self._groups if len(g)]
        choice = torch.randint(len(groups), (batch_size,), generator=generator)
        return torch.stack([groups[c][torch.randint(len(groups[c]), (1,), generator=generator)][0] for c in choice.tolist()])

    def batch(self, indices: torch.Tensor, crop: int, generator: torch.Generator, flip: bool = True) -> Batch:
        """Read the pairs and cut the same random crop (and flip) from both sides of each.

        Resized squares no larger than `crop` are taken whole; otherwise each pair gets its own
        corner, drawn in [0, height - crop] x [0, width - crop] (all tops, then all lefts, then
        the flips), so pairs of any size share one batch."""
        pairs = self.read_many(indices)
        if self.size is not None and crop >= self.size:
            degraded = np.stack([d for d, _ in pairs])
            clean = np.stack([c for _, c in pairs])
        else:
            for index, (degraded, _) in zip(indices.tolist(), pairs, strict=True):
                if min(degraded.shape[:2]) < crop:
                    raise ValueError(f"{self.description}: pair {index} ({self._degraded_paths[index]}) is "
                                     f"{degraded.shape[1]}x{degraded.shape[0]}, smaller than the {crop}-pixel training "
                                     f"crop: lower the stage's `crop` or drop the pair")
            tops = [int(torch.randint(d.shape[0] - crop + 1, (1,), generator=generator)) for d, _ in pairs]
            lefts = [int(torch.randint(d.shape[1] - crop + 1, (1,), generator=generator)) for d, _ in pairs]
            degraded = np.stack([d[y:y + crop, x:x + crop] for (d, _), y, x in zip(pairs, tops, lefts, strict=True)])
            clean = np.stack([c[y:y + crop, x:x + crop] for (_, c), y, x in zip(pairs, tops, lefts, strict=True)])
        degraded, clean = _to_float(degraded), _to_float(clean)
        if flip:
            mirror = torch.rand(len(indices), generator=generator) < 0.5
            degraded[mirror] = degraded[mirror].flip(-1)
            clean[mirror] = clean[mirror].flip(-1)
        return Batch(degraded, clean, self.degradation[indices], self.mu[indices], self.sigma[indices])

    def tensors(self, indices=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole images of `indices` (all when None) as float tensors: for a few grid rows or one
        chunk of an evaluation, never a whole large set; the images must share one size."""
        indices = range(len(self)) if indices is None else indices
        indices = indices.tolist() if torch.is_tensor(indices) else list(indices)
        pairs = self.read_many(indices)
        shapes = {d.shape for d, _ in pairs}
        if len(shapes) > 1:
            raise ValueError(f"{self.description}: images of several sizes ({sorted(shapes)[:3]}...) cannot form one "
                             f"tensor; read them one by one (PairBank.read) or set the stage's image_size")
        return _to_float(np.stack([d for d, _ in pairs])), _to_float(np.stack([c for _, c in pairs]))


def _to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 BxHxWx3 -> float Bx3xHxW in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().float() / 255.0
