"""Is the OOD gain of GenDS over existing data larger than the seed-to-seed spread?

One pipeline run trains each restorer once, with one seed.  This script takes a finished
run folder, retrains the restorer on `existing` and on `gends` for several seeds (the seed
changes the initial weights and the batch order; data, step budget and every other
setting are the run's own resolved configs), evaluates each with the pipeline's own
`evaluate`, and compares the two per seed.

    python benchmarks/ood_default.py --run /tmp/bench/default --seeds 0 1 2 --threads 1

`--against oracle --out benchmarks/results/ood_default_oracle.json` compares existing with the
oracle set instead (existing + the physics generator on GenDS's scenes and intensities, from a
run with synthesis.oracle: true): it separates "more scenes" from "GenDeg's rendering of them".

Writes benchmarks/results/ood_default.json after every finished seed (so a partial run
leaves partial figures, marked "complete": false).  Results are cached under --work by
seed, set and a fingerprint of the configs and the bytes of every image used (not the
code), so an interrupted call resumes and `--sets existing` can run before GenDS exists.  The seed equal to the run's own seed
reuses the run's metrics/<arch>/<set>/seed-<seed>.json: the pipeline is deterministic on CPU, so retraining
would reproduce it byte for byte (`--retrain-run-seed` retrains it anyway).  Restorers and
their metrics go to --work (outside the repository); MLflow records go to a store there,
never into the run's mlflow.db.

`--scaling-counts 10 20 40 80` also retrains the data-scaling restorers (existing + the first
N generated pairs of each degradation, as the pipeline's scaling jobs) for every seed, and
adds the curve with its seed spread under "scaling_curve".
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import time
from pathlib import Path

import torch

from gendeg.data.manifest import read_manifest
from gendeg.measure.synthesis_quality import compare_over_seeds, mean_std
from gendeg.pipeline.config import read_stage_config
from gendeg.runtime.atomic import write_json
from gendeg.runtime.machine import provenance
from gendeg.stages.evaluate import evaluate
from gendeg.stages.select_pairs import select_pairs
from gendeg.stages.train_restorer import train_restorer

RESULTS = Path(__file__).parent / "results"
# Each training set's folder (select_pairs reads it) and the manifest its pairs come from.
TRAINING_SETS = {"existing": "data/prepared", "gends": "data/gends", "oracle": "data/gends"}
MANIFESTS = {"existing": "data/prepared/train.csv", "gends": "data/gends/manifest.csv",
             "oracle": "data/gends/oracle.csv"}


def isolate_tracking(work: Path) -> None:
    """Send MLflow records to a store under `work`, not into the run folder's mlflow.db."""
    work.mkdir(parents=True, exist_ok=True)
    os.environ["GENDEG_PROJECT_ROOT"] = str(work)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.environ.pop("GENDEG_PARENT_RUN_ID", None)


def inputs_fingerprint(run: Path, train_set: str, train_cfg: dict, eval_cfg: dict, count: int | None = None) -> str:
    """Hash of everything a (restorer, evaluation) result depends on except the code: both
    configs (seed included), the training and evaluation manifests and the bytes of every
    image they name.  Two run folders with the same data share results; a changed byte
    anywhere retrains."""
    key = [train_cfg, eval_cfg] if count is None else [train_cfg, eval_cfg, {"generated_per_degradation": count}]
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode())
    manifests = [run / MANIFESTS[train_set], run / "data/prepared/test.csv", run / "data/prepared/ood.csv"]
    for manifest in manifests:
        digest.update(manifest.read_bytes())
        frame = read_manifest(manifest)
        for path in sorted(set(frame["image_path"]) | set(frame["target_path"])):
            digest.update(path.encode())
            digest.update((Path(path) if Path(path).is_absolute() else run / path).read_bytes())
    return digest.hexdigest()


