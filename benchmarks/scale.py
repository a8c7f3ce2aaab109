"""How the pipeline's data path grows with its data: per stage, at 10^3, 10^4 and
10^5 generated pairs, the wall time, peak RSS, time to the first training step and image files
read; a linear fit per stage; `dvc commit` / `dvc status` over the pair folder; and the fit
extrapolated to the paper's sizes beside the limits of each rule in profiles/slurm.

Small images (32 px) make the per-file costs; a 256 px set (smaller counts) shows that a
training job's memory does not follow the images' size or number.  The smoke preset's models
and a few steps: the data path dominates, not the model.  Each stage runs in a child process of
its own, whose peak RSS is read from `os.wait4`.  GPU rates (synthesis, GenDeg training) are not
measured here: they come from benchmarks/results/gpu_throughput.json (an H200), named as such.

    python benchmarks/scale.py [--sizes 1000 10000 100000] [--memory-sizes 1000 10000] [--work DIR]
writes benchmarks/results/scale.json; `--only STAGE ...` re-measures stages after a change (their runs
replaced, the rest kept); `--refit` re-derives the fits and the paper-size table from the stored runs
and today's profiles/slurm; `--table` prints that table (docs/scale.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
GPU_RATES = ROOT / "benchmarks" / "results" / "gpu_throughput.json"
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
TRAIN_STEPS = 20
# The paper's sizes (../shared/MISSION.md; the released GenDS manifest).
PAPER = {"real_pairs": 214_161, "generated_images": 600_000, "gends_pairs": 780_000, "ood_test_images": 10_000}


# --------------------------------------------------------------------------- data

def make_pairs(directory: Path, count: int, size: int) -> Path:
    """`count` pairs of smooth random images (content does not matter to the data path) and a
    prepared-style manifest; made once per folder (a marker says it is complete)."""
    from PIL import Image

    from gendeg import DEGRADATIONS
    from gendeg.data.manifest import write_manifest

    manifest = directory / "train.csv"
    if (directory / "complete").exists():
        return manifest
    images = directory / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    rows = []
    for i in range(count):
        clean = Image.fromarray(rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)).resize((size, size))
        clean.save(images / f"{i:06d}_clean.png", compress_level=1)
        Image.eval(clean, lambda v: v // 2 + 40).save(images / f"{i:06d}_hazy.png", compress_level=1)
        rows.append({"image_path": str(images / f"{i:06d}_hazy.png"), "target_path": str(images / f"{i:06d}_clean.png"),
                     "dataset": f"set{i % 20}", "degradation": DEGRADATIONS[i % len(DEGRADATIONS)], "category": "Real",
                     "split": "train", "mu": 0.1, "sigma": 0.05, "caption": ""})
    import pandas as pd

    write_manifest(pd.DataFrame(rows), manifest)
    (directory / "complete").write_text("")
    return manifest


# --------------------------------------------------------------------------- stages (run in a child)

def smoke_config() -> dict:
    from gendeg.pipeline.config import resolve

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["preset"] = "smoke"
    return resolve(params)


def count_reads() -> list:
    """Wrap the one function every stage reads a pair image through; returns the call log."""
    from gendeg.data import pairs

    reads, load = [], pairs.load_image
    pairs.load_image = lambda path, size: reads.append(1) or load(path, size)
    return reads


def first_step_clock() -> dict:
    """Time of the first training step's generator: when the loop starts drawing batches."""
    from gendeg.runtime import training

    clock, make = {}, training.step_generator
    start = time.perf_counter()

    def timed(*args, **kwargs):
        clock.setdefault("first_step_s", round(time.perf_counter() - start, 3))
        return make(*args, **kwargs)
    training.step_generator = timed
    return clock


def _hash_counter() -> dict:
    """Count the images select_pairs hashes (those not found in its cache)."""
    from gendeg.stages import select_pairs

    counter, sha1 = {"count": 0}, select_pairs._sha1

    def counted(*args, **kwargs):
        counter["count"] += 1
        return sha1(*args, **kwargs)
    select_pairs._sha1 = counted
    return counter


