"""Held-out motion blur (GoPro-like): frames of a moving camera averaged in linear light.

GoPro's blurry images are averages of consecutive sharp high-speed frames.  We warp the
clean image by a smooth camera motion (translation along a curve, in-plane rotation and
zoom, so the blur varies across the frame, unlike a single convolution kernel), average
the frames after undoing the display gamma, and re-apply it.  Severity scales the motion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kornia
import numpy as np
import torch

from gendeg.degradations.common import check_input, finish, merged_config, uniform

DEFAULTS: dict[str, Any] = {
    "n_frames": 11,
    "translation": [0.15, 0.5],  # total shift at severity 1, fraction of the shorter side
    "curvature": [-0.5, 0.5],  # bend of the shift path relative to its length
    "rotation": [-6.0, 6.0],  # total in-plane rotation at severity 1, degrees
    "zoom": [-0.08, 0.08],  # total relative scale change at severity 1
    "gamma": 2.2,
}


def apply(clean: np.ndarray, rng: np.random.Generator, severity: float, depth: np.ndarray | None = None,
          config: Mapping[str, Any] | None = None) -> np.ndarray:
    cfg = merged_config(DEFAULTS, config, "ood_blur")
    clean = check_input(clean, severity, "ood_blur")
    height, width, _ = clean.shape
    frames = int(cfg["n_frames"])
    heading = rng.uniform(0, 2 * np.pi)
    shift = uniform(rng, cfg["translation"]) * min(height, width) * severity
    bend = uniform(rng, cfg["curvature"])
    rotation = uniform(rng, cfg["rotation"]) * severity
    scale_change = uniform(rng, cfg["zoom"]) * severity

    t = np.linspace(-0.5, 0.5, frames)
    along, sideways = t * shift, bend * shift * (t ** 2 - 1.0 / 12.0)
    dx = along * np.cos(heading) - sideways * np.sin(heading)
    dy = along * np.sin(heading) + sideways * np.cos(heading)
    centre = torch.tensor([[width / 2 - 0.5, height / 2 - 0.5]], dtype=torch.float32).repeat(frames, 1)
    matrices = kornia.geometry.transform.get_rotation_matrix2d(
        centre, torch.tensor(rotation * t, dtype=torch.float32),
        torch.tensor(1.0 + scale_change * t, dtype=torch.float32)[:, None].repeat(1, 2))
    matrices[:, 0, 2] += torch.tensor(dx, dtype=torch.float32)
    matrices[:, 1, 2] += torch.tensor(dy, dtype=torch.float32)

    linear = torch.from_numpy(np.ascontiguousarray(np.power(clean, cfg["gamma"]).transpose(2, 0, 1)))
    warped = kornia.geometry.transform.warp_affine(linear[None].repeat(frames, 1, 1, 1), matrices,
                                                   (height, width), padding_mode="reflection", align_corners=True)
    average = warped.mean(dim=0).numpy().transpose(1, 2, 0)
    return finish(np.power(np.clip(average, 0, 1), 1.0 / cfg["gamma"]))
