"""All-in-one restoration networks: degraded Bx3xHxW in [0, 1] -> restored image.

Every restorer predicts a residual that is added to its input (global residual), accepts
any H x W (padded internally to the size multiple it needs, cropped back) and is built
from a plain dict, e.g. the `restorer:` block of params.yaml:

    model = build_restorer({"arch": "nafnet", "width": 16}, seed=0)

Checkpoints are a folder with `model.safetensors` and `config.json` (never pickles).

One statement per setting: `width` is set for every architecture by params.yaml
(restorer.model.<arch>, structure_correction.model), so it has no default here
(common.REQUIRED) and a config without it is an error that names it; outside the pipeline,
take the values from `gendeg.pipeline.config.load_params()["restorer"]["model"][arch]`.  The
other knobs (block counts, heads, in_channels, ...) are set only by the paper preset,
structure correction and tests: each module's DEFAULTS is their one statement.  They stay in
code rather than in workflow/schemas/params.schema.yaml: the schema only validates
(gendeg.pipeline.config never applies a `default:`), so a default there would be a second,
unread copy, and stating them in params.yaml would change resolved_params/train_restorer.json
and so re-run every trained restorer.  A checkpoint's config.json holds every key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gendeg.restorers import nafnet, promptir, swin
from gendeg.restorers.common import REQUIRED, RestorerConfigError, merge_config
from gendeg.runtime.atomic import atomic_path, write_json
from gendeg.runtime.devices import model_device

BUILDERS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "nafnet": nafnet.build,
    "promptir": promptir.build,
    "swin": swin.build,
}
# Each architecture's optional settings (gendeg.pipeline.orchestration.preflight checks configs against them).
DEFAULTS: dict[str, dict[str, Any]] = {
    "nafnet": nafnet.DEFAULTS,
    "promptir": promptir.DEFAULTS,
    "swin": swin.DEFAULTS,
}
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"

__all__ = ["BUILDERS", "DEFAULTS", "REQUIRED", "RestorerConfigError", "build_restorer", "count_parameters",
           "load_restorer", "resolved_config", "save_restorer"]


def _arch(cfg: dict[str, Any]) -> str:
    arch = cfg.get("arch")
    if arch not in BUILDERS:
        raise RestorerConfigError(f"restorer config: arch must be one of {sorted(BUILDERS)}, got {arch!r}")
    return arch


def resolved_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """`cfg` with every default filled in: what is saved next to the weights and logged to MLflow."""
    arch = _arch(cfg)
    return merge_config(arch, DEFAULTS[arch], cfg)


def build_restorer(cfg: dict[str, Any], seed: int | None = None) -> nn.Module:
    """Build the network `cfg["arch"]` describes.

    With `seed`, weights are initialised from that seed inside a forked RNG, so the same
    seed gives the same weights and the caller's global RNG state is left untouched.
    """
    arch = _arch(cfg)
    if seed is None:
        return BUILDERS[arch](cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BUILDERS[arch](cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_restorer(model: nn.Module, cfg: dict[str, Any], directory: str | Path) -> None:
    """Write `model.safetensors` and `config.json` (defaults resolved) into `directory`, atomically per file.

    `pretrained_path` is dropped from the saved config: the saved weights already contain
    the encoder, and a checkpoint must load without the original file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = resolved_config(cfg)
    if "pretrained_path" in config:
        config["pretrained_path"] = None
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"arch": config["arch"]})
    write_json(config, directory / CONFIG_FILE)


def load_restorer(directory: str | Path) -> nn.Module:
    """Rebuild the network from `config.json` and load `model.safetensors` strictly; returns it in eval mode."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"restorer checkpoint {str(directory)!r}: missing {path.name}")
    cfg = json.loads(config_path.read_text())
    cfg.pop("pretrained_path", None)
    model = build_restorer(cfg)
    try:
        model.load_state_dict(load_file(str(weights_path)), strict=True)
    except RuntimeError as error:
        raise RestorerConfigError(f"restorer checkpoint {str(weights_path)!r} does not match {config_path.name}: {error}") from error
    return model.eval()


def restore(model: nn.Module, degraded: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Restored images in [0, 1], in batches, without gradients (evaluation and report grids);
    computed on the model's device, returned on `degraded`'s."""
    device = model_device(model)
    with torch.no_grad():
        return torch.cat([model(degraded[i:i + batch_size].to(device)).clamp(0, 1).to(degraded.device)
                          for i in range(0, len(degraded), batch_size)])


def restore_tiled(model: nn.Module, degraded: torch.Tensor, tile: int, overlap: int = 32) -> torch.Tensor:
    """`restore` of images larger than `tile` pixels a side in overlapping tiles, averaged where
    they overlap: a whole test image as stored (a 6000x4000 SICE photo) need not fit the device.
    Images within `tile` are restored whole, exactly as `restore` does."""
    height, width = degraded.shape[-2:]
    if max(height, width) <= tile:
        return restore(model, degraded)
    out = torch.zeros_like(degraded)
    weight = torch.zeros((1, 1, height, width), dtype=degraded.dtype, device=degraded.device)
    for top in _tile_starts(height, tile, overlap):
        for left in _tile_starts(width, tile, overlap):
            window = (..., slice(top, top + tile), slice(left, left + tile))
            out[window] += restore(model, degraded[window])
            weight[window] += 1
    return out / weight


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins covering [0, length): a stride of tile - overlap, the last tile flush with the end."""
    if length <= tile:
        return [0]
    stride = tile - min(overlap, tile // 4)  # small tiles keep most of their area new
    return list(range(0, length - tile, stride)) + [length - tile]

