"""params.yaml with a preset applied, as the stages read it: what tests build their models from."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml

from gendeg.pipeline.config import resolve

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


@functools.cache
def _preset(name: str) -> dict:
    return resolve({**yaml.safe_load(PARAMS.read_text()), "preset": name}, f"{PARAMS} (preset {name})")


def preset_params(name: str = "default") -> dict:
    """params.yaml with preset `name` applied: the one statement of the settings the code has no default
    for (a fresh copy: callers may change it)."""
    return copy.deepcopy(_preset(name))


# A tiny random GenDeg: the CPU default's settings from params.yaml (which alone states route,
# prediction_type, ...) with a smaller UNet.
TINY_GENDEG = {
    **preset_params()["gendeg"]["model"],
    "unet": {"block_out_channels": [16, 32], "attention_levels": [False, True], "cross_attention_dim": 16,
             "attention_head_dim": 8, "norm_num_groups": 8, "layers_per_block": 1},
    "n_tokens": 2,
    "class_embedding_dim": 16,
    "noise_schedule": {"num_train_timesteps": 100},
}