def run_stage(stage: str, data: Path, work: Path) -> dict:
    """One stage on the pairs in `data`; returns what it measured of itself."""
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    config, manifest = smoke_config(), data / "train.csv"
    reads, clock = count_reads(), first_step_clock()
    start = time.perf_counter()
    out: dict = {}
    if stage in ("prepare_cold", "prepare_warm"):
        from gendeg.stages.prepare import measure_pairs

        frame = pd.read_csv(manifest)
        _, measured = measure_pairs(frame["image_path"], frame["target_path"], workers=2, work_dir=work / "prepare")
        out["pairs_measured"] = int(measured)
        out["files_read"] = 2 * int(measured)
    elif stage in ("select_pairs_cold", "select_pairs_warm"):
        from gendeg.stages.select_pairs import select_pairs

        reads_before = _hash_counter()
        select_pairs("existing", data, work / "existing.csv", work_dir=work / "select_pairs", workers=2)
        out["files_read"] = reads_before["count"]
    elif stage == "train_restorer":
        from gendeg.stages.train_restorer import train_restorer

        config["restorer"]["image_size"] = None  # full-resolution crops, the paper preset's setting
        config["restorer"]["train"].update(steps=TRAIN_STEPS, checkpoint_every=TRAIN_STEPS)
        train_restorer(config, "nafnet", "existing", manifest, work / "restorer", None)
    elif stage == "train_gendeg":
        from gendeg.stages.train_gendeg import train_gendeg

        config["gendeg"]["train"].update(steps=TRAIN_STEPS, checkpoint_every=TRAIN_STEPS)
        train_gendeg(config, data, work / "gendeg", None)
    elif stage == "evaluate":
        out |= run_evaluate(config, data, work)
    else:
        raise SystemExit(f"unknown stage {stage}")
    out["wall_s"] = round(time.perf_counter() - start, 3)
    out.setdefault("files_read", len(reads))
    out.update(clock)
    return out


def run_evaluate(config: dict, data: Path, work: Path) -> dict:
    """Every pair as an OOD image, a freshly initialised smoke restorer and classifier."""
    import pandas as pd

    from gendeg.measure.classifier import DegradationClassifier, save_classifier
    from gendeg.restorers import build_restorer, save_restorer
    from gendeg.stages.evaluate import evaluate

    frame = pd.read_csv(data / "train.csv")
    prepared = work / "prepared"
    prepared.mkdir(parents=True, exist_ok=True)
    frame.assign(split="ood").to_csv(prepared / "ood.csv", index=False)
    frame.head(2).assign(split="test").to_csv(prepared / "test.csv", index=False)
    restorer = {**config["restorer"]["model"]["nafnet"], "arch": "nafnet"}
    save_restorer(build_restorer(restorer, seed=0), restorer, work / "restorer")
    save_classifier(DegradationClassifier(width=config["classifier"]["width"]), work / "classifier")
    config["evaluate"]["image_size"] = None
    evaluate(config, "scale", work / "restorer", work / "classifier", prepared, work / "m.json", work / "m.csv")
    return {}


