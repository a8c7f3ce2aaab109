"""How closely each built-in stand-in's intensity histogram matches the real dataset it imitates.

For every stand-in, generate N training pairs exactly as the builder does (no files) and
compare their (mu, sigma), measured the paper's way, with the released real histograms by
the 1-D Wasserstein distance.  Target: mu_w1 <= 0.02.  OOD sets have no released
statistics; their realised mu is reported against their nominal range.

    python benchmarks/calibration.py [--pairs 150] [--reference-dir DIR]

Writes benchmarks/results/calibration.json:
    {"<stand-in>": {"imitates", "mu_w1", "sigma_w1", "n", ...}, "_ood": {...}, "_config": {...}}
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from gendeg.data.builtin_data import make_pairs, plan_scenes, resolve_config, selected_specs
from gendeg.data.reference import released_stats_dir
from gendeg.data.standins import reference_histogram
from gendeg.pipeline.config import load_params
from gendeg.runtime.atomic import write_json
from gendeg.runtime.machine import provenance

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=150, help="pairs per stand-in / OOD set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-dir", type=Path, default=released_stats_dir())
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "calibration.json")
    args = parser.parse_args()

    builtin = load_params(ROOT / "params.yaml")["data"]["builtin"]  # crop size, as the pipeline builds the pairs
    cfg = resolve_config({**builtin, "reference_dir": str(args.reference_dir)})
    standins, ood_sets = selected_specs(cfg)
    split = plan_scenes(cfg, args.seed)
    results: dict[str, dict] = {}
    for spec in standins:
        start = time.perf_counter()
        pairs = [pair for _, _, pair in make_pairs(spec, split.groups[spec.name], "train", args.pairs, args.seed, cfg)]
        mus = np.array([p["mu"] for p in pairs])
        sigmas = np.array([p["sigma"] for p in pairs])
        requested = np.array([p["requested_mu"] for p in pairs])
        mu_hist = reference_histogram(str(args.reference_dir), spec.degradation, spec.reference, "mu")
        sigma_hist = reference_histogram(str(args.reference_dir), spec.degradation, spec.reference, "sigma")
        results[spec.name] = {
            "imitates": spec.imitates,
            "degradation": spec.degradation,
            "scenes": split.groups[spec.name],
            "n": len(pairs),
            "mu_w1": round(mu_hist.wasserstein(mus), 5),
            "sigma_w1": round(sigma_hist.wasserstein(sigmas), 5),
            "mu_mean": round(float(mus.mean()), 4),
            "real_mu_mean": round(float(np.average(mu_hist.centres, weights=mu_hist.counts)), 4),
            "sigma_mean": round(float(sigmas.mean()), 4),
            "real_sigma_mean": round(float(np.average(sigma_hist.centres, weights=sigma_hist.counts)), 4),
            "mean_abs_mu_error": round(float(np.abs(mus - requested).mean()), 5),
            "share_clipped": round(float(np.mean([p["severity"] in (0.0, 1.0) for p in pairs])), 3),
            "meets_mu_target": bool(mu_hist.wasserstein(mus) <= 0.02),
            "seconds": round(time.perf_counter() - start, 2),
        }
        print(spec.name, {k: results[spec.name][k] for k in ("mu_w1", "sigma_w1", "mu_mean", "real_mu_mean",
                                                             "share_clipped", "seconds")}, flush=True)
    ood: dict[str, dict] = {}
    for spec in ood_sets:
        pairs = [pair for _, _, pair in make_pairs(spec, split.ood, "ood", max(args.pairs // 3, 10), args.seed, cfg)]
        mus = np.array([p["mu"] for p in pairs])
        ood[spec.name] = {
            "imitates": spec.imitates, "n": len(pairs), "mu_range": list(spec.mu_range),
            "mu_mean": round(float(mus.mean()), 4), "mu_min": round(float(mus.min()), 4),
            "mu_max": round(float(mus.max()), 4),
            "sigma_mean": round(float(np.mean([p["sigma"] for p in pairs])), 4),
            "share_clipped": round(float(np.mean([p["severity"] in (0.0, 1.0) for p in pairs])), 3),
        }
        print(spec.name, ood[spec.name], flush=True)
    results["_ood"] = ood
    results["_config"] = {"pairs": args.pairs, "seed": args.seed, "crop_size": cfg["crop_size"],
                          "reference_dir": str(args.reference_dir), **provenance()}
    write_json(results, args.out)
    met = [name for name, r in results.items() if not name.startswith("_") and r["meets_mu_target"]]
    print(f"{len(met)}/{len(standins)} stand-ins meet mu_w1 <= 0.02 -> {args.out}")


if __name__ == "__main__":
    main()
