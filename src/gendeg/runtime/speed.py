"""Levers for the paper-scale GPU step: batch planning to the card's memory and UNet speed-ups.

Nothing here changes what is computed, only how: the per-device batch and gradient
accumulation keep the effective batch (accelerate averages the micro-batch gradients), and
channels-last memory, PyTorch's scaled-dot-product attention and `torch.compile` change
kernels, not the model.  `benchmarks/gpu_mfu.py` measures each; docs/gpu.md has the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`tensor` (drawn on the CPU) on `device` without a host-device synchronisation: a copy from
    pageable memory to a GPU waits for the GPU's queue to drain, one from pinned memory does not.
    Anywhere but CUDA it is `tensor.to(device)`."""
    if torch.device(device).type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


@dataclass(frozen=True)
class BatchPlan:
    micro_batch: int  # per device and step of accumulation
    grad_accum: int
    processes: int
    effective_batch: int  # micro_batch * grad_accum * processes
    expected_peak_bytes: int  # by the linear memory model the plan was made with


def memory_model(points: list[tuple[int, int]]) -> tuple[float, float]:
    """(fixed bytes, bytes per sample) of peak memory, fitted through measured (batch, peak bytes) points.

    Two or more micro-batch sizes are needed: one point cannot separate the weights and
    optimizer state (fixed) from the activations (per sample).
    """
    batches = sorted({b for b, _ in points})
    if len(batches) < 2:
        raise ValueError(f"memory_model needs peaks at two or more batch sizes, got {points}")
    x = torch.tensor([float(b) for b, _ in points], dtype=torch.float64)
    y = torch.tensor([float(m) for _, m in points], dtype=torch.float64)
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    fixed = float(y.mean() - slope * x.mean())
    if slope <= 0:
        raise ValueError(f"peak memory does not grow with the batch in {points}: no per-sample cost to plan with")
    return max(fixed, 0.0), slope


def plan_batch(effective_batch: int, memory_bytes: int, fixed_bytes: float, bytes_per_sample: float,
               processes: int = 1, headroom: float = 0.85, max_micro_batch: int | None = None) -> BatchPlan:
    """The largest per-device micro-batch that fits `headroom` of `memory_bytes`, with gradient
    accumulation making up `effective_batch` exactly (the paper's 128 over all processes).

    The micro-batch divides the per-process share, so no step mixes batch sizes.
    """
    if effective_batch < 1 or processes < 1:
        raise ValueError(f"effective_batch and processes must be >= 1, got {effective_batch} and {processes}")
    if effective_batch % processes:
        raise ValueError(f"effective_batch {effective_batch} is not divisible by {processes} processes")
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom must be in (0, 1], got {headroom}")
    share = effective_batch // processes
    budget = memory_bytes * headroom - fixed_bytes
    fits = int(budget // bytes_per_sample) if budget > 0 else 0
    if max_micro_batch is not None:
        fits = min(fits, max_micro_batch)
    if fits < 1:
        raise ValueError(f"not even one sample fits: {memory_bytes / 2**30:.1f} GiB x {headroom} leaves "
                         f"{budget / 2**30:.2f} GiB after {fixed_bytes / 2**30:.2f} GiB fixed, one sample needs "
                         f"{bytes_per_sample / 2**30:.3f} GiB")
    micro = max(d for d in range(1, min(fits, share) + 1) if share % d == 0)
    return BatchPlan(micro_batch=micro, grad_accum=share // micro, processes=processes, effective_batch=effective_batch,
                     expected_peak_bytes=int(fixed_bytes + micro * bytes_per_sample))


def attention_processors(model) -> list[str]:
    """Names of the attention processors the UNet uses (AttnProcessor2_0 is PyTorch's SDPA)."""
    return sorted({type(p).__name__ for p in model.unet.attn_processors.values()})


def apply_unet_speedups(model, channels_last: bool = False, sdpa: bool = True, compile_unet: bool = False,
                        compile_mode: str | None = None) -> dict:
    """Switch the levers on for a GenDegModel in place; returns what is now in effect.

    `compile_unet` compiles the UNet module in place (`nn.Module.compile`), so state-dict
    keys and checkpoints are unchanged.  channels-last also applies to a VAE codec.
    """
    from diffusers.models.attention_processor import AttnProcessor2_0

    if sdpa:
        model.unet.set_attn_processor(AttnProcessor2_0())
    if channels_last:
        model.unet.to(memory_format=torch.channels_last)
        vae = getattr(model.codec, "vae", None)
        if vae is not None:
            vae.to(memory_format=torch.channels_last)
    if compile_unet:
        model.unet.compile(mode=compile_mode)
    return {"channels_last": channels_last, "attention": attention_processors(model), "compile": compile_unet,
            "compile_mode": compile_mode}


class AutocastForward(torch.nn.Module):
    """A GenDegModel whose UNet evaluations run under autocast (bf16) and return fp32.

    For sampling: `generate` keeps the noise, the sampler's state and the VAE in fp32 and
    only the network evaluations, nearly all of the work, drop to bf16.  Everything else
    (codec, text_tokens, config, ...) is the wrapped model's.
    """

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, *args, **kwargs) -> torch.Tensor:
        device = next(self.model.parameters()).device
        with torch.autocast(device.type, dtype=self.dtype):
            output = self.model(*args, **kwargs)
        return output.float()

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)
