"""How far could a restorer that abstains get?  An upper bound, per benchmark.

    python benchmarks/abstention_bound.py --run RUN \\
        --restorer existing@0=RUN/models/restorer/nafnet/existing/seed-0 --restorer gends@0=... \\
        --photos data/ood_photos --threads 1

"Abstaining" here means any rule that blends the restorer's output with its input,
`input + a * (restored - input)` with a per image in [0, 1] (a = 0: leave the image alone).
For each image the best a is picked *knowing the target* (a grid of 21 values, separately for
PSNR and for mean-matched PSNR), so no real confidence predictor can do better: if even this
oracle misses a restoration target (docs/restoration.md), no abstention rule can meet it with these restorers.
`best_of_two` is the same oracle restricted to a in {0, 1}.

Figures are gains over the unrestored input: on the built-in OOD benchmark (the run's
data/prepared/ood.csv at evaluate.image_size) the mean over its sets, as the pipeline's
`evaluate` reports it; on the frozen photographs (`--photos`, at --photo-size) the mean over
degradations, as `ood_photos.py` reports it; per degradation on both.  Per label, mean +- std
over its seeds.  Nothing here is a lever that changes a default: it bounds one.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from ood_photos import load_set, parse_restorers

from gendeg.data.manifest import read_manifest
from gendeg.data.pairs import PairBank
from gendeg.measure.metrics import mean_matched_psnr, psnr
from gendeg.restorers import load_restorer, restore
from gendeg.runtime.atomic import write_json
from gendeg.runtime.machine import provenance

HERE = Path(__file__).resolve().parent
ALPHAS = torch.linspace(0, 1, 21)
METRICS = ("psnr", "mean_matched_psnr")
VARIANTS = ("restorer", "best_of_two", "oracle_blend")


def blended_scores(degraded: torch.Tensor, restored: torch.Tensor, clean: torch.Tensor) -> dict[str, np.ndarray]:
    """Metric -> scores of degraded + a (restored - degraded), shape (len(ALPHAS), images)."""
    scores: dict[str, list] = {metric: [] for metric in METRICS}
    for alpha in ALPHAS:
        blend = degraded + alpha * (restored - degraded)
        scores["psnr"].append(psnr(blend, clean))
        scores["mean_matched_psnr"].append(mean_matched_psnr(blend, clean))
    return {metric: torch.stack(rows).double().numpy() for metric, rows in scores.items()}


def gains(scores: dict[str, np.ndarray], groups: list[str], degradations: list[str]) -> dict:
    """Gain over the input of each variant: the mean over `groups`, and per degradation."""
    def by(labels: list[str], values: np.ndarray) -> dict[str, float]:
        labels_array = np.asarray(labels)
        return {name: float(values[labels_array == name].mean()) for name in sorted(set(labels))}

    out: dict = {}
    for metric, table in scores.items():
        variants = {"restorer": table[-1], "best_of_two": np.maximum(table[0], table[-1]),
                    "oracle_blend": table.max(axis=0)}
        for variant, values in variants.items():
            gain = values - table[0]
            out.setdefault(variant, {})[metric] = {
                "mean": float(np.mean(list(by(groups, gain).values()))),
                "per_degradation": by(degradations, gain)}
    return out


def over_seeds(per_seed: dict[str, dict]) -> dict:
    """mean +- std over seeds of every figure, and the worst degradation of the mean."""
    seeds = list(per_seed)
    out: dict = {}
    for variant in VARIANTS:
        for metric in METRICS:
            means = np.array([per_seed[s][variant][metric]["mean"] for s in seeds])
            names = per_seed[seeds[0]][variant][metric]["per_degradation"]
            per_degradation = {n: float(np.mean([per_seed[s][variant][metric]["per_degradation"][n] for s in seeds]))
                               for n in names}
            worst = min(per_degradation, key=per_degradation.get)
            out.setdefault(variant, {})[metric] = {
                "mean": float(means.mean()), "std": float(means.std()), "per_seed": [float(v) for v in means],
                "per_degradation": per_degradation, "worst": {"degradation": worst, "gain": per_degradation[worst]}}
    return out


def builtin_set(run: Path) -> dict:
    size = json.loads((run / "resolved_params" / "evaluate.json").read_text())["evaluate"]["image_size"]
    frame = read_manifest(run / "data" / "prepared" / "ood.csv")
    for column in ("image_path", "target_path"):  # relative to the run folder
        frame[column] = [str(run / path) for path in frame[column]]
    bank = PairBank(frame, size=size, description="loading built-in OOD")
    degraded, clean = bank.tensors()
    return {"degraded": degraded, "clean": clean, "groups": bank.frame["dataset"].tolist(),
            "degradation": bank.frame["degradation"].tolist(), "image_size": size}


def photo_set(folder: Path, size: int) -> dict:
    data = load_set(folder, size)
    return {**data, "groups": data["degradation"], "image_size": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a finished pipeline run (its built-in OOD set)")
    parser.add_argument("--restorer", action="append", required=True, metavar="LABEL[@SEED]=DIR")
    parser.add_argument("--photos", type=Path, help="the frozen photo set (data/ood_photos); omitted: built-in only")
    parser.add_argument("--photo-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "abstention_bound.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    restorers = parse_restorers(args.restorer)
    benchmarks = {"builtin": builtin_set(args.run)}
    if args.photos:
        benchmarks["photos"] = photo_set(args.photos, args.photo_size)
    result: dict = {"benchmarks": {}}
    for name, data in benchmarks.items():
        labels = {}
        for label, seeds in restorers.items():
            per_seed = {}
            for seed, folder in seeds.items():
                restored = restore(load_restorer(folder), data["degraded"], batch_size=16)
                scores = blended_scores(data["degraded"], restored, data["clean"])
                per_seed[seed] = gains(scores, data["groups"], data["degradation"])
            labels[label] = {"checkpoints": seeds, "over_seeds": over_seeds(per_seed), "per_seed": per_seed}
        result["benchmarks"][name] = {"image_size": data["image_size"], "images": len(data["groups"]),
                                      "mean_over": "sets" if name == "builtin" else "degradations", "labels": labels}
    command = " ".join(["python benchmarks/abstention_bound.py", f"--run {args.run}",
                        *[f"--restorer {spec}" for spec in args.restorer],
                        *([f"--photos {args.photos} --photo-size {args.photo_size}"] if args.photos else []),
                        f"--threads {args.threads}"])
    result |= {"command": command, "alphas": [round(float(a), 3) for a in ALPHAS],
               "seconds": round(time.time() - start, 1), **provenance(args.run)}
    write_json(result, args.out)
    for name, block in result["benchmarks"].items():
        for label, figures in block["labels"].items():
            gain = {metric: ", ".join(f"{variant} {figures['over_seeds'][variant][metric]['mean']:+.2f}"
                                      for variant in VARIANTS) for metric in METRICS}
            print(f"{name} {label}: PSNR gain {gain['psnr']}; mean-matched gain {gain['mean_matched_psnr']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
