"""GenDeg training and sampling speed as model FLOP utilisation: FLOPs counted, not typed.

    python benchmarks/gpu_mfu.py [--architecture sd15|tiny] [--sd-folder DIR] [--compile no|also|only]
                                 [--sections train sample] [--out FILE]

Training.  The paper preset's GenDeg (params.yaml, `presets.paper.gendeg`: SD v1.5 UNet with
the 8-channel InstructPix2Pix input, CLIP prompts, epsilon loss, bf16, EMA 0.9999) on a
Stable Diffusion folder: a real one (`--sd-folder`) or a randomly initialised one of SD v1.5's
exact architecture (`tests/helpers/random_sd.py`; speed does not depend on the weights).
The FLOPs of one training micro-step are counted with `torch.utils.flop_counter.FlopCounterMode`
(forward + backward, attention counted through PyTorch's math kernel, which the counter
sees), twice: from cached VAE latents (the *model* FLOPs: UNet forward + backward, CLIP and
the conditioning) and encoding on the fly (the VAE's FLOPs added).  Each variant then trains
through the pipeline's own `gendeg.runtime.training.train`, the train_gendeg stage's loss and
optimiser, and its step rate gives achieved model FLOP/s; MFU divides them by the card's
dense bf16 peak, looked up by the name torch reports (PEAK_BF16_TFLOPS, with sources).  On a
CPU there is no such datasheet figure: achieved FLOP/s are reported and MFU is null.

Variants (each measured): VAE encoding on the fly (the configuration of
gpu_throughput.json) vs cached latents (`gendeg.diffusion.latent_cache`); a loss read back every step
(a host-device sync) vs at log_every; unfused vs fused AdamW; the preset's 16 x 8
accumulation; a micro-batch planned to the card's memory (`gendeg.runtime.speed.plan_batch`) keeping
the effective batch; channels-last; `torch.compile`.  Sampling: images per second at
`--sample-size` (512) for 20-step DPM-Solver++ and 100-step Euler-ancestral with the paper's
guidance, fp32 (as the synthesis stage samples today) vs bf16 UNet evaluations, batch sizes,
channels-last and compiled UNet; bf16 samples are compared with fp32 ones from the same seeds.

Records the card, driver, CUDA and torch versions, the commit (git, or GENDEG_COMMIT when
the tree has no .git), a hash of the source files, settings and the thread count.  Writes
`--out` after every variant, so a run cut short keeps what it measured.  On a CPU run with
`--architecture tiny` at a small size this is the script's test (tests/unit/test_gpu_speed.py).
"""

from __future__ import annotations

import argparse
import collections
import copy
import gc
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from accelerate.state import AcceleratorState
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from gendeg import DEGRADATIONS
from gendeg.diffusion import GenDegModel, generate
from gendeg.diffusion.latent_cache import LatentCache
from gendeg.runtime.atomic import write_json
from gendeg.runtime.devices import compute_device
from gendeg.runtime.speed import AutocastForward, apply_unet_speedups, attention_processors, memory_model, plan_batch
from gendeg.runtime.training import TrainSettings, step_generator, train
from gendeg.stages.train_gendeg import gendeg_loss, gendeg_optimizer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "gpu_mfu.json"
sys.path.insert(0, str(ROOT / "tests"))  # helpers: the paper model and random pairs the speed tests use too
from helpers.paper_gendeg import build_model, random_pairs  # noqa: E402
from helpers.random_sd import write_random_stable_diffusion  # noqa: E402

