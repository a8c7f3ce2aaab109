"""Training and sampling throughput on a GPU: the paper architecture in bf16, and the CPU default.

    python benchmarks/gpu_throughput.py [--architecture sd15] [--sd-folder DIR] [--out FILE]

Paper architecture: GenDeg on a Stable Diffusion v1.5 folder, either a randomly initialised
one in SD v1.5's exact architecture (`tests/helpers/random_sd.py`; throughput does not depend
on the weights) or a real one (`--sd-folder`).  It trains through the pipeline's own code:
`gendeg.runtime.training.train` with the train_gendeg stage's loss and optimiser, at 256x256, batch
16, bf16, EMA 0.9999, one micro-batch per step.  Then it samples with the paper's
Euler-ancestral sampler (100 steps) and the fast DPM-Solver++ (20 steps), in fp32 as the
synthesis stage runs them, at 256 and 512 pixels.  The CPU default (the tiny GenDeg and the
NAFNet restorer of params.yaml) gets steps per second on the same card, fp32 and bf16.

The card's name goes into the results.  On a machine without a GPU the script still runs
(`--architecture tiny --size 64` for a quick check of its code), and says so in the file.
Writes benchmarks/results/gpu_throughput.json after every section.
"""

from __future__ import annotations

import sys

import argparse
import copy
import gc
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from accelerate.state import AcceleratorState

from gendeg import DEGRADATIONS
from gendeg.data.builtin_data import build_builtin
from gendeg.data.pairs import PairBank
from gendeg.diffusion import PAPER_CONFIG, GenDegModel, generate
from gendeg.restorers import build_restorer, restore
from gendeg.runtime.atomic import write_json
from gendeg.runtime.devices import compute_device
from gendeg.runtime.training import TrainSettings, train
from gendeg.stages.train_gendeg import gendeg_loss, gendeg_optimizer
from gendeg.stages.train_restorer import restoration_loss

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the random SD folder the tests build too
from helpers.random_sd import write_random_stable_diffusion  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "gpu_throughput.json"
# The paper's condition dropout: params.yaml's gendeg.train.dropout, which the paper preset keeps.
PAPER_DROPOUT = yaml.safe_load((ROOT / "params.yaml").read_text())["gendeg"]["train"]["dropout"]
PAPER_TRAIN = {"lr": 1e-4, "projection_lr": 1e-3, "weight_decay": 1e-2, "dropout": PAPER_DROPOUT,
               "balance": "degradation"}


class StepClock:
    """A tracker for `train` that only notes when each step ended (loss.item() has synchronised)."""

    def __init__(self):
        self.ends: list[float] = []

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.ends.append(time.perf_counter())


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_memory_gb() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def time_training(model, optimizer, loss_fn, warmup: int, steps: int, precision: str, ema_decay: float | None) -> dict:
    """Steps per second over `steps` steps that follow `warmup` untimed ones."""
    gc.collect()  # the previous section's models, so the peak below is this model's
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    # accelerate keeps one process-wide state; several precisions in one process need it cleared
    # (as accelerate's own tests do between cases).
    AcceleratorState._reset_state(reset_partial_state=True)
    clock = StepClock()
    settings = TrainSettings(steps=warmup + steps, seed=0, log_every=1, ema_decay=ema_decay, mixed_precision=precision,
                             description=f"train ({precision})")
    result = train(model, optimizer, loss_fn, settings, tracker=clock)
    seconds = clock.ends[-1] - clock.ends[warmup - 1]
    return {"steps_per_s": round(steps / seconds, 3), "timed_steps": steps, "warmup_steps": warmup,
            "loss_last": round(result.losses[-1], 4), "peak_gpu_memory_gb": peak_memory_gb()}


def time_sampling(model: GenDegModel, clean: torch.Tensor, captions: list[str], sampler: str, steps: int) -> dict:
    """Seconds per image for one batch (after one untimed batch), fp32 as the synthesis stage samples."""
    count = clean.shape[0]
    ids = torch.arange(count) % len(DEGRADATIONS)
    mu, sigma = torch.full((count,), 0.12), torch.full((count,), 0.08)

    def run() -> torch.Tensor:
        generators = [torch.Generator().manual_seed(i) for i in range(count)]
        return generate(model, clean, ids, mu, sigma, generators, num_steps=steps, image_guidance=1.5,
                        text_guidance=7.5, sampler=sampler, captions=captions)

    run()
    synchronize()
    start = time.perf_counter()
    out = run()
    synchronize()
    seconds = time.perf_counter() - start
    if not torch.isfinite(out).all():
        raise FloatingPointError(f"{sampler}: non-finite samples")
    return {"s_per_image": round(seconds / count, 4), "batch": count, "model_evaluations_per_image": 3 * steps,
            "size": clean.shape[-1]}


def pairs(size: int, directory: Path) -> PairBank:
    """A few built-in pairs of every degradation at `size` pixels (the content does not change the speed)."""
    frames = build_builtin({"crop_size": size, "train_pairs_per_standin": 2, "test_pairs_per_standin": 1,
                            "pairs_per_ood_set": 1, "ood_sets": []}, directory, seed=0)
    return PairBank(frames["train"], size=size, description=f"loading {size}px pairs")


def paper_model(folder: Path) -> GenDegModel:
    """GenDeg's paper preset on the SD folder `folder`, seeded."""
    config = copy.deepcopy(PAPER_CONFIG)
    config["unet"]["pretrained"] = str(folder)
    torch.manual_seed(0)
    return GenDegModel.from_config(config)


