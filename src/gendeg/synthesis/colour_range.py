"""Hold each generated image's colour within what the real pairs of its degradation show.

Why: GenDeg's generated motion-blur pairs changed brightness by a median 0.19 x mu where real
blur conserves the channel means, and generated raindrop pairs brightened where real ones
darken (docs/restoration.md). A restorer trained on such pairs learns to re-tint images it
should leave alone. The constraint is measured on the *training* pairs only: per colour
channel, the gain (degraded mean / clean mean) of the real pairs of the degradation, between
two quantiles. A generated image whose gain falls outside is scaled back to the nearest bound;
one inside is left untouched (bytes unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from gendeg.data.images import read_image

EPSILON = 1e-3  # channel means below this (black images) count as this, so gains stay finite


@dataclass(frozen=True)
class ColourRange:
    """Per-channel bounds [low, high] of the gain degraded mean / clean mean, from `pairs` real pairs."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]
    pairs: int

    def to_dict(self) -> dict:
        return {"low": list(self.low), "high": list(self.high), "pairs": self.pairs}


def channel_gains(clean: torch.Tensor, degraded: torch.Tensor) -> torch.Tensor:
    """Bx3 gains mean(degraded_c) / mean(clean_c) of Bx3xHxW images in [0, 1]."""
    return degraded.mean(dim=(2, 3)) / clean.mean(dim=(2, 3)).clamp_min(EPSILON)


def fit_colour_range(real_pairs: pd.DataFrame, quantiles: tuple[float, float], max_pairs: int,
                     seed: int) -> ColourRange:
    """Gain bounds of (at most `max_pairs`, a seeded subset of) the real pairs in `real_pairs`.

    `real_pairs` holds manifest rows (image_path, target_path) of one degradation.
    """
    if real_pairs.empty:
        raise ValueError("colour range: no real training pair of this degradation to measure")
    low_q, high_q = quantiles
    if not 0 <= low_q < high_q <= 1:
        raise ValueError(f"colour range: quantiles must satisfy 0 <= low < high <= 1, got {list(quantiles)}")
    if len(real_pairs) > max_pairs:
        real_pairs = real_pairs.iloc[np.sort(np.random.default_rng(seed).choice(len(real_pairs), max_pairs, replace=False))]
    gains = []
    for row in real_pairs.itertuples():
        clean = read_image(row.target_path).reshape(-1, 3).mean(axis=0)
        degraded = read_image(row.image_path).reshape(-1, 3).mean(axis=0)
        gains.append(degraded / np.maximum(clean, EPSILON))
    gains = np.asarray(gains, dtype=np.float64)
    low, high = np.quantile(gains, low_q, axis=0), np.quantile(gains, high_q, axis=0)
    return ColourRange(tuple(map(float, low)), tuple(map(float, high)), len(gains))


def constrain_colour(clean: torch.Tensor, generated: torch.Tensor,
                     colour_range: ColourRange) -> tuple[torch.Tensor, torch.Tensor]:
    """`generated` with each channel scaled so its gain lies in the range, and the Bx3 factors used.

    Images already inside the range come back unchanged (factor exactly 1).
    """
    if clean.shape != generated.shape or generated.ndim != 4 or generated.shape[1] != 3:
        raise ValueError(f"colour range: expected clean and generated of one Bx3xHxW shape, got "
                         f"{tuple(clean.shape)} and {tuple(generated.shape)}")
    gains = channel_gains(clean.double(), generated.double())
    low = torch.tensor(colour_range.low, dtype=torch.float64)
    high = torch.tensor(colour_range.high, dtype=torch.float64)
    target = torch.minimum(torch.maximum(gains, low), high)
    # A black channel (gain 0) cannot be scaled to any gain: its factor stays 1.
    factors = torch.where(gains > 0, target / torch.where(gains > 0, gains, 1.0), torch.ones_like(gains))
    inside = (factors == 1).all(dim=1)
    scaled = (generated.double() * factors[:, :, None, None]).clamp(0, 1).to(generated.dtype)
    return torch.where(inside[:, None, None, None], generated, scaled), factors