def measured_child(stage: str, data: Path, work: Path) -> dict:
    """`run_stage` in a child process; adds its peak RSS (MB)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "GENDEG_PROJECT_ROOT": str(work),
           "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen([sys.executable, __file__, "--child", stage, str(data), str(work)], stdout=output,
                                 stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        output.seek(0)
        text = output.read().decode()
    if status != 0:
        raise SystemExit(f"{stage} on {data} failed (status {status}); rerun: {sys.executable} {__file__} --child "
                         f"{stage} {data} {work}")
    return {**json.loads(text.strip().splitlines()[-1]), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def dvc_costs(data: Path) -> dict:
    """`dvc commit` (hashes every file) and a following `dvc status` on a stage whose output is the folder."""
    repo = data  # the folder itself: DVC does not walk an output behind a symlink
    for leftover in (".git", ".dvc", "dvc.yaml", "dvc.lock", ".dvcignore", ".gitignore"):
        path = repo / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=repo, check=True)
    (repo / "dvc.yaml").write_text("stages:\n  pairs:\n    cmd: 'true'\n    outs:\n      - images:\n          cache: false\n")
    timings = {}
    for name, command in (("dvc_commit_s", [dvc, "commit", "-f", "-q"]), ("dvc_status_s", [dvc, "status", "-q"])):
        start = time.perf_counter()
        subprocess.run(command, cwd=repo, check=True, capture_output=True)
        timings[name] = round(time.perf_counter() - start, 2)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    timings["files_hashed"] = lock["stages"]["pairs"]["outs"][0]["nfiles"]
    for leftover in (".git", ".dvc", "dvc.yaml", "dvc.lock", ".dvcignore", ".gitignore"):
        path = repo / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    return timings


# --------------------------------------------------------------------------- fits and the paper table

def linear_fit(sizes: list[int], values: list[float]) -> dict:
    """value = fixed + per_pair * N, least squares (in the units of `values`)."""
    per_pair, fixed = np.polyfit(np.asarray(sizes, float), np.asarray(values, float), 1)
    return {"fixed": round(float(fixed), 4), "per_pair": float(f"{per_pair:.4g}")}


def profile_limits() -> dict:
    profile = yaml.safe_load(PROFILE.read_text())
    default = profile.get("default-resources", {})
    return {rule: {"mem_mb": spec.get("mem_mb", default.get("mem_mb")), "runtime_min": spec.get("runtime", default.get("runtime")),
                   "cpus": spec.get("cpus_per_task", default.get("cpus_per_task"))}
            for rule, spec in {**{r: {} for r in ("prepare", "select_pairs", "evaluate", "merge")},
                               **profile.get("set-resources", {})}.items()}


def extrapolate(runs: dict, fit: dict, key: str, pairs: int, share: float = 1.0) -> float:
    """`key` at `pairs`: the largest measured value plus the fitted per-pair slope for the pairs beyond
    it; with `share` (the per-pair work's share left on more cores) the fit's fixed part plus the
    shared per-pair part.  A slope at or below zero adds nothing: a flat cost is never extrapolated
    downwards."""
    slope = max(0.0, fit[key]["per_pair"])
    if share != 1.0:  # the per-pair part of every pair spreads; the fixed part does not
        return max(0.0, fit[key]["fixed"]) + slope * share * pairs
    largest = max(runs, key=int)
    return runs[largest][key] + slope * (pairs - int(largest))


def paper_table(stages: dict, dvc: dict, limits: dict) -> list[dict]:
    """Each stage's cost at the paper's size beside its profile entry."""
    rows = []

    def add(stage: str, rule: str, pairs: int, note: str, cores: int | None = None, timed: bool = True):
        runs, fit = stages.get(stage, {}).get("runs"), stages.get(stage, {}).get("fit")
        if not fit:  # measured at one size only: nothing to extrapolate
            return
        rss = extrapolate(runs, fit, "peak_rss_mb", pairs)
        # Measured on 2 workers; with `cores` the per-pair part spreads over the rule's cores.
        wall = extrapolate(runs, fit, "wall_s", pairs, 2 / cores if cores else 1.0) if timed else None
        if "first_step_s" in fit:
            note += f"; first training step after {extrapolate(runs, fit, 'first_step_s', pairs):.0f} s"
        limit = limits.get(rule, {})
        fits = rss <= limit.get("mem_mb", 0) and (wall is None or wall / 60 <= (limit.get("runtime_min") or 0))
        rows.append({"stage": stage, "rule": rule, "pairs": pairs, "cores": cores,
                     "wall_min": None if wall is None else round(wall / 60, 1), "peak_rss_gb": round(rss / 1024, 2),
                     "profile_mem_gb": round(limit.get("mem_mb", 0) / 1024, 1),
                     "profile_runtime_min": limit.get("runtime_min"), "fits": fits, "note": note})
    prepare_cores = limits.get("prepare", {}).get("cpus") or 4
    add("prepare_cold", "prepare", PAPER["real_pairs"], "(mu, sigma) of every real pair, first run", prepare_cores)
    add("prepare_warm", "prepare", PAPER["real_pairs"], "re-run with no file changed", prepare_cores)
    add("select_pairs_cold", "select_pairs", PAPER["gends_pairs"], "SHA-1 of every image, first run (2 threads)")
    add("select_pairs_warm", "select_pairs", PAPER["gends_pairs"], "re-run with no file changed")
    add("train_restorer", "train_restorer", PAPER["gends_pairs"], "data path only (steps: GPU)", timed=False)
    add("train_gendeg", "train_gendeg", PAPER["real_pairs"], "data path only (steps and the latent cache: GPU)",
        timed=False)
    add("evaluate", "evaluate", PAPER["ood_test_images"], "scores, features and SWD patches per image")
    if dvc.get("fit"):
        for key in ("dvc_commit_s", "dvc_status_s"):
            wall = extrapolate(dvc["runs"], dvc["fit"], key, PAPER["gends_pairs"])
            rows.append({"stage": key.removesuffix("_s"), "pairs": PAPER["gends_pairs"], "wall_min": round(wall / 60, 1),
                         "note": "the whole GenDS folder, 2 files a pair"})
    return rows


def gpu_table(limits: dict) -> dict:
    """GPU-hours of synthesis and GenDeg training from the H200 rates recorded by gpu_throughput.py."""
    rates = json.loads(GPU_RATES.read_text())
    per_image = rates["paper"]["sampling"]["euler_ancestral_100_at_512"]["s_per_image"]
    shards = len(yaml.safe_load((ROOT / "params.yaml").read_text())["synthesis"]["shards"])
    hours = PAPER["generated_images"] * per_image / 3600
    train = rates["paper"]["train"]
    gendeg_hours = 20_000 * 128 / train["images_per_s"] / 3600
    return {"source": f"{GPU_RATES.relative_to(ROOT)} ({rates['device']}, torch {rates['torch']})",
            "synthesis": {"images": PAPER["generated_images"], "s_per_image_fp32": per_image,
                          "gpu_hours": round(hours, 1), "wall_h_on_64_gpus": round(hours / 64, 2),
                          "per_shard_job_h": {str(n): round(hours / 6 / n, 1) for n in (1, 5, 10, 20)},
                          "profile_runtime_min": limits.get("synthesize", {}).get("runtime_min"),
                          "shards_in_params_yaml": shards},
            "train_gendeg": {"steps": 20_000, "effective_batch": 128, "images_per_s_bf16_vae_each_step": train["images_per_s"],
                             "gpu_hours": round(gendeg_hours, 1),
                             "profile_runtime_min": limits.get("train_gendeg", {}).get("runtime_min")}}


def measured_markdown(result: dict) -> str:
    """Per stage and size: wall time, peak RSS, first training step, image files read."""
    lines = ["| stage | pairs | wall | peak RSS | first step | files read |", "|---|---|---|---|---|---|"]
    for name, stage in result["stages_32px"].items():
        for count, run in sorted(stage["runs"].items(), key=lambda item: int(item[0])):
            first = f"{run['first_step_s']} s" if "first_step_s" in run else ""
            lines.append(f"| {name} | {int(count):,} | {run['wall_s']} s | {run['peak_rss_mb']:.0f} MB | {first} | "
                         f"{run['files_read']:,} |")
    for count, run in sorted(result["dvc_32px"]["runs"].items(), key=lambda item: int(item[0])):
        lines.append(f"| dvc commit / status | {int(count):,} | {run['dvc_commit_s']} s / {run['dvc_status_s']} s | | | "
                     f"{run['files_hashed']:,} |")
    for name, runs in result["memory_256px"].items():
        for count, run in sorted(runs.items(), key=lambda item: int(item[0])):
            lines.append(f"| {name} (256 px) | {int(count):,} | {run['wall_s']} s | {run['peak_rss_mb']:.0f} MB | "
                         f"{run['first_step_s']} s | {run['files_read']:,} |")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    """The paper-size table of a result file, as docs/scale.md shows it."""
    lines = ["| stage | pairs | cores | time | peak RSS | profile limit | fits | note |", "|---|---|---|---|---|---|---|---|"]
    for row in result["paper_extrapolation"]:
        limit = (f"{row['profile_mem_gb']} GB, {row['profile_runtime_min']} min" if row.get("rule") else "")
        rss = f"{row['peak_rss_gb']} GB" if "peak_rss_gb" in row else ""
        fits = {True: "yes", False: "**no**", None: ""}[row.get("fits")]
        wall = "" if row["wall_min"] is None else f"{row['wall_min']} min" if row["wall_min"] >= 0.1 else "< 0.1 min"
        lines.append(f"| {row['stage']} | {row['pairs']:,} | {row.get('cores') or ''} | {wall} | {rss} | "
                     f"{limit} | {fits} | {row['note']} |")
    return "\n".join(lines)


def data_and_work(root: Path, name: str, count: int, size: int) -> tuple[Path, Path]:
    """The pair set (made once, kept between runs) and an empty folder for the stages' outputs."""
    data = root / f"{name}-{count}"
    print(f"{count} pairs at {size} px: making data", flush=True)
    make_pairs(data, count, size)
    work = root / f"run-{name}-{count}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return data, work


def measure_small(args, only: set[str] | None) -> tuple[dict, dict]:
    """Every stage (or those in `only`) at each size of the 32 px sets; `dvc` only on a full run."""
    stages: dict = {}
    dvc: dict = {"runs": {}}
    plan = [("prepare_cold", args.sizes), ("prepare_warm", args.sizes), ("select_pairs_cold", args.sizes),
            ("select_pairs_warm", args.sizes), ("train_restorer", args.sizes), ("train_gendeg", args.sizes),
            ("evaluate", args.evaluate_sizes)]
    plan = [(stage, sizes) for stage, sizes in plan if only is None or stage in only]
    for count in sorted({n for _, sizes in plan for n in sizes}):
        data, work = data_and_work(args.work, "small", count, 32)
        for stage, sizes in plan:
            if count in sizes:
                result = measured_child(stage, data, work)
                stages.setdefault(stage, {"runs": {}})["runs"][str(count)] = result
                print(f"  {stage}: {result}", flush=True)
        if only is None and count in args.sizes:
            dvc["runs"][str(count)] = dvc_costs(data)
            print(f"  dvc: {dvc['runs'][str(count)]}", flush=True)
    return stages, dvc


def fit_stages(stages: dict, dvc: dict) -> None:
    """Linear fits (and the largest-to-smallest RSS ratio) of each stage measured at several sizes."""
    for stage in stages.values():
        sizes = [int(n) for n in stage["runs"]]
        keys = [k for k in ("wall_s", "peak_rss_mb", "first_step_s") if all(k in run for run in stage["runs"].values())]
        stage["fit"] = {key: linear_fit(sizes, [run[key] for run in stage["runs"].values()])
                        for key in keys} if len(sizes) > 1 else {}
        first, last = str(min(sizes)), str(max(sizes))
        stage["rss_ratio_largest_to_smallest"] = round(stage["runs"][last]["peak_rss_mb"] / stage["runs"][first]["peak_rss_mb"], 3)
    if len(dvc["runs"]) > 1:
        sizes = [int(n) for n in dvc["runs"]]
        dvc["fit"] = {key: linear_fit(sizes, [run[key] for run in dvc["runs"].values()])
                      for key in ("dvc_commit_s", "dvc_status_s")}


def measure_memory(args) -> dict:
    """The training stages on 256 px sets: memory should not follow the images' size or number."""
    memory: dict = {}
    for count in args.memory_sizes:
        data, work = data_and_work(args.work, "large", count, 256)
        for stage in ("train_restorer", "train_gendeg"):
            memory.setdefault(stage, {})[str(count)] = measured_child(stage, data, work)
            print(f"  {stage}: {memory[stage][str(count)]}", flush=True)
    return memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--memory-sizes", nargs="+", type=int, default=[1000, 10000])
    parser.add_argument("--evaluate-sizes", nargs="+", type=int, default=[1000, 10000])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "gendeg-scale")
    parser.add_argument("--only", nargs="+", metavar="STAGE",
                        help="re-measure these stages after a change and replace their runs in the result file")
    parser.add_argument("--refit", action="store_true",
                        help="re-derive fits and the paper-size table from the stored runs and today's profiles/slurm")
    parser.add_argument("--table", action="store_true", help="print the paper-size table of the result file and stop")
    parser.add_argument("--child", nargs=3, metavar=("STAGE", "DATA", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.table:
        result = json.loads(RESULTS.read_text())
        print(measured_markdown(result) + "\n\n" + markdown(result))
        return
    if args.child:
        print(json.dumps(run_stage(args.child[0], Path(args.child[1]), Path(args.child[2]))))
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gendeg.runtime.machine import provenance

    command = "python benchmarks/scale.py " + " ".join(sys.argv[1:])
    if args.refit:
        result = json.loads(RESULTS.read_text())
        stages, dvc, memory = result["stages_32px"], result["dvc_32px"], result["memory_256px"]
        result.setdefault("refitted", []).append({"command": command, **provenance()})
    elif args.only:
        result = json.loads(RESULTS.read_text())
        stages, _ = measure_small(args, set(args.only))
        result["stages_32px"].update(stages)
        result.setdefault("remeasured", []).append({"command": command, "stages": args.only, **provenance()})
        stages, dvc, memory = result["stages_32px"], result["dvc_32px"], result["memory_256px"]
    else:
        (stages, dvc), memory = measure_small(args, None), measure_memory(args)
        result = {"command": command, "train_steps": TRAIN_STEPS, "image_px": {"small": 32, "memory": 256},
                  **provenance(note="scale benchmark")}
    fit_stages(stages, dvc)
    limits = profile_limits()
    result.update({"stages_32px": stages, "dvc_32px": dvc, "memory_256px": memory, "paper_sizes": PAPER,
                   "profile_limits": limits, "paper_extrapolation": paper_table(stages, dvc, limits),
                   "gpu": gpu_table(limits)})
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
