"""VAE latents of the training pairs, encoded once instead of at every step.

With a frozen VAE (the paper preset's `autoencoder_kl` codec) the latents of a pair never
change, yet encoding both images costs a fifth of an SD v1.5 training step.  The only
augmentation a whole-image batch gets is the horizontal flip, and a VAE is not
flip-equivariant, so every image is encoded twice: as is and mirrored.  A batch then picks
the latents of the flips `PairBank.batch` would have drawn, from the same generator draws,
so training from the cache is the same run as encoding on the fly (up to floating-point
rounding of a different batch composition; the cache encodes in fp32 where a bf16 run
encodes in bf16).

Random crops smaller than the stored image cannot be cached this way (a crop's latent is
not a crop of the latent at the borders): `applies` is False for them, and for the
parameter-free pixel-unshuffle codec, whose encoding costs nothing.

Optionally kept in a folder (the training checkpoint's), under a name derived from the pair
images, the VAE's weights and config, and the torch version and device, so a resumed job
reuses it and any change to data or VAE encodes afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from gendeg.data.pairs import PairBank
from gendeg.diffusion.codecs import AutoencoderKLCodec


def applies(codec, crop: int, image_size: int) -> bool:
    """Cache only what is worth it and exact: a VAE codec, whole images (no random crop)."""
    return isinstance(codec, AutoencoderKLCodec) and crop >= image_size


def cache_key(bank: PairBank, codec: AutoencoderKLCodec, device: torch.device) -> str:
    """SHA-256 of what the latents depend on: the pair images, the VAE, and where it encodes."""
    digest = hashlib.sha256()
    for images in (bank.clean, bank.degraded):
        digest.update(str(tuple(images.shape)).encode())
        digest.update(images.contiguous().numpy().tobytes())
    for name, tensor in sorted(codec.vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    digest.update(json.dumps({"codec": codec.config, "scaling_factor": codec.scaling_factor, "torch": torch.__version__,
                              "device": torch.device(device).type}, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class LatentCache:
    """Latents of every pair: `clean[i, f]`, `degraded[i, f]` with f = 0 as stored, 1 mirrored."""

    def __init__(self, clean: torch.Tensor, degraded: torch.Tensor, key: str):
        if clean.shape != degraded.shape or clean.ndim != 5 or clean.shape[1] != 2:
            raise ValueError(f"latent cache tensors must both be N x 2 x C x h x w, got {tuple(clean.shape)} "
                             f"and {tuple(degraded.shape)}")
        self.clean, self.degraded, self.key = clean, degraded, key

    def __len__(self) -> int:
        return self.clean.shape[0]

    @classmethod
    def build(cls, bank: PairBank, codec: AutoencoderKLCodec, device: torch.device | str = "cpu",
              folder: Path | None = None, chunk: int = 32, progress=None) -> LatentCache:
        """Encode (or load from `folder`) the latents of every pair in `bank`, on `device`, in fp32."""
        device = torch.device(device)
        key = cache_key(bank, codec, device)
        path = Path(folder) / f"latents-{key[:24]}.safetensors" if folder is not None else None
        if path is not None and path.is_file():
            tensors = load_file(str(path))
            if len(tensors["clean"]) != len(bank):
                raise ValueError(f"{path} holds {len(tensors['clean'])} pairs, the data {len(bank)}: delete it")
            return cls(tensors["clean"], tensors["degraded"], key)
        codec.to(device)
        encoded = {"clean": [], "degraded": []}
        starts = range(0, len(bank), chunk)
        for start in (progress(starts, desc="encoding latents") if progress else starts):
            indices = torch.arange(start, min(start + chunk, len(bank)))
            degraded, clean = bank.tensors(indices)
            for name, images in (("clean", clean), ("degraded", degraded)):
                images = images.to(device)
                with torch.autocast(device.type, enabled=False):
                    plain, mirrored = codec.encode(images), codec.encode(images.flip(-1))
                encoded[name].append(torch.stack([plain, mirrored], dim=1).float().cpu())
        cache = cls(torch.cat(encoded["clean"]), torch.cat(encoded["degraded"]), key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            save_file({"clean": cache.clean.contiguous(), "degraded": cache.degraded.contiguous()}, str(partial))
            os.replace(partial, path)
        return cache

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(clean, degraded) latents of `indices`, mirrored where `PairBank.batch(indices, crop >= size,
        generator)` would mirror: the same single draw from `generator`."""
        mirror = (torch.rand(len(indices), generator=generator) < 0.5).long()
        return self.clean[indices, mirror], self.degraded[indices, mirror]