def metrics_for_seed(run: Path, work: Path, arch: str, train_set: str, seed: int, run_seed: int,
                     retrain_run_seed: bool, count: int | None = None, train_overrides: dict | None = None) -> dict:
    """metrics/<arch>/<set>/seed-<seed>.json of a restorer trained with `seed` (reused from the run for its own seed);
    with `count`, the scaling restorer on existing + the first `count` generated pairs per degradation;
    with `train_overrides` (e.g. {"steps": 1800}), those restorer.train keys replace the run's."""
    pipeline_metrics = (run / "metrics" / arch / train_set / f"seed-{run_seed}.json" if count is None
                        else run / "metrics" / "scaling" / f"{count}.json")
    if seed == run_seed and not retrain_run_seed and not train_overrides and pipeline_metrics.is_file():
        return {**json.loads(pipeline_metrics.read_text()), "source": str(pipeline_metrics)}
    train_cfg = copy.deepcopy(read_stage_config(run / "resolved_params" / "train_restorer.json"))
    train_cfg["seed"] = seed
    train_cfg["restorer"]["train"].update(train_overrides or {})
    eval_cfg = read_stage_config(run / "resolved_params" / "evaluate.json")
    label = train_set if count is None else f"{train_set}@{count}"
    out = work / f"seed{seed}" / arch / label / inputs_fingerprint(run, train_set, train_cfg, eval_cfg, count)[:16]
    out_json = out / "metrics.json"
    if out_json.is_file():  # same inputs finished earlier (an interrupted call, or another run folder)
        return {**json.loads(out_json.read_text()), "source": str(out_json)}
    started = time.perf_counter()
    select_pairs(train_set, run / TRAINING_SETS[train_set], out / "pairs.csv", generated_per_degradation=count)
    train_restorer(train_cfg, arch, train_set, out / "pairs.csv", out / "model", checkpoint_dir=None)
    summary = evaluate(eval_cfg, f"{arch}-{label}", out / "model", run / "models/classifier", run / "data/prepared",
                       out_json, out / "per_set.csv")
    print(f"seed {seed} {label}: OOD {summary['ood']['mean_psnr']:.3f} dB "
          f"({time.perf_counter() - started:.0f} s)", flush=True)
    return {**summary, "source": str(out_json)}


def distance_change(existing: list[float], gends: list[float]) -> dict:
    """compare_over_seeds for a distance (lower is better): the verdict says which side is closer."""
    change = compare_over_seeds(existing, gends)
    verdict = {"gain": "GenDS farther", "loss": "GenDS closer"}.get(change["verdict"], change["verdict"])
    return {**change, "verdict": verdict}