def paper_section(args, work: Path) -> dict:
    model = paper_model(args.sd_folder or write_random_stable_diffusion(work / "sd", args.architecture))
    bank = pairs(args.size, work / f"pairs{args.size}")
    train_cfg = {**PAPER_TRAIN, "batch_size": args.batch, "crop": args.size}
    report = {"sd_folder": "random " + args.architecture if args.sd_folder is None else str(args.sd_folder),
              "unet_parameters": sum(p.numel() for p in model.unet.parameters()),
              "trainable_parameters": sum(p.numel() for p in model.trainable_parameters()),
              "image_size": args.size, "batch_size": args.batch}
    report["train"] = time_training(model, gendeg_optimizer(model, train_cfg), gendeg_loss(bank, train_cfg, args.size),
                                    args.warmup, args.steps, args.precision, ema_decay=0.9999)
    report["train"]["images_per_s"] = round(report["train"]["steps_per_s"] * args.batch, 2)
    print("paper training", report["train"], flush=True)
    picks = torch.arange(args.sample_batch) % len(bank)
    clean_all, captions = bank.tensors(picks)[1], bank.frame["caption"].iloc[picks.tolist()].tolist()
    report["sampling"] = {}
    for size in args.sample_sizes:
        clean = F.interpolate(clean_all, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
        for sampler, steps in (("euler_ancestral", 100), ("dpmsolver++", 20)):
            key = f"{sampler}_{steps}_at_{size}"
            report["sampling"][key] = time_sampling(model, clean, captions, sampler, steps)
            print("paper sampling", key, report["sampling"][key], flush=True)
    return report


def default_section(args, work: Path) -> dict:
    """The CPU default preset's GenDeg and NAFNet (params.yaml) on this device."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    gendeg_cfg, restorer_cfg = params["gendeg"], params["restorer"]
    bank = pairs(gendeg_cfg["image_size"], work / "pairs_default")
    report = {}
    for precision in ("no", "bf16"):
        torch.manual_seed(0)
        model = GenDegModel.from_config(gendeg_cfg["model"])
        train_cfg = gendeg_cfg["train"]
        report[f"gendeg_{precision}"] = time_training(
            model, gendeg_optimizer(model, train_cfg), gendeg_loss(bank, train_cfg, gendeg_cfg["image_size"]),
            args.warmup, args.default_steps, precision, ema_decay=train_cfg["ema_decay"])
        restorer = build_restorer({**restorer_cfg["model"]["nafnet"], "arch": "nafnet"}, seed=0)
        optimizer = torch.optim.AdamW(restorer.parameters(), lr=restorer_cfg["train"]["lr"], betas=(0.9, 0.9))
        report[f"nafnet_{precision}"] = time_training(restorer, optimizer, restoration_loss(bank, restorer_cfg["train"]),
                                                      args.warmup, args.default_steps, precision, ema_decay=None)
        print("default", precision, report[f"gendeg_{precision}"], report[f"nafnet_{precision}"], flush=True)
        if precision == "no" and compute_device().type == "cuda":
            report["gpu_vs_cpu_max_abs_difference"] = gpu_vs_cpu(model, restorer, bank)
            print("GPU vs CPU", report["gpu_vs_cpu_max_abs_difference"], flush=True)
    return report


def gpu_vs_cpu(gendeg_model: GenDegModel, restorer: torch.nn.Module, bank: PairBank) -> dict:
    """The same trained models run on the GPU and on the CPU: do samples and restorations agree?"""
    degraded, clean = bank.tensors(torch.arange(4))
    ids, mu, sigma = bank.degradation[:4], bank.mu[:4], bank.sigma[:4]

    def sample(model) -> torch.Tensor:
        generators = [torch.Generator().manual_seed(i) for i in range(4)]
        return generate(model, clean, ids, mu, sigma, generators, num_steps=10, image_guidance=1.5, text_guidance=3.0)

    def difference(run, model) -> float:
        return float((run(model) - run(copy.deepcopy(model).cpu())).abs().max())

    return {"gendeg_dpmsolver_10_steps": round(difference(sample, gendeg_model), 5),
            "nafnet_restore": round(difference(lambda m: restore(m, degraded), restorer), 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", choices=["sd15", "tiny"], default="sd15")
    parser.add_argument("--sd-folder", type=Path, default=None, help="a real SD v1.5 folder instead of random weights")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--precision", default="bf16", choices=["no", "fp16", "bf16"])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30, help="timed paper-architecture training steps")
    parser.add_argument("--sample-sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--sample-batch", type=int, default=8)
    parser.add_argument("--default-steps", type=int, default=50, help="timed steps of each default-preset model")
    parser.add_argument("--skip-default", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:
        parser.error(f"--warmup and --steps must be at least 1, got {args.warmup} and {args.steps}")

    device = compute_device()
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})",
              "torch": torch.__version__, "cuda": torch.version.cuda, "command": " ".join(["gpu_throughput.py"] + [
                  f"--architecture {args.architecture}", f"--size {args.size}", f"--batch {args.batch}",
                  f"--precision {args.precision}"])}
    if device.type != "cuda":
        report["note"] = "no GPU: a check of this script's code, not a GPU figure"
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report["paper"] = paper_section(args, Path(tmp))
        report["paper"]["section_seconds"] = round(time.perf_counter() - start, 1)
        write_json(report, args.out)
        if not args.skip_default:
            report["default_preset"] = default_section(args, Path(tmp))
            write_json(report, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
