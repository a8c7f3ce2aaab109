"""Where one paper-architecture training step spends its time on a GPU, part by part.

    python benchmarks/gpu_step_breakdown.py [--sd-folder DIR]

GenDeg on SD v1.5's architecture (random weights, as `gpu_throughput.py`), 256x256, batch 16,
bf16 autocast: the VAE encoding of both images, the CLIP prompts, the whole loss forward +
backward (VAE included), drawing a batch on the CPU, one AdamW step, one EMA step (per tensor
and fused) and gradient clipping; milliseconds per call, the mean of 5 after one warm-up.
Prints the figures.  Needs CUDA.

No result file holds its figures yet: it has not run on a GPU (its code was checked on the
CPU with the tiny architecture).  The earlier H200 step breakdown came from a one-off
script, not this one, and was removed from `gpu_throughput.json` as unreproducible.
"""

from __future__ import annotations

import sys

import argparse
import tempfile
import time
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel
from gpu_throughput import PAPER_TRAIN, pairs, paper_model

from gendeg.runtime.training import step_generator
from gendeg.stages.train_gendeg import gendeg_loss, gendeg_optimizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the random SD folder the tests build too
from helpers.random_sd import write_random_stable_diffusion  # noqa: E402


def milliseconds(call, repeats: int = 5) -> float:
    call()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    torch.cuda.synchronize()
    return round((time.perf_counter() - start) / repeats * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sd-folder", type=Path, default=None, help="a real SD v1.5 folder instead of random weights")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_step_breakdown: needs a CUDA GPU")
    work = Path(tempfile.mkdtemp())
    model = paper_model(args.sd_folder or write_random_stable_diffusion(work / "sd", "sd15")).cuda()
    bank = pairs(256, work / "pairs")
    train_cfg = {**PAPER_TRAIN, "batch_size": 16, "crop": 256}
    optimizer, loss_fn = gendeg_optimizer(model, train_cfg), gendeg_loss(bank, train_cfg, 256)
    trainable = [p for p in model.parameters() if p.requires_grad]
    batch = bank.batch(torch.arange(16) % len(bank), 256, step_generator(0, 0)).to("cuda")
    keep_text = torch.zeros(16, dtype=torch.bool, device="cuda")

    def forward_backward() -> None:
        loss_fn(model, 0, step_generator(0, 0)).backward()

    figures = {}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        figures["vae_encode_32_images"] = milliseconds(lambda: model.codec.encode(torch.cat([batch.clean, batch.degraded])))
        figures["clip_16_prompts"] = milliseconds(lambda: model.text_tokens(batch.degradation, keep_text, ["a street"] * 16))
        figures["loss_forward_backward_incl_vae"] = milliseconds(forward_backward)
    figures["batch_draw_cpu"] = milliseconds(lambda: bank.batch(bank.sample_indices(16, step_generator(0, 1)), 256,
                                                                step_generator(0, 1)))
    figures["adamw_step"] = milliseconds(optimizer.step)
    for foreach in (False, True):
        ema = EMAModel(trainable, decay=0.9999, foreach=foreach)
        ema.to("cuda")
        figures[f"ema_step_{'foreach' if foreach else 'per_tensor'}"] = milliseconds(lambda ema=ema: ema.step(trainable))
        del ema
    figures["clip_grad_norm"] = milliseconds(lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    print({"device": torch.cuda.get_device_name(), "step_breakdown_ms": figures})


if __name__ == "__main__":
    main()