def summarise(results: dict[int, dict[str, dict]], seeds: list[int], run: Path, complete: bool, args) -> dict:
    """Existing against `args.against` (gends, or the oracle set), per seed; figures keyed by set name."""
    other = args.against
    sets = ("existing", other)
    done = [s for s in seeds if s in results and all(t in results[s] for t in sets)]
    if not done:  # e.g. --sets existing: one side only, no comparison yet
        return {"complete": False, "seeds": [], "note": "no seed has both training sets yet",
                "mean_ood_psnr": {t: mean_std([results[s][t]["ood"]["mean_psnr"] for s in results if t in results[s]])
                                  for t in sets if any(t in r for r in results.values())}}
    pick = lambda train_set, key: [key(results[s][train_set]) for s in done]  # noqa: E731
    ood = {t: mean_std(pick(t, lambda m: m["ood"]["mean_psnr"])) for t in sets}
    in_dist = {t: mean_std(pick(t, lambda m: m["in_distribution"]["psnr"])) for t in sets}
    gain = compare_over_seeds(ood["existing"]["per_seed"], ood[other]["per_seed"])
    # The distributional distances (lower is better): KID on the frozen classifier's features and the
    # network-free sliced Wasserstein distance of image patches, when the metrics have them (runs made
    # before the train_classifier stage do not).  The change is gends minus existing; its verdict is
    # worded for a distance: "GenDS closer" (lower), "GenDS farther" or "within spread".
    def distance(key: str) -> tuple[dict | None, dict | None]:
        if not all(results[s][t]["ood"].get(key) is not None for s in done for t in sets):
            return None, None
        values = {t: mean_std(pick(t, lambda m: m["ood"][key])) for t in sets}
        return values, distance_change(values["existing"]["per_seed"], values[other]["per_seed"])

    kid, kid_change = distance("mean_kid")
    swd, swd_change = distance("mean_swd")

    def breakdown(section: str) -> dict:
        """PSNR gain per set (or degradation), and the change of each distance: which ones hold a target back."""
        names = sorted(results[done[0]]["existing"]["ood"][section])
        table = {}
        for name in names:
            values = {t: pick(t, lambda m, name=name: m["ood"][section][name]) for t in sets}
            existing, compared = ([entry["psnr"] for entry in values[t]] for t in ("existing", other))
            comparison = compare_over_seeds(existing, compared)
            table[name] = {"existing": float(sum(existing) / len(existing)), other: float(sum(compared) / len(compared)),
                           "gain": comparison["mean"], "gain_std": comparison["std"], "verdict": comparison["verdict"],
                           "input_psnr": results[done[0]]["existing"]["ood"][section][name]["input_psnr"]}
            for key in ("kid", "swd"):
                if all(entry.get(key) is not None for t in sets for entry in values[t]):
                    change = distance_change([e[key] for e in values["existing"]], [e[key] for e in values[other]])
                    table[name][f"{key}_change"] = {k: change[k] for k in ("mean", "std", "verdict")}
        return table

    per_set, per_degradation = breakdown("per_set"), breakdown("per_degradation")
    restoration = restoration_targets(results, done, other)
    by_verdict = lambda table, v: sorted(n for n, r in table.items() if r["verdict"] == v)  # noqa: E731
    return {
        "complete": complete,
        "mean_ood_psnr": ood,
        "gain_db": gain,
        "verdict": (f"mean OOD gain {gain['mean']:+.3f} dB (std {gain['std']:.3f} over {len(done)} seeds, "
                    f"seed spread {gain['spread']:.3f}): {gain['verdict']}"),
        "mean_ood_kid": kid,
        "kid_change": kid_change,
        "mean_ood_swd": swd,
        "swd_change": swd_change,
        "per_set": per_set,
        "per_degradation": per_degradation,
        "sets_gaining": by_verdict(per_set, "gain"), "sets_losing": by_verdict(per_set, "loss"),
        "sets_within_spread": by_verdict(per_set, "within spread"),
        "degradations_gaining": by_verdict(per_degradation, "gain"),
        "degradations_losing": by_verdict(per_degradation, "loss"),
        "degradations_within_spread": by_verdict(per_degradation, "within spread"),
        "in_distribution_psnr": {**in_dist, "gain_db": compare_over_seeds(in_dist["existing"]["per_seed"],
                                                                         in_dist[other]["per_seed"])},
        "mean_ood_input_psnr": results[done[0]]["existing"]["ood"]["mean_input_psnr"],
        "restoration": restoration,
        "seeds": done,
        "seeds_requested": seeds,
        "sources": {s: {t: results[s][t]["source"] for t in sets} for s in done},
        "run": str(run),
        "restorer_config": restorer_config(run, train_overrides(args)),
        "synthesis_config": read_stage_config(run / "resolved_params" / "synthesize.json")["synthesis"],
        # The gain bounds each generated image was held to (synthesis.colour_range), when the run used them.
        "colour_ranges": {p.parent.parent.name: json.loads(p.read_text())  # every shard of a degradation has the same
                          for p in sorted((run / "data" / "synthetic").glob("*/shard-*/colour_range.json"))},
        "what_the_seed_changes": "restorer initial weights and batch order / crops / flips (config seed); data and budget fixed",
        **provenance(run),
        "command": (f"python benchmarks/ood_default.py --run {run} --seeds {' '.join(map(str, seeds))} --threads {args.threads}"
                    + (f" --against {args.against}" if args.against != "gends" else "")
                    + (f" --steps {args.steps}" if args.steps else "")
                    + (f" --crop {args.crop}" if args.crop else "")
                    + (f" --scaling-counts {' '.join(map(str, args.scaling_counts))}" if args.scaling_counts else "")),
        "scaling_curve": scaling_curve(results, done, args.scaling_counts),
    }


def train_overrides(args) -> dict:
    """The restorer.train keys this call trains with instead of the run's (--steps, --crop)."""
    return {key: value for key, value in (("steps", args.steps), ("crop", args.crop)) if value is not None}


