"""Pieces every restorer shares: config merging, padding to a size multiple, channel LayerNorm."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class RestorerConfigError(ValueError):
    """A restorer config names an unknown key or holds a value the architecture cannot use."""


# Set for every architecture by params.yaml (restorer.model.<arch>.width, structure_correction.model.width),
# the one place their values are stated: no default here.  Each module's DEFAULTS holds the rest.
REQUIRED = ("width",)  # channels at full resolution (the first level / stage); doubles per level


def merge_config(arch: str, defaults: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with `cfg`; an unknown key is an error (a typo must not silently fall back),
    and so is a missing REQUIRED key."""
    unknown = sorted(set(cfg) - set(defaults) - set(REQUIRED) - {"arch"})
    if unknown:
        raise RestorerConfigError(
            f"restorer arch={arch!r}: unknown config key(s) {unknown}; known keys: {sorted({*defaults, *REQUIRED})}")
    missing = [key for key in REQUIRED if key not in cfg]
    if missing:
        raise RestorerConfigError(f"restorer arch={arch!r}: missing config key(s) {missing} (no default: params.yaml "
                                  f"states them under restorer.model.{arch})")
    merged = {**defaults, **{k: v for k, v in cfg.items() if k != "arch"}}
    merged["arch"] = arch
    return merged


def require_list(arch: str, cfg: dict[str, Any], key: str, length: int | None = None) -> list[int]:
    value = cfg[key]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise RestorerConfigError(f"restorer arch={arch!r}: {key} must be a list of non-negative ints, got {value!r}")
    if length is not None and len(value) != length:
        raise RestorerConfigError(f"restorer arch={arch!r}: {key} must have {length} entries, got {value!r}")
    return list(value)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad H and W at the bottom/right so both divide by `multiple`.

    Reflection keeps the border statistics natural for the network; tiny inputs where
    reflection is impossible (pad >= size) fall back to replicating the edge.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a BxCxHxW map (NAFNet / Restormer 'WithBias' LN)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        y = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


class ResidualRestorer(nn.Module):
    """Base: pads to the body's size multiple, adds the body's output to the degraded input, crops back.

    With `in_channels` > 3 (e.g. [clean, generated] for structure correction) the residual is
    added to the *last* three input channels, the image being corrected.
    """

    size_multiple: int = 1
    in_channels: int = 3

    def body(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected Bx{self.in_channels}xHxW input, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x, self.size_multiple)
        out = padded[:, -3:] + self.body(padded)
        return out[..., :h, :w]
