"""Would a type filter help?  Drop the generated pairs the type judge does not recognise, retrain.

The merge stage filters generated pairs on intensity only.  This script measures what a
second filter on type would do: it trains the change judge of `intensity_control.py` on
the run's training pairs, drops every generated GenDS pair that the judge does not call by
its requested degradation, writes a copy of the run whose `data/gends/manifest.csv` is the
filtered one (and without the run's own GenDS metrics, which no longer apply), and runs
`ood_default.py` on the copy, so existing and filtered GenDS are compared over the same
seeds as the unfiltered figures.

    python benchmarks/type_filter.py --run /tmp/bench/default --copy /tmp/type_filter_run

Writes benchmarks/results/type_filter.json (what the filter kept, the judge's figures) and
benchmarks/results/ood_default_type_filter.json (ood_default's figures on the copy).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from intensity_control import manifest_changes, train_change_judge

from gendeg.data.manifest import read_manifest
from gendeg.data.pairs import degradation_index
from gendeg.measure.classifier import predict
from gendeg.runtime.atomic import write_json
from gendeg.runtime.machine import provenance

RESULTS = Path(__file__).parent / "results"
GENDS = "data/gends/manifest.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished pipeline run folder (left untouched)")
    parser.add_argument("--copy", type=Path, required=True, help="where the filtered copy of the run goes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 0])
    parser.add_argument("--judge-steps", type=int, default=1500, help="as intensity_control.py's --classifier-steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ood_default_work"), help="ood_default.py's cache")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run, copy = args.run.resolve(), args.copy.resolve()
    if not (run / GENDS).is_file():
        raise SystemExit(f"type_filter: {run} is not a finished pipeline run: {GENDS} is missing")
    if copy.exists():
        raise SystemExit(f"type_filter: {copy} exists; give a new folder for the filtered copy")
    shutil.copytree(run, copy, symlinks=True)

    size = json.loads((run / "models/gendeg/train_summary.json").read_text())["image_size"]  # as intensity_control
    train, test = (read_manifest(copy / f"data/prepared/{split}.csv") for split in ("train", "test"))
    judge, judge_report = train_change_judge(copy, train, test, size, args.judge_steps, seed=0)
    manifest = pd.read_csv(run / GENDS, keep_default_na=False)
    generated = manifest[manifest["category"] == "Synthetic"]
    called = predict(judge, manifest_changes(copy, generated, size)).argmax(1)
    keep = (called == degradation_index(generated["degradation"])).numpy()
    pd.concat([manifest[manifest["category"] != "Synthetic"], generated[keep]]).sort_index().to_csv(
        copy / GENDS, index=False)
    for stale in (copy / "metrics").glob("*/gends/seed-*.json"):
        stale.unlink()

    write_json({"kept": int(keep.sum()), "generated": len(generated),
                "kept_share": generated.assign(kept=keep).groupby("degradation")["kept"].mean().to_dict(),
                "change_judge": judge_report, "run": str(run), "copy": str(copy), **provenance(run),
                "command": f"python benchmarks/type_filter.py --run {args.run} --copy {args.copy}"},
               RESULTS / "type_filter.json")
    print(f"kept {keep.sum()} of {len(generated)} generated pairs", flush=True)
    subprocess.run([sys.executable, str(Path(__file__).parent / "ood_default.py"), "--run", str(copy),
                    "--seeds", *map(str, args.seeds), "--threads", str(args.threads), "--work", str(args.work),
                    "--out", str(RESULTS / "ood_default_type_filter.json")], check=True)


if __name__ == "__main__":
    main()
