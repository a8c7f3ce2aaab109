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

The latents live in one file of fixed-size float32 records (one per pair: clean, clean
mirrored, degraded, degraded mirrored), written as they are encoded and read a batch's rows
at a time with `os.pread`: memory stays flat at any number of pairs (the paper's 214k pairs
at 256 px make a 14 GB file).  The file is named by a key of the pair files (path, size,
modification time), the resize, the VAE's weights and config, and the torch version and
device; it is kept in a folder (the training checkpoint's), so a resumed job reuses it and
any change to data or VAE encodes afresh.  Under `accelerate launch` the main process
encodes and the others wait, then all read the same file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState

from gendeg.data.pairs import PairBank
from gendeg.diffusion.codecs import AutoencoderKLCodec

# The four latents of a record, in file order.
SLOTS = ("clean", "clean_mirrored", "degraded", "degraded_mirrored")


def applies(codec, crop: int, image_size: int) -> bool:
    """Cache only what is worth it and exact: a VAE codec, whole images (no random crop)."""
    return isinstance(codec, AutoencoderKLCodec) and crop >= image_size


def cache_key(bank: PairBank, codec: AutoencoderKLCodec, device: torch.device) -> str:
    """SHA-256 of what the latents depend on: the pair files (path, size, mtime), the resize, the VAE,
    and where it encodes.  Stat, not content: hashing 428k images would cost minutes on every resume."""
    digest = hashlib.sha256(f"size={bank.size}".encode())
    for degraded, clean in zip(bank.frame["image_path"], bank.frame["target_path"], strict=True):
        for path in (degraded, clean):
            stat = os.stat(path)
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    for name, tensor in sorted(codec.vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    digest.update(json.dumps({"codec": codec.config, "scaling_factor": codec.scaling_factor, "torch": torch.__version__,
                              "device": torch.device(device).type}, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class LatentCache:
    """Latents of every pair in a file of float32 records `len(SLOTS) x C x h x w`, read by rows."""

    def __init__(self, path: Path, key: str, temporary: tempfile.TemporaryDirectory | None = None):
        meta = json.loads(Path(path).with_suffix(".json").read_text())
        self.path, self.key, self.count, self.shape = Path(path), key, meta["count"], tuple(meta["shape"])
        self._record = len(SLOTS) * int(np.prod(self.shape)) * 4
        size = self.path.stat().st_size
        if size != self.count * self._record:
            raise ValueError(f"latent cache {self.path} holds {size} bytes, expected {self.count} records of "
                             f"{self._record}: delete it and train again")
        self._fd = os.open(self.path, os.O_RDONLY)
        self._temporary = temporary  # kept alive with the cache when it has no folder of its own

    def __len__(self) -> int:
        return self.count

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def rows(self, indices) -> torch.Tensor:
        """Records of `indices`: a tensor n x len(SLOTS) x C x h x w."""
        records = [np.frombuffer(os.pread(self._fd, self._record, int(i) * self._record), dtype=np.float32)
                   for i in indices]
        return torch.from_numpy(np.stack(records)).reshape(len(records), len(SLOTS), *self.shape)

    @classmethod
    def build(cls, bank: PairBank, codec: AutoencoderKLCodec, device: torch.device | str = "cpu",
              folder: Path | None = None, chunk: int = 32, progress=None) -> LatentCache:
        """Encode (or find in `folder`) the latents of every pair in `bank`, on `device`, in fp32."""
        device = torch.device(device)
        state = PartialState(cpu=device.type == "cpu")
        temporary = None
        if folder is None:
            if state.num_processes > 1:
                raise ValueError("a latent cache shared by several processes needs a folder (the checkpoint folder)")
            temporary = tempfile.TemporaryDirectory(prefix="gendeg-latents-")
            folder = temporary.name
        key = cache_key(bank, codec, device)
        path = Path(folder) / f"latents-{key[:24]}.bin"
        if state.is_main_process and not path.is_file():
            _encode(bank, codec, device, path, chunk, progress)
        state.wait_for_everyone()
        cache = cls(path, key, temporary)
        if len(cache) != len(bank):
            raise ValueError(f"{path} holds {len(cache)} pairs, the data {len(bank)}: delete it")
        return cache

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(clean, degraded) latents of `indices`, mirrored where `PairBank.batch(indices, crop >= size,
        generator)` would mirror: the same single draw from `generator`."""
        mirror = (torch.rand(len(indices), generator=generator) < 0.5).long()
        records = self.rows(indices.tolist())
        picked = torch.arange(len(indices))
        return records[picked, mirror], records[picked, 2 + mirror]


def _encode(bank: PairBank, codec: AutoencoderKLCodec, device: torch.device, path: Path, chunk: int, progress) -> None:
    """Encode chunk by chunk, appending records to a partial file renamed when complete."""
    codec.to(device)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    shape = None
    starts = range(0, len(bank), chunk)
    with open(partial, "wb") as out:
        for start in (progress(starts, desc="encoding latents") if progress else starts):
            degraded, clean = bank.tensors(range(start, min(start + chunk, len(bank))))
            latents = []
            for images in (clean, degraded):
                images = images.to(device)
                with torch.autocast(device.type, enabled=False):
                    latents += [codec.encode(images), codec.encode(images.flip(-1))]
            records = torch.stack(latents, dim=1).float().cpu().contiguous()  # n x SLOTS x C x h x w
            shape = tuple(records.shape[2:])
            out.write(records.numpy().tobytes())
        out.flush()
        os.fsync(out.fileno())
    path.with_suffix(".json").write_text(json.dumps({"count": len(bank), "shape": list(shape)}))
    os.replace(partial, path)