# Dense (no 2:4 sparsity) BF16 tensor-core peaks, TFLOP/s, matched in order against
# torch.cuda.get_device_name().  Source: NVIDIA's product datasheets, which print the
# with-sparsity figure; dense is half of it.  A card not listed gets MFU null, never a guess.
PEAK_BF16_TFLOPS = [
    ("H200 NVL", 835.5, "NVIDIA H200 NVL datasheet: BF16 Tensor Core 1,671 TFLOPS with sparsity"),
    ("H200", 989.4, "NVIDIA H200 (SXM) datasheet: BF16 Tensor Core 1,979 TFLOPS with sparsity"),
    ("H100 NVL", 835.5, "NVIDIA H100 NVL datasheet: BF16 Tensor Core 1,671 TFLOPS with sparsity"),
    ("H100 PCIe", 756.5, "NVIDIA H100 PCIe datasheet: BF16 Tensor Core 1,513 TFLOPS with sparsity"),
    ("H100", 989.4, "NVIDIA H100 SXM5 datasheet: BF16 Tensor Core 1,979 TFLOPS with sparsity"),
    ("A100", 312.0, "NVIDIA A100 datasheet: BF16 Tensor Core 312 TFLOPS (624 with sparsity)"),
]


def peak_bf16(device_name: str) -> dict:
    """{"tflops", "source"} of the first table entry the device name contains; nulls and why otherwise."""
    for key, tflops, source in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return {"tflops": tflops, "source": source, "matched": key}
    return {"tflops": None, "source": f"{device_name!r} is not in PEAK_BF16_TFLOPS (CPU or unlisted card): "
                                      f"MFU not applicable", "matched": None}


# -- the run's record ------------------------------------------------------------------------------

def _command_output(command: list[str]) -> str | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def source_hash() -> str:
    """SHA-256 over the project's Python sources and params.yaml: which code ran, with or without git."""
    digest = hashlib.sha256()
    files = sorted((ROOT / "src").rglob("*.py")) + [ROOT / "params.yaml", Path(__file__).resolve(),
                                                     Path(sys.modules[build_model.__module__].__file__).resolve()]
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def environment(device: torch.device) -> dict:
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()})"
    commit = _command_output(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
    dirty = _command_output(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return {
        "device": name,
        "device_memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
        "driver": _command_output(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]) if cuda else None,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
        "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
        "commit": commit or os.environ.get("GENDEG_COMMIT"),
        "commit_source": "git" if commit else ("GENDEG_COMMIT" if os.environ.get("GENDEG_COMMIT") else None),
        "uncommitted_changes": None if commit is None else bool(dirty),
        "source_sha256": source_hash(),
        "peak": peak_bf16(name),
    }


# -- configuration -------------------------------------------------------------------------------

def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def paper_gendeg_config(params_path: Path = ROOT / "params.yaml") -> dict:
    """params.yaml's `gendeg` section with the paper preset applied (as gendeg.pipeline.config.resolve does;
    read here without its schema validation, whose package the GPU machine lacks)."""
    params = yaml.safe_load(Path(params_path).read_text())
    return _merge(params["gendeg"], params["presets"]["paper"].get("gendeg", {}))


# -- FLOPs -------------------------------------------------------------------------------------

def count_flops(model, loss_fn, autocast_dtype: torch.dtype | None) -> int:
    """FLOPs of one loss forward + backward (all parameters that train get gradients).

    An uncounted call first fills the CLIP prompt cache (`ClipPromptEncoder` keeps recent
    prompts, which recur every batch in training), so the count is the step's steady state.
    """
    device = next(model.parameters()).device
    with torch.no_grad(), torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                                         enabled=autocast_dtype is not None):
        loss_fn(model, 0, step_generator(0, 0))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            loss = loss_fn(model, 0, step_generator(0, 0))
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def sampling_flops(model: GenDegModel, size: int) -> dict:
    """FLOPs per image of guided sampling at `size` px: one step (the three guidance branches of one
    UNet evaluation each), and the VAE encoding of the clean image and decoding of the result."""
    device = next(model.parameters()).device
    clean = torch.rand(1, 3, size, size, device=device)
    counts = {}
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        with FlopCounterMode(display=False) as counter:
            latents = model.codec.encode(clean)
        counts["vae_encode"] = counter.get_total_flops()
        drop_text = torch.tensor([False, True, True], device=device)
        drop_image = torch.tensor([False, False, True], device=device)
        ids, mus, sigmas = torch.zeros(3, dtype=torch.long, device=device), torch.full((3,), 0.1, device=device), \
            torch.full((3,), 0.08, device=device)
        tokens = model.text_tokens(ids, drop_text, ["a street"] * 3)  # once per image, outside the steps
        with FlopCounterMode(display=False) as counter:
            model(latents.repeat(3, 1, 1, 1), torch.full((3,), 500, device=device), latents.repeat(3, 1, 1, 1), ids,
                  mus, sigmas, drop_text, drop_image, tokens=tokens)
        counts["per_step"] = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            model.codec.decode(latents)
        counts["vae_decode"] = counter.get_total_flops()
    return {k: int(v) for k, v in counts.items()}


