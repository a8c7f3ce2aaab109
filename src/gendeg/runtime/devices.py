"""Where the networks run: the GPU when the job has one, otherwise the CPU.

Training places its model through accelerate (`gendeg.runtime.training.train`); inference stages put
the model they load on `compute_device()`.  Batches, noise and crops are always drawn on the
CPU from seeded generators (the same draws on every machine) and moved to wherever the model
is: `model_device` says where that is.
"""

from __future__ import annotations

import torch
from torch import nn


def compute_device() -> torch.device:
    """The device accelerate would train on: CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_device(model: nn.Module) -> torch.device:
    """The device of `model`'s parameters (also through a DDP wrapper); the CPU for a parameterless one."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
