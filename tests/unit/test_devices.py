"""Where models and batches live: the pieces that let every stage run on a GPU (checked on the
meta device here, which needs no GPU; the CUDA run is benchmarks/gpu_throughput.py)."""

from __future__ import annotations

import torch
from torch import nn

from gendeg.data.pairs import Batch
from gendeg.runtime.devices import model_device


def test_a_batch_moves_every_field():
    batch = Batch(degraded=torch.rand(2, 3, 4, 4), clean=torch.rand(2, 3, 4, 4), degradation=torch.tensor([0, 5]),
                  mu=torch.tensor([0.1, 0.2]), sigma=torch.tensor([0.05, 0.1]))
    moved = batch.to("meta")
    for name in ("degraded", "clean", "degradation", "mu", "sigma"):
        original, copy = getattr(batch, name), getattr(moved, name)
        assert copy.device.type == "meta", name
        assert copy.shape == original.shape and copy.dtype == original.dtype, name
    assert batch.clean.device.type == "cpu"  # the original stays where it was drawn


def test_model_device_follows_the_parameters():
    assert model_device(nn.Linear(2, 2)).type == "cpu"
    assert model_device(nn.Linear(2, 2, device="meta")).type == "meta"
    assert model_device(nn.Identity()).type == "cpu"  # no parameters: the CPU

