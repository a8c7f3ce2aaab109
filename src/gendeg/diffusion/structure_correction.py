"""The structure-correction network S at use time: load it, apply it to generated images.

Training lives in the `train_structure_correction` stage (gendeg.stages.train_structure_correction);
the synthesis stage only needs this module, so no stage imports another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gendeg import DEGRADATIONS
from gendeg.restorers import load_restorer
from gendeg.runtime.devices import compute_device, model_device

CONFIG_FILE = "config.json"
MODEL_DIR = "model"


def correct(model: nn.Module, clean: torch.Tensor, generated: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """S applied in chunks on the model's device, clamped to [0, 1] (what a saved PNG would hold)."""
    outputs, device = [], model_device(model)
    with torch.no_grad():
        for start in range(0, len(clean), chunk):
            x = torch.cat([clean[start:start + chunk], generated[start:start + chunk]], dim=1)
            outputs.append(model(x.to(device)).clamp(0, 1).to(generated.device))
    return torch.cat(outputs)



@dataclass
class StructureCorrection:
    """A trained S and the degradations it applies to; identity everywhere else.  `image_size`: the
    size it was trained at, which is the only size it corrects (None: not recorded)."""

    model: nn.Module | None
    degradations: tuple[str, ...]
    image_size: int | None = None

    def covers(self, degradation: str) -> bool:
        if degradation not in DEGRADATIONS:
            raise ValueError(f"structure correction: unknown degradation {degradation!r}; expected one of "
                             f"{list(DEGRADATIONS)}")
        return self.model is not None and degradation in self.degradations

    def apply(self, clean: torch.Tensor, generated: torch.Tensor, degradation: str) -> torch.Tensor:
        """GenDeg's output (Bx3xHxW in [0, 1]) corrected for `degradation`; `generated` itself when not covered."""
        if clean.shape != generated.shape or generated.ndim != 4 or generated.shape[1] != 3:
            raise ValueError(f"structure correction: expected clean and generated of one Bx3xHxW shape, got "
                             f"{tuple(clean.shape)} and {tuple(generated.shape)}")
        if not self.covers(degradation):
            return generated
        if self.image_size is not None and tuple(generated.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"structure correction was trained on {self.image_size}x{self.image_size} images but is "
                             f"given {generated.shape[-1]}x{generated.shape[-2]}: set structure_correction.image_size "
                             f"to the size synthesis samples at (synthesis.image_size)")
        return correct(self.model, clean.float(), generated.float()).to(generated.dtype)


def load_structure_correction(out_dir: str | Path) -> StructureCorrection | None:
    """S from a stage output folder, on the compute device, or None when the stage was disabled."""
    out_dir = Path(out_dir)
    config_path = out_dir / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"structure correction output {str(out_dir)!r}: missing {CONFIG_FILE}")
    info = json.loads(config_path.read_text())
    if not info.get("enabled", False):
        return None
    return StructureCorrection(load_restorer(out_dir / MODEL_DIR).to(compute_device()), tuple(info["degradations"]),
                               info.get("image_size"))