def restorer_config(run: Path, overrides: dict) -> dict:
    """The run's restorer settings, with the overrides this call trained with."""
    config = read_stage_config(run / "resolved_params" / "train_restorer.json")["restorer"]
    config["train"].update(overrides)
    return config


def restoration_targets(results: dict[int, dict[str, dict]], done: list[int], other: str = "gends") -> dict | None:
    """Does each restorer restore?  The restoration targets of docs/restoration.md, per training set, over the seeds done:
    in distribution >= +3 dB over the unrestored input; mean OOD >= +1.5 dB over it; no OOD
    degradation more than 0.5 dB below it (do no harm); mean-matched OOD PSNR >= +1 dB over the
    input's (structure, not colour).  Then `other` (GenDS, or the oracle set) - existing on the
    mean OOD PSNR and on the mean-matched one, judged against the seed spread, and in
    distribution (>= -0.3 dB), under "<other>_vs_existing"."""
    sets, name = ("existing", other), {"gends": "GenDS"}.get(other, other)
    first = results[done[0]]["existing"]["ood"]
    if "mean_psnr_gain" not in first:  # metrics written before evaluate reported gains over the input
        return None
    pick = lambda t, key: [key(results[s][t]) for s in done]  # noqa: E731
    table = {}
    for t in sets:
        id_gain = mean_std(pick(t, lambda m: m["in_distribution"]["psnr_gain"]))
        ood_gain = mean_std(pick(t, lambda m: m["ood"]["mean_psnr_gain"]))
        matched = mean_std(pick(t, lambda m: m["ood"]["mean_mean_matched_gain"]))
        shift = mean_std(pick(t, lambda m: m["ood"]["mean_colour_shift"]))
        per_degradation = {d: {k: mean_std(pick(t, lambda m, d=d, k=k: m["ood"]["per_degradation"][d][k]))["mean"]
                               for k in ("input_psnr", "psnr_gain", "mean_matched_gain", "colour_shift",
                                         "input_colour_shift", "brightness_shift")}
                           for d in sorted(first["per_degradation"])}
        worst = min(per_degradation, key=lambda d: per_degradation[d]["psnr_gain"])
        table[t] = {
            "in_distribution_gain_db": id_gain, "ood_gain_db": ood_gain, "ood_mean_matched_gain_db": matched,
            "ood_colour_shift": shift, "ood_input_colour_shift": first["mean_input_colour_shift"],
            "per_degradation": per_degradation,
            "targets": {"in_distribution_gain >= 3 dB": id_gain["mean"] >= 3.0,
                        "ood_gain >= 1.5 dB": ood_gain["mean"] >= 1.5,
                        f"no degradation below -0.5 dB (worst: {worst})": per_degradation[worst]["psnr_gain"] >= -0.5,
                        "ood_mean_matched_gain >= 1 dB": matched["mean"] >= 1.0},
        }
    versus = {
        "ood_psnr": compare_over_seeds(pick("existing", lambda m: m["ood"]["mean_psnr"]),
                                       pick(other, lambda m: m["ood"]["mean_psnr"])),
        "ood_mean_matched_psnr": compare_over_seeds(pick("existing", lambda m: m["ood"]["mean_mean_matched_psnr"]),
                                                    pick(other, lambda m: m["ood"]["mean_mean_matched_psnr"])),
        "in_distribution_psnr": compare_over_seeds(pick("existing", lambda m: m["in_distribution"]["psnr"]),
                                                   pick(other, lambda m: m["in_distribution"]["psnr"])),
        "per_degradation": {d: {k: compare_over_seeds(
            pick("existing", lambda m, d=d, k=k: m["ood"]["per_degradation"][d][k]),
            pick(other, lambda m, d=d, k=k: m["ood"]["per_degradation"][d][k]))["mean"]
            for k in ("psnr", "mean_matched_psnr", "colour_shift")} for d in sorted(first["per_degradation"])},
    }
    versus["targets"] = {
        f"{name} - existing OOD PSNR > spread": versus["ood_psnr"]["verdict"] == "gain",
        f"{name} - existing mean-matched OOD PSNR > spread": versus["ood_mean_matched_psnr"]["verdict"] == "gain",
        f"{name} - existing in distribution >= -0.3 dB": versus["in_distribution_psnr"]["mean"] >= -0.3,
    }
    return {"per_training_set": table, f"{other}_vs_existing": versus}


