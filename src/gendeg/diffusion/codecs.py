"""Latent codecs: images in [0, 1] <-> the latents GenDeg diffuses.

Both codecs share one interface (``encode``, ``decode``, ``latent_channels``,
``downsample``, ``config``) so the model never asks which one it holds:

* ``pixel_unshuffle`` -- parameter-free, exact, instant: the CPU default.  A 64x64 image
  becomes a 16x16x48 latent (factor 4); nothing is learned, nothing is lost.
* ``autoencoder_kl`` -- a diffusers AutoencoderKL (Stable Diffusion's VAE), frozen,
  loaded from a local folder: the paper preset.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CODEC_TYPES = ("pixel_unshuffle", "autoencoder_kl")


class PixelUnshuffleCodec(nn.Module):
    """Space-to-depth of the image scaled to [-1, 1]; decode is its exact inverse."""

    def __init__(self, factor: int):
        super().__init__()
        self.factor = int(factor)
        self.latent_channels = 3 * self.factor**2
        self.downsample = self.factor
        self.config = {"type": "pixel_unshuffle", "factor": self.factor}
        self.condition_scale = 1.0  # nothing is scaled: the concatenated latent is the encoding itself

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] % self.factor or images.shape[-2] % self.factor:
            raise ValueError(f"image size {tuple(images.shape[-2:])} is not a multiple of the codec factor {self.factor}")
        return F.pixel_unshuffle(images * 2.0 - 1.0, self.factor)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return ((F.pixel_shuffle(latents, self.factor) + 1.0) / 2.0).clamp(0.0, 1.0)


CONDITION_LATENTS = ("unscaled", "scaled")


class AutoencoderKLCodec(nn.Module):
    """A frozen diffusers AutoencoderKL; latents are the posterior mode times `scaling_factor`.

    The mode, not a sample, keeps encoding deterministic (InstructPix2Pix does the same for
    the image condition).  Its weights are not saved with GenDeg: they stay in `path`.

    `condition_latent` says what the UNet's extra input channels see: ``unscaled`` (the posterior
    mode itself, as InstructPix2Pix, the released GenDeg code -- ddpm_edit.py L743 -- and diffusers'
    train_instruct_pix2pix concatenate it) or ``scaled`` (times `scaling_factor`, 5.5x smaller for
    SD v1.5: what checkpoints saved before the setting existed were trained with).  The noisy
    target latent is scaled either way.  `condition_scale` turns an `encode` output into it.
    """

    def __init__(self, vae, scaling_factor: float | None = None, config: dict | None = None,
                 condition_latent: str = "unscaled"):
        super().__init__()
        if condition_latent not in CONDITION_LATENTS:
            raise ValueError(f"codec.condition_latent must be one of {CONDITION_LATENTS}, got {condition_latent!r}")
        self.vae = vae.eval().requires_grad_(False)
        self.scaling_factor = float(scaling_factor if scaling_factor is not None else vae.config.scaling_factor)
        self.condition_scale = 1.0 / self.scaling_factor if condition_latent == "unscaled" else 1.0
        self.latent_channels = int(vae.config.latent_channels)
        self.downsample = 2 ** (len(vae.config.block_out_channels) - 1)
        self.config = dict(config or {"type": "autoencoder_kl"})

    @classmethod
    def from_pretrained(cls, path: str | Path, subfolder: str | None = "vae", scaling_factor: float | None = None,
                        condition_latent: str = "unscaled"):
        from diffusers import AutoencoderKL

        folder = Path(path) / (subfolder or "")
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"codec.path: no AutoencoderKL config at {folder / 'config.json'}")
        vae = AutoencoderKL.from_pretrained(str(path), subfolder=subfolder, local_files_only=True)
        config = {"type": "autoencoder_kl", "path": str(path), "subfolder": subfolder, "scaling_factor": scaling_factor,
                  "condition_latent": condition_latent}
        return cls(vae, scaling_factor, config, condition_latent)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(images * 2.0 - 1.0).latent_dist.mode() * self.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return ((self.vae.decode(latents / self.scaling_factor).sample + 1.0) / 2.0).clamp(0.0, 1.0)


def build_codec(config: dict) -> nn.Module:
    """Codec from its config dict: {"type": "pixel_unshuffle", "factor": 2} or
    {"type": "autoencoder_kl", "path": <diffusers model folder>, "subfolder": "vae", "scaling_factor": null,
    "condition_latent": "unscaled"} (scaling_factor null: the VAE config's, 0.18215 for SD v1.5;
    condition_latent: see AutoencoderKLCodec).  In a GenDeg model config the path may be
    left out: it defaults to ``unet.pretrained`` (see model.merge_config)."""
    kind = config.get("type")
    if kind == "pixel_unshuffle":
        if "factor" not in config:  # no default here: gendeg.diffusion.model.DEFAULT_CONFIG is the one source
            raise KeyError(f"codec.factor is required for codec.type 'pixel_unshuffle' (got {config})")
        return PixelUnshuffleCodec(config["factor"])
    if kind == "autoencoder_kl":
        if "path" not in config:
            raise KeyError("codec.path is required for codec.type 'autoencoder_kl'")
        return AutoencoderKLCodec.from_pretrained(config["path"], config.get("subfolder", "vae"),
                                                  config.get("scaling_factor"), config.get("condition_latent", "unscaled"))
    raise ValueError(f"codec.type must be one of {CODEC_TYPES}, got {kind!r}")
