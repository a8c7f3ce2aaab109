"""Wall time and peak memory of the whole pipeline, per preset, on this machine.

Runs `snakemake --cores all` in a fresh copy of the project for each preset and writes
benchmarks/results/pipeline_time.json:
    {"smoke": {"wall_s": ..., "peak_rss_mb": ..., "params_sha256": ...}, "default": {...}, "machine": {...}, "git": {...}}
peak_rss_mb is the largest resident set of any single process of the run (the biggest job).

    python benchmarks/pipeline_time.py [--presets smoke default] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gendeg.runtime.machine import describe_machine, git_commit, params_hash

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # helpers: the project copy the end-to-end tests make too
from helpers.project_copy import commit_all, copy_worktree  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "pipeline_time.json"


def copy_project(target: Path) -> None:
    copy_worktree(target)
    commit_all(target, "bench", "bench")


def machine() -> dict:
    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "platform": platform.platform(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def run_preset(preset: str, workdir: Path) -> dict:
    copy_project(workdir)
    params = workdir / "params.yaml"
    params.write_text(re.sub(r"(?m)^preset: \w+", f"preset: {preset}", params.read_text()))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GENDEG_PROJECT_ROOT")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    load_before = [round(x, 2) for x in os.getloadavg()]  # how busy the cores were before the run
    start = time.perf_counter()
    done = subprocess.run(["snakemake", "--cores", "all"], cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{preset}: snakemake failed\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    bench = workdir / "logs" / "benchmarks"
    jobs = {str(p.relative_to(bench).with_suffix("")): float(p.read_text().splitlines()[1].split("\t")[0])
            for p in sorted(bench.rglob("*.tsv"))}
    report = json.loads((workdir / "reports" / "summary.json").read_text())
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(peak_kb / 1024, 1), "job_seconds": jobs,
            "mean_ood_psnr": report["mean_ood_psnr"], "params_sha256": params_hash(workdir),
            "load_average_before": load_before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["smoke", "default"])
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders under this folder")
    parser.add_argument("--one", nargs=2, metavar=("PRESET", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child process per preset, so the peak-memory reading is that preset's own
        print(json.dumps(run_preset(args.one[0], Path(args.one[1]))))
        return
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for preset in args.presets:
        base = args.keep or Path(tempfile.mkdtemp(prefix="gendeg-bench-"))
        workdir = base / preset
        workdir.mkdir(parents=True, exist_ok=True)
        child = subprocess.run([sys.executable, __file__, "--one", preset, str(workdir)], capture_output=True,
                               text=True, check=True)
        results[preset] = json.loads(child.stdout.strip().splitlines()[-1])
        print(preset, json.dumps(results[preset], indent=2))
        if args.keep is None:
            shutil.rmtree(base)
    results["machine"] = {**machine(), "description": describe_machine()}
    results["git"] = git_commit()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
