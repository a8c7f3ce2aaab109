"""What the full comparison (`make full`) costs and shows, collected from a finished run folder.

Reads the run's Snakemake benchmark files (logs/benchmarks/**.tsv: wall and CPU seconds of
every job) and metrics (metrics/<arch>/<set>/seed-<seed>.json, metrics/scaling/<n>.json) and writes
benchmarks/results/full_comparison.json: CPU seconds per job group and in all, the sum of
job wall times, and mean OOD / in-distribution PSNR and OOD KID per job.  The run's own
wall clock is passed in (`--wall-s`), as measured around `snakemake --cores all`.

    cp -r <project> /tmp/full && cd /tmp/full && gendeg comparison full
    /usr/bin/time -v snakemake --cores all
    python benchmarks/full_comparison.py --run /tmp/full --wall-s 3089 --note "shared machine"
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

from gendeg.runtime.atomic import write_json
from gendeg.runtime.machine import provenance

RESULTS = Path(__file__).parent / "results" / "full_comparison.json"


def job_group(relative: Path) -> str:
    """logs/benchmarks/train_restorer/swin/gends.tsv -> train_restorer/swin; scaling jobs -> <stage>/scaling."""
    parts = relative.with_suffix("").parts
    return "/".join(parts[:2]) if len(parts) > 2 else parts[0]


def job_costs(run: Path) -> dict:
    cpu, wall, jobs = defaultdict(float), defaultdict(float), defaultdict(int)
    root = run / "logs" / "benchmarks"
    for path in sorted(root.rglob("*.tsv")):
        row = next(csv.DictReader(path.open(), delimiter="\t"))
        group = job_group(path.relative_to(root))
        cpu[group] += float(row["cpu_time"])
        wall[group] += float(row["s"])
        jobs[group] += 1
    if not jobs:
        raise SystemExit(f"full_comparison: no benchmark files under {root}: is {run} a finished run?")
    return {"per_group": {g: {"jobs": jobs[g], "cpu_s": round(cpu[g], 1), "job_wall_s": round(wall[g], 1)}
                          for g in sorted(jobs)},
            "jobs": sum(jobs.values()), "cpu_s": round(sum(cpu.values()), 1),
            "sum_of_job_wall_s": round(sum(wall.values()), 1)}


def scores(path: Path) -> dict:
    metrics = json.loads(path.read_text())
    return {"mean_ood_psnr": metrics["ood"]["mean_psnr"], "in_distribution_psnr": metrics["in_distribution"]["psnr"],
            "mean_ood_kid": metrics["ood"].get("mean_kid")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished `make full` run folder")
    parser.add_argument("--wall-s", type=float, required=True, help="wall seconds of `snakemake --cores all`")
    parser.add_argument("--note", default="", help="how the machine was loaded during the run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    metrics = args.run / "metrics"
    jobs = {f"{p.parent.parent.name}-{p.parent.name}": scores(p) for p in sorted(metrics.glob("*/*/seed-*.json"))
            if p.parent.name != "scaling"}
    scaling = {int(p.stem): scores(p) for p in sorted(metrics.glob("scaling/*.json"))}
    write_json({"wall_s": args.wall_s, "costs": job_costs(args.run), "jobs": jobs,
                "scaling": {str(n): scaling[n] for n in sorted(scaling)},
                **provenance(args.run, note=args.note),
                "command": f"python benchmarks/full_comparison.py --run {args.run} --wall-s {args.wall_s}"},
               args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
