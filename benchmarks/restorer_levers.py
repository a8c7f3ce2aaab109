"""Which restorer-recipe lever makes the default's restorers restore rather than re-tint?

One seed, one finished pipeline run: each variant retrains the restorer on `existing` and / or
`gends` with some keys of `restorer.train` overridden (everything else is the run's resolved
config), evaluates it with the pipeline's own `evaluate`, and records per training set the
gain over the unrestored input, in distribution and per OOD degradation, the mean-matched gain
(structure only) and the colour shift left.  A screen, not a verdict: a lever worth keeping
is then measured over five seeds by `ood_default.py`.

    python benchmarks/restorer_levers.py --run /tmp/bench/default --threads 1

Restorers and metrics are cached under --work by a hash of the configs, the set and the run
folder, so a repeated call only re-summarises.  MLflow records go to a store under --work.
Writes benchmarks/results/restorer_levers.json.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
from pathlib import Path

import torch

from gendeg.pipeline.config import read_stage_config
from gendeg.runtime.atomic import write_json
from gendeg.runtime.machine import provenance
from gendeg.stages.evaluate import evaluate
from gendeg.stages.select_pairs import select_pairs
from gendeg.stages.train_restorer import train_restorer

RESULTS = Path(__file__).parent / "results"
SOURCES = {"existing": "data/prepared", "gends": "data/gends"}
# name -> overrides of restorer.train; the first is the recipe the run was made with.
VARIANTS = {
    "baseline (600 steps)": {},
    "identity 0.15": {"identity_fraction": 0.15},
    "identity 0.25": {"identity_fraction": 0.25},
    "colour augment 0.2": {"colour_augment": 0.2},  # screened on existing only: it lost there
    "identity 0.25, 1800 steps": {"identity_fraction": 0.25, "steps": 1800},
}
DEGRADATION_KEYS = ("input_psnr", "psnr_gain", "mean_matched_gain", "colour_shift", "brightness_shift",
                    "input_brightness_shift")


def variant_metrics(run: Path, work: Path, train_set: str, seed: int, overrides: dict) -> dict:
    config = copy.deepcopy(read_stage_config(run / "resolved_params/train_restorer.json"))
    config["seed"] = seed
    train = config["restorer"]["train"]
    train.setdefault("identity_fraction", 0.0)  # runs made before these keys existed
    train.setdefault("colour_augment", 0.0)
    train.update(overrides)
    eval_config = read_stage_config(run / "resolved_params/evaluate.json")
    key = hashlib.sha256(json.dumps([config, eval_config, train_set, "", str(run)], sort_keys=True).encode())
    out = work / f"{train_set}-s{seed}-{key.hexdigest()[:12]}"
    if not (out / "metrics.json").is_file():
        select_pairs(train_set, run / SOURCES[train_set], out / "pairs.csv")
        if not (out / "model/model.safetensors").is_file():
            train_restorer(config, "nafnet", train_set, out / "pairs.csv", out / "model", checkpoint_dir=None)
        evaluate(eval_config, f"nafnet-{train_set}", out / "model", run / "models/classifier", run / "data/prepared",
                 out / "metrics.json", out / "per_set.csv")
    return json.loads((out / "metrics.json").read_text())


def summarise(metrics: dict) -> dict:
    ood, in_dist = metrics["ood"], metrics["in_distribution"]
    return {
        "in_distribution": {"psnr": in_dist["psnr"], "input_psnr": in_dist["input_psnr"],
                            "psnr_gain": in_dist["psnr_gain"], "mean_matched_gain": in_dist["mean_matched_gain"]},
        "ood": {"mean_psnr": ood["mean_psnr"], "mean_input_psnr": ood["mean_input_psnr"],
                "mean_psnr_gain": ood["mean_psnr_gain"], "mean_mean_matched_gain": ood["mean_mean_matched_gain"],
                "mean_colour_shift": ood["mean_colour_shift"], "mean_input_colour_shift": ood["mean_input_colour_shift"],
                "per_degradation": {d: {k: s[k] for k in DEGRADATION_KEYS} for d, s in ood["per_degradation"].items()}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished default-preset pipeline run folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--sets", nargs="+", default=["existing", "gends"], choices=sorted(SOURCES))
    parser.add_argument("--work", type=Path, default=Path("/tmp/exp/work"))
    parser.add_argument("--out", type=Path, default=RESULTS / "restorer_levers.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run, work, out = args.run.resolve(), args.work.resolve(), args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ["GENDEG_PROJECT_ROOT"] = str(work)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.environ.pop("GENDEG_PARENT_RUN_ID", None)
    os.chdir(run)  # manifests hold paths relative to the run folder
    results = {name: {s: summarise(variant_metrics(run, work, s, args.seed, VARIANTS[name])) for s in args.sets
                      if not (name == "colour augment 0.2" and s != "existing")}
               for name in args.variants}
    write_json({"question": __doc__.split("\n")[0], "seed": args.seed, "variants": {n: VARIANTS[n] for n in args.variants},
                "results": results, "run": str(run),
                "command": f"python benchmarks/restorer_levers.py --run {run} --seed {args.seed} --threads {args.threads}",
                **provenance(run)}, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
