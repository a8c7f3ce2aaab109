"""Why the CPU default GenDeg predicts x0 on a pixel_unshuffle(2) latent with a plain loss: the variants, measured.

For each variant, trains GenDeg on a finished pipeline run's training pairs with that run's
own `train_gendeg` settings (only the variant's model config and training overrides
differ), then measures:

* residual_hf: high-frequency energy of (output - clean), the mean absolute difference
  between the residual and its 3x3 box blur, on the test split's clean images generated at
  each pair's real (mu, sigma).  Sampler noise left in the output shows here; the real
  pairs' value is the reference.
* l1_to_real: mean L1 between each generated image and the real degraded image of that pair.
* the intensity-control figures of `benchmarks/intensity_control.py` (Pearson r and
  realised / requested mu, type accuracy, KID), run on the variant for each sampler step
  count listed, with the run's guidance.

    python benchmarks/gendeg_parametrisation.py --run /tmp/bench/default --threads 2

Writes benchmarks/results/gendeg_parametrisation.json.  Trained variants stay in --work.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from gendeg.data.manifest import read_manifest
from gendeg.data.pairs import PairBank, degradation_index
from gendeg.diffusion import GenDegModel, generate
from gendeg.intensity.definition import mu_sigma_torch
from gendeg.runtime.atomic import write_json
from gendeg.runtime.machine import provenance

RESULTS = Path(__file__).parent / "results" / "gendeg_parametrisation.json"
INTENSITY_CONTROL = Path(__file__).parent / "intensity_control.py"

# The previous CPU default: v-prediction on a 16x16x48 pixel_unshuffle(4) latent, two levels.
FACTOR_4 = {"codec": {"type": "pixel_unshuffle", "factor": 4},
            "unet": {"block_out_channels": [32, 64], "attention_levels": [False, True], "norm_num_groups": 16}}
FACTOR_2 = {"codec": {"type": "pixel_unshuffle", "factor": 2},
            "unet": {"block_out_channels": [16, 32, 64], "attention_levels": [False, False, True], "norm_num_groups": 8}}


class Variant(NamedTuple):
    model: dict                 # GenDeg model config overrides
    sampler_steps: list[int]    # sampler step counts to measure
    train: dict = {}            # gendeg.train overrides


VARIANTS: dict[str, Variant] = {
    "v_prediction_factor4": Variant({**FACTOR_4, "prediction_type": "v_prediction"}, [5]),
    "sample_factor4": Variant({**FACTOR_4, "prediction_type": "sample"}, [5]),
    "sample_factor2": Variant({**FACTOR_2, "prediction_type": "sample"}, [5, 10]),  # the default
    "v_prediction_factor2": Variant({**FACTOR_2, "prediction_type": "v_prediction"}, [10]),
    # Is the default's type fidelity limited by the UNet's width?  Twice the channels at every level.
    "sample_factor2_wide": Variant({**FACTOR_2, "unet": {**FACTOR_2["unet"], "block_out_channels": [32, 64, 128]},
                                    "prediction_type": "sample"}, [10]),
    # Or by where the plain x0 loss spends the network's effort?  SNR-clamped loss weights
    # (gendeg.diffusion.objective.snr_weights): Min-SNR, and SNR clamped to [1, 5].
    "sample_factor2_minsnr5": Variant({**FACTOR_2, "prediction_type": "sample"}, [10], {"snr_gamma": 5.0}),
    "sample_factor2_minsnr1": Variant({**FACTOR_2, "prediction_type": "sample"}, [10], {"snr_gamma": 1.0}),
    "sample_factor2_snr1to5": Variant({**FACTOR_2, "prediction_type": "sample"}, [10],
                                      {"snr_gamma": 5.0, "snr_floor": 1.0}),
}


def high_frequency(residual: torch.Tensor) -> float:
    blurred = F.avg_pool2d(F.pad(residual, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return float((residual - blurred).abs().mean())


def pair_figures(model: GenDegModel, run: Path, config: dict, size: int) -> dict:
    """Noise and accuracy against the real test pairs (each pair's own mu, sigma)."""
    test = read_manifest(run / "data/prepared/test.csv")
    bank = PairBank(test, size=size, description="loading test pairs")
    degraded, clean = bank.tensors()
    sampling = config["gendeg"]["preview"]
    outputs = []
    for start in range(0, len(bank), 32):
        rows = slice(start, start + 32)
        frame = test.iloc[rows]
        generators = [torch.Generator().manual_seed(1000 + i) for i in range(start, start + len(frame))]
        outputs.append(generate(model, clean[rows], degradation_index(frame["degradation"]),
                                torch.tensor(frame["mu"].to_numpy(), dtype=torch.float32),
                                torch.tensor(frame["sigma"].to_numpy(), dtype=torch.float32), generators,
                                num_steps=sampling["steps"], image_guidance=sampling["image_guidance"],
                                text_guidance=sampling["text_guidance"], sampler=sampling["sampler"]))
    generated = torch.cat(outputs)
    realised, _ = mu_sigma_torch(clean, generated)
    requested = torch.tensor(test["mu"].to_numpy(), dtype=torch.float32)
    return {"residual_hf": high_frequency(generated - clean), "residual_hf_real_pairs": high_frequency(degraded - clean),
            "l1_to_real": float((generated - degraded).abs().mean()),
            "mu_ratio_on_pairs": float(realised.mean() / requested.mean()), "pairs": len(test),
            "sampling": dict(sampling)}


def train_variant(run: Path, work: Path, name: str, variant: Variant, steps: int | None) -> tuple[Path, dict]:
    from gendeg.stages.train_gendeg import train_gendeg

    config = json.loads((run / "resolved_params/train_gendeg.json").read_text())
    config["gendeg"]["model"] = {**config["gendeg"]["model"], **copy.deepcopy(variant.model)}
    config["gendeg"]["train"] = {**config["gendeg"]["train"], **copy.deepcopy(variant.train)}
    if steps:
        config["gendeg"]["train"]["steps"] = steps
    out = work / name / "models" / "gendeg"
    if out.exists():
        shutil.rmtree(out)
    os.environ["GENDEG_PROJECT_ROOT"] = str(work)  # the variants' MLflow runs stay out of the run folder
    started = time.perf_counter()
    summary = train_gendeg(config, run / "data/prepared", out, None)
    summary["train_seconds"] = time.perf_counter() - started
    return out, {**summary, "config": config}


def intensity_figures(run: Path, work: Path, name: str, steps: int, threads: int) -> dict:
    """benchmarks/intensity_control.py on a view of the run whose GenDeg is the variant's."""
    view = work / f"{name}_steps{steps}"
    if view.exists():
        shutil.rmtree(view)
    (view / "models").mkdir(parents=True)
    (view / "data").symlink_to(run / "data")
    (view / "models" / "gendeg").symlink_to(work / name / "models" / "gendeg")
    shutil.copytree(run / "resolved_params", view / "resolved_params")
    synth_path = view / "resolved_params/synthesize.json"
    synth = json.loads(synth_path.read_text())
    synth["synthesis"]["steps"] = steps
    synth_path.write_text(json.dumps(synth))
    out = view / "intensity_control.json"
    subprocess.run([sys.executable, str(INTENSITY_CONTROL), "--run", str(view), "--threads", str(threads),
                    "--slow-levels", "2", "--slow-per-level", "1", "--out", str(out)], check=True)
    figures = json.loads(out.read_text())
    per = {d: v for d, v in figures.items() if isinstance(v, dict) and "type_accuracy" in v}
    keys = ("pearson_r", "mu_ratio", "type_accuracy", "kid", "kid_change")
    return {"steps": steps,
            **{f"mean_{k}": float(np.nanmean([v[k] for v in per.values()])) for k in keys},
            "per_degradation": {d: {k: v[k] for k in keys} for d, v in per.items()},
            "seconds_per_image": figures["sampler_cost"]["run_sampler"]["seconds_per_image"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished pipeline run folder (its data and params)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the run's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gendeg_parametrisation"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run, work = args.run.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(run)  # manifest paths are relative to the run folder
    results: dict = {"variants": {}}
    for name in args.variants:
        variant = VARIANTS[name]
        model_dir, summary = train_variant(run, work, name, variant, args.steps)
        model = GenDegModel.from_pretrained(model_dir).eval()
        with torch.no_grad():
            pairs = pair_figures(model, run, summary["config"], summary["image_size"])
        entry = {"model_overrides": variant.model, "train_overrides": variant.train, "train_steps": summary["steps"],
                 "train_seconds": summary["train_seconds"], "loss_last": summary["loss_last"],
                 "parameters": sum(p.numel() for p in model.trainable_parameters()), **pairs,
                 "intensity_control": [intensity_figures(run, work, name, s, args.threads) for s in variant.sampler_steps]}
        results["variants"][name] = entry
        print(f"{name}: hf {pairs['residual_hf']:.4f} (real {pairs['residual_hf_real_pairs']:.4f}) "
              f"l1 {pairs['l1_to_real']:.4f} " + " ".join(
                  f"[{c['steps']} steps r {c['mean_pearson_r']:.2f} ratio {c['mean_mu_ratio']:.2f} "
                  f"type {c['mean_type_accuracy']:.2f} kid {c['mean_kid']:.3f}]" for c in entry["intensity_control"]),
              flush=True)
    results["run"] = {
        "run_folder": str(args.run),
        **provenance(args.run),
        "command": f"python benchmarks/gendeg_parametrisation.py --run {args.run} --threads {args.threads}"
                   + (f" --variants {' '.join(args.variants)}" if args.variants != list(VARIANTS) else "")
                   + (f" --steps {args.steps}" if args.steps else "")
                   + (f" --out {args.out}" if args.out != RESULTS else ""),
    }
    write_json(results, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