def scaling_curve(results: dict[int, dict[str, dict]], done: list[int], counts: list[int]) -> dict | None:
    """Mean OOD PSNR per generated-pair count over the seeds done, 0 = existing, "all" = GenDS."""
    if not counts:
        return None
    points = {"0": "existing", **{str(c): f"scaling@{c}" for c in counts}, "all": "gends"}
    seeds = [s for s in done if all(key in results[s] for key in points.values())]
    if not seeds:
        return {"seeds": [], "note": "no seed has every point yet"}
    curve = {n: mean_std([results[s][key]["ood"]["mean_psnr"] for s in seeds]) for n, key in points.items()}
    return {"seeds": seeds, "mean_ood_psnr": curve,
            "generated_pairs_total": {str(c): results[seeds[0]][f"scaling@{c}"].get("restorer", {}).get("generated_pairs")
                                     for c in counts}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished pipeline run folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--arch", default="nafnet", help="architecture (its settings: restorer.model.<arch>)")
    parser.add_argument("--sets", nargs="+", choices=sorted(TRAINING_SETS), default=None,
                        help="train these sets (default: existing and --against;  (e.g. `existing` before the run's GenDS exists); "
                             "a later call reuses what --work holds")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ood_default_work"),
                        help="restorers and their metrics, one folder per seed, set and inputs fingerprint")
    parser.add_argument("--out", type=Path, default=RESULTS / "ood_default.json")
    parser.add_argument("--against", choices=["gends", "oracle"], default="gends",
                        help="the set compared with existing: gends, or oracle (existing + the physics generator "
                             "on GenDS's scenes and intensities; needs synthesis.oracle: true)")
    parser.add_argument("--retrain-run-seed", action="store_true")
    parser.add_argument("--steps", type=int, default=None,
                        help="restorer training steps instead of the run's (a budget study; the run's own seed is retrained)")
    parser.add_argument("--crop", type=int, default=None,
                        help="restorer training crop instead of the run's restorer.train.crop (the run's own seed is retrained)")
    parser.add_argument("--scaling-counts", type=int, nargs="*", default=[],
                        help="also the scaling restorers (existing + first N generated pairs per degradation)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.sets = args.sets or ["existing", args.against]
    run = args.run.resolve()
    needs = [MANIFESTS[t] for t in args.sets] + (["data/gends/manifest.csv"] if args.scaling_counts else [])
    for needed in ("data/prepared/ood.csv", "models/classifier/classifier.json", *needs,
                   "resolved_params/train_restorer.json",
                   "resolved_params/evaluate.json"):
        if not (run / needed).exists():
            raise SystemExit(f"ood_default: {run} is not a finished pipeline run: {needed} is missing")
    work = args.work.resolve()
    args.out = args.out.resolve()
    isolate_tracking(work)
    os.chdir(run)  # manifests hold paths relative to the run folder, as the stages expect
    run_seed = read_stage_config(run / "resolved_params" / "train_restorer.json")["seed"]
    results: dict[int, dict[str, dict]] = {}
    for seed in args.seeds:
        for train_set in args.sets:
            results.setdefault(seed, {})[train_set] = metrics_for_seed(run, work, args.arch, train_set, seed, run_seed,
                                                                       args.retrain_run_seed,
                                                                       train_overrides=train_overrides(args))
        for count in args.scaling_counts:
            results[seed][f"scaling@{count}"] = metrics_for_seed(run, work, args.arch, "gends", seed, run_seed,
                                                                 args.retrain_run_seed, count)
        complete = seed == args.seeds[-1] and {"existing", args.against} <= set(args.sets)
        write_json(summarise(results, args.seeds, run, complete, args), args.out)
        print(f"wrote {args.out} after seed {seed}", flush=True)


if __name__ == "__main__":
    main()