def images_flops(counts: dict, steps: int) -> int:
    """All FLOPs one sampled image needs: `steps` guided evaluations plus its VAE encoding and decoding."""
    return steps * counts["per_step"] + counts["vae_encode"] + counts["vae_decode"]


# -- training ------------------------------------------------------------------------------------

class StepClock:
    """A `train` tracker noting when a logged step ended (the loss read-back has synchronised)."""

    def __init__(self):
        self.ends: list[float] = []

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.ends.append(time.perf_counter())


def time_training(model, train_cfg: dict, loss_fn, micro: int, accum: int, steps: int, precision: str,
                  fused: bool | None, device: torch.device) -> dict:
    """Images per second over `steps` optimiser steps after as many untimed ones (log_every = steps)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    AcceleratorState._reset_state(reset_partial_state=True)  # several runs in one process (as accelerate's tests do)
    optimizer = gendeg_optimizer(model, train_cfg, fused=fused)
    clock = StepClock()
    settings = TrainSettings(steps=2 * steps, seed=0, log_every=steps, grad_accum=accum,
                             ema_decay=train_cfg["ema_decay"], mixed_precision=precision, description="timed training")
    result = train(model, optimizer, loss_fn, settings, tracker=clock)
    seconds = clock.ends[1] - clock.ends[0]
    images = steps * accum * micro
    del optimizer
    return {"micro_batch": micro, "grad_accum": accum, "steps_timed": steps, "seconds": round(seconds, 3),
            "images_per_s": round(images / seconds, 2), "optimizer_steps_per_s": round(steps / seconds, 3),
            "loss_last": round(result.losses[-1], 4), "adamw_fused": bool(fused) if fused is not None else device.type == "cuda",
            "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None}


def count_syncs(model, train_cfg: dict, loss_fn, precision: str, steps: int = 3) -> dict:
    """Synchronising CUDA calls during `steps` training steps (torch.cuda.set_sync_debug_mode), by the
    source lines they come from.  Includes the run's setup (accelerate's prepare, the EMA copy) and the
    one loss read-back at log_every, which the loop does on purpose."""
    AcceleratorState._reset_state(reset_partial_state=True)
    optimizer = gendeg_optimizer(model, train_cfg)
    settings = TrainSettings(steps=steps, seed=0, log_every=steps, ema_decay=train_cfg["ema_decay"],
                             mixed_precision=precision, description="sync count")
    sites: collections.Counter = collections.Counter()

    def note(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" not in str(message):
            return
        frames = [f for f in traceback.extract_stack()[:-1]
                  if any(part in f.filename for part in ("/gendeg/", "/diffusers/", "/accelerate/", "/torch/optim/"))]
        sites[" < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames[-3:][::-1]) or "?"] += 1

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = note
            train(model, optimizer, loss_fn, settings)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    return {"steps": steps, "total": sum(sites.values()), "sites": dict(sites.most_common(20))}


def training_section(args, env: dict, device: torch.device, folder: Path, work: Path, report: dict, save) -> None:
    gendeg_cfg = paper_gendeg_config()
    size = args.size
    base_cfg = {**gendeg_cfg["train"], "crop": size}
    precision = args.precision or base_cfg["mixed_precision"]
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    model = build_model(gendeg_cfg, folder, device)
    bank = random_pairs(args.pairs, size, work / f"pairs{size}")
    start = time.perf_counter()
    cache = LatentCache.build(bank, model.codec, device)
    section = report.setdefault("train", {})
    section.update({"image_size": size, "precision": precision, "pairs": len(bank),
                    "preset_batch": {"batch_size": base_cfg["batch_size"], "grad_accum": base_cfg["grad_accum"]},
                    "unet_parameters": sum(p.numel() for p in model.unet.parameters()),
                    "trainable_parameters": sum(p.numel() for p in model.trainable_parameters()),
                    "attention": attention_processors(model),
                    "latent_cache_build_seconds": round(time.perf_counter() - start, 2)})

    def loss(micro: int, cached: bool, sync: bool = False):
        fn = gendeg_loss(bank, {**base_cfg, "batch_size": micro}, size, latents=cache if cached else None)
        if not sync:  # the pipeline's loop
            return fn

        def synced(net, step, generator):  # the old loop's loss.item() every step
            value = fn(net, step, generator)
            value.item()
            return value
        return synced

    per_image = {name: count_flops(model, loss(args.flop_batch, cached), autocast_dtype) / args.flop_batch
                 for name, cached in (("model_from_cached_latents", True), ("with_vae_encoding", False))}
    section["flops_per_image"] = {k: int(v) for k, v in per_image.items()}
    section["flops_note"] = ("FlopCounterMode over one loss forward + backward at batch "
                             f"{args.flop_batch}, divided by it, CLIP prompts already cached as in a training run; "
                             "MFU uses model_from_cached_latents (VAE encoding is avoidable work, not model FLOPs)")
    save()
    if "train" not in args.sections:  # --sections flops: the count alone
        return
    peak_tflops = env["peak"]["tflops"]
    variants = section.setdefault("variants", {})

    def run(name: str, micro: int, accum: int, cached: bool = True, sync: bool = False, fused: bool | None = None):
        figures = time_training(model, base_cfg, loss(micro, cached, sync), micro, accum, args.steps, precision,
                                fused, device)
        achieved = figures["images_per_s"] * per_image["model_from_cached_latents"]
        figures["model_tflops_per_s"] = round(achieved / 1e12, 3)
        figures["mfu"] = round(achieved / (peak_tflops * 1e12), 4) if peak_tflops else None
        figures["latents"] = "cached" if cached else "encoded every step"
        variants[name] = figures
        print(name, figures, flush=True)
        save()
        return figures

    micro, accum = args.micro_batch, 1
    if device.type == "cuda" and args.compile != "only":
        section["synchronisations_cached_latents"] = count_syncs(model, base_cfg, loss(micro, True), precision)
        print("synchronisations", section["synchronisations_cached_latents"], flush=True)
        save()
    if args.compile != "only":
        run("vae_on_the_fly", micro, 1, cached=False)  # gpu_throughput.json's configuration
        run("cached_latents", micro, 1)
        run("cached_latents_loss_read_every_step", micro, 1, sync=True)
        if device.type == "cuda":
            run("cached_latents_unfused_adamw", micro, 1, fused=False)
        second = run("cached_latents_double_micro_batch", 2 * micro, 1)
        first = variants["cached_latents"]
        if base_cfg["batch_size"] * base_cfg["grad_accum"] == args.effective_batch:
            run("preset_accumulation", base_cfg["batch_size"], base_cfg["grad_accum"])
    if device.type == "cuda":
        if args.compile == "only":
            first = run("cached_latents", micro, 1)
            second = run("cached_latents_double_micro_batch", 2 * micro, 1)
        fixed, per_sample = memory_model([(first["micro_batch"], first["peak_memory_gb"] * 2**30),
                                          (second["micro_batch"], second["peak_memory_gb"] * 2**30)])
        plan = plan_batch(args.effective_batch, torch.cuda.get_device_properties(0).total_memory, fixed, per_sample,
                          max_micro_batch=args.max_micro_batch)
        section["batch_plan"] = {**plan.__dict__, "fixed_gb": round(fixed / 2**30, 2),
                                 "per_sample_gb": round(per_sample / 2**30, 3)}
        micro, accum = plan.micro_batch, plan.grad_accum
    else:
        section["batch_plan"] = "not applicable on a CPU (no device memory to plan against)"
        micro, accum = args.micro_batch, args.effective_batch // args.micro_batch
    if args.compile != "only":
        run("planned", micro, accum)
        section["speedups_channels_last"] = apply_unet_speedups(model, channels_last=True)
        run("planned_channels_last", micro, accum)
    if args.compile != "no":
        section["speedups_compiled"] = apply_unet_speedups(model, channels_last=True, compile_unet=True)
        run("planned_channels_last_compiled", micro, accum)


# -- sampling ------------------------------------------------------------------------------------

def sampling_section(args, env: dict, device: torch.device, folder: Path, report: dict, save) -> None:
    gendeg_cfg = paper_gendeg_config()
    model = build_model(gendeg_cfg, folder, device).eval()
    size, count = args.sample_size, max(args.sample_batches)
    torch.manual_seed(1)
    clean_all = F.interpolate(torch.rand(count, 3, size // 16, size // 16), size=(size, size), mode="bicubic",
                              align_corners=False).clamp(0, 1)
    ids = torch.arange(count) % len(DEGRADATIONS)
    mu, sigma = torch.full((count,), 0.12), torch.full((count,), 0.08)
    captions = ["a street at night"] * count
    section = report.setdefault("sample", {})
    section.update({"image_size": size, "guidance": {"image": 1.5, "text": 7.5}})
    section["flops"] = sampling_flops(model, size)
    section["flops_per_image"] = {f"{sampler}_{steps}": images_flops(section["flops"], steps)
                                  for sampler, steps in args.samplers}
    section["flops_note"] = ("FlopCounterMode at batch 1: per_step = one UNet evaluation of the three guidance "
                             "branches; an image costs steps x per_step + VAE encode + decode, all counted as model "
                             "FLOPs (none of it is avoidable)")
    save()
    if "sample" not in args.sections:  # --sections flops: the count alone
        return
    peak_tflops = env["peak"]["tflops"]
    variants = section.setdefault("variants", {})
    reference: dict[str, torch.Tensor] = {}

    def sample(net, batch: int, sampler: str, steps: int) -> torch.Tensor:
        generators = [torch.Generator().manual_seed(i) for i in range(batch)]
        return generate(net, clean_all[:batch], ids[:batch], mu[:batch], sigma[:batch], generators, num_steps=steps,
                        image_guidance=1.5, text_guidance=7.5, sampler=sampler, captions=captions[:batch])

    def run(name: str, precision: str, batch: int) -> None:
        net = AutocastForward(model, torch.bfloat16) if precision == "bf16" else model
        figures = {"precision": precision, "batch": batch}
        for sampler, steps in args.samplers:
            sample(net, batch, sampler, 2)  # warm-up (and compilation) at the same shapes
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = sample(net, batch, sampler, steps)  # comes back on the CPU: synchronised
            seconds = time.perf_counter() - start
            if not torch.isfinite(out).all():
                raise FloatingPointError(f"{name} {sampler}: non-finite samples")
            key = f"{sampler}_{steps}"
            entry = {"images_per_s": round(batch / seconds, 3), "s_per_image": round(seconds / batch, 4)}
            achieved = batch / seconds * section["flops_per_image"][key]
            entry["model_tflops_per_s"] = round(achieved / 1e12, 3)
            entry["mfu"] = round(achieved / (peak_tflops * 1e12), 4) if peak_tflops else None
            if precision == "fp32" and key not in reference:
                reference[key] = out
            elif key in reference:
                shared = min(len(out), len(reference[key]))
                difference = (out[:shared] - reference[key][:shared]).abs()
                entry["vs_fp32_max_abs"] = round(float(difference.max()), 5)
                entry["vs_fp32_mean_abs"] = round(float(difference.mean()), 6)
            figures[key] = entry
        variants[name] = figures
        print(name, figures, flush=True)
        save()

    small, large = min(args.sample_batches), max(args.sample_batches)
    if args.compile != "only":
        run(f"fp32_batch{small}", "fp32", small)  # the synthesis stage's precision today
        run(f"bf16_batch{small}", "bf16", small)
        if large != small:
            run(f"bf16_batch{large}", "bf16", large)
        section["speedups_channels_last"] = apply_unet_speedups(model, channels_last=True)
        run(f"bf16_batch{large}_channels_last", "bf16", large)
    if args.compile != "no":  # compared with the uncompiled variants of the run before (compilation takes the time)
        section["speedups_compiled"] = apply_unet_speedups(model, channels_last=True, compile_unet=True)
        run(f"bf16_batch{large}_channels_last_compiled", "bf16", large)


def random_folder(folder: Path, architecture: str) -> Path:
    """The random SD folder of `architecture` (seed 0) at `folder`, written unless a complete one is there."""
    marker = folder / f"written_{architecture}"
    if not marker.exists():
        if folder.exists():
            raise FileExistsError(f"--random-sd-dir {folder} exists but is not a complete random {architecture} folder")
        write_random_stable_diffusion(folder, architecture)
        marker.write_text("tests/helpers/random_sd.py, seed 0\n")
    return folder


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", choices=["sd15", "tiny"], default="sd15")
    parser.add_argument("--sd-folder", type=Path, default=None, help="an SD v1.5 folder instead of a random one")
    parser.add_argument("--random-sd-dir", type=Path, default=None,
                        help="write the random SD folder here, or reuse it if there (several runs share one)")
    parser.add_argument("--sections", nargs="+", choices=["train", "sample", "flops"], default=["train", "sample"],
                        help="flops: count the FLOPs of both (no timing; runs on a CPU at the real architecture)")
    parser.add_argument("--size", type=int, default=256, help="training image size")
    parser.add_argument("--pairs", type=int, default=64, help="random training pairs")
    parser.add_argument("--micro-batch", type=int, default=16, help="gpu_throughput.json's batch")
    parser.add_argument("--effective-batch", type=int, default=128, help="the paper's")
    parser.add_argument("--max-micro-batch", type=int, default=128)
    parser.add_argument("--flop-batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed optimiser steps (after as many untimed)")
    parser.add_argument("--precision", choices=["no", "bf16", "fp16"], default=None, help="default: the preset's")
    parser.add_argument("--compile", choices=["no", "also", "only"], default="no")
    parser.add_argument("--sample-size", type=int, default=512)
    parser.add_argument("--sample-batches", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--sample-steps", type=int, nargs=2, default=[20, 100], metavar=("DPM", "EULER"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.effective_batch % args.micro_batch:
        parser.error(f"--steps must be >= 1 and --micro-batch ({args.micro_batch}) divide --effective-batch "
                     f"({args.effective_batch})")
    args.samplers = [("dpmsolver++", args.sample_steps[0]), ("euler_ancestral", args.sample_steps[1])]
    if args.sections == ["flops"]:  # no training: a batch's worth of pairs is all the count draws from
        args.pairs = min(args.pairs, max(2, args.flop_batch))
    device = compute_device()
    env = environment(device)
    report = {**env, "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                                  if k not in ("out", "samplers")}}
    if device.type != "cuda":
        report["note"] = "no GPU: a check of this script's code and achieved CPU FLOP/s, not a GPU figure"

    def save() -> None:
        write_json(report, args.out)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.sd_folder or random_folder(args.random_sd_dir or Path(tmp) / "sd", args.architecture)
        report["sd_folder"] = str(args.sd_folder) if args.sd_folder else f"random {args.architecture} (seed 0)"
        started = time.perf_counter()
        if "train" in args.sections or "flops" in args.sections:
            training_section(args, env, device, folder, Path(tmp), report, save)
            gc.collect()  # the training model, its optimiser and cache, before the sampling model loads
            if device.type == "cuda":
                torch.cuda.empty_cache()
        if "sample" in args.sections or "flops" in args.sections:
            sampling_section(args, env, device, folder, report, save)
        report["total_seconds"] = round(time.perf_counter() - started, 1)
        save()
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
