"""Image files <-> float arrays.  Every stage sees RGB float32 HxWx3 in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gendeg.runtime.atomic import atomic_path


def read_image(path: str | Path) -> np.ndarray:
    """Read any 8/16-bit grey, RGB or RGBA image as RGB float32 in [0, 1]."""
    with Image.open(path) as image:
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image, dtype=np.float32) / 65535.0
            array = np.repeat(array[..., None], 3, axis=2)
        else:
            array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return np.clip(array, 0.0, 1.0)


def to_uint8(array: np.ndarray) -> np.ndarray:
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_png(array: np.ndarray, path: str | Path) -> None:
    """8-bit RGB PNG, written atomically; the same array always gives the same bytes."""
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(array), mode="RGB").save(tmp, format="PNG")


def to_array(tensor: torch.Tensor) -> np.ndarray:
    """3xHxW tensor -> HxWx3 float32 array."""
    return tensor.detach().float().cpu().numpy().transpose(1, 2, 0).astype(np.float32)
