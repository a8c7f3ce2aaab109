"""How much of each restorer's OOD error is global brightness?

Low light is where GenDS loses to existing data on the default preset.  This script takes a
finished pipeline run and, for every restorer in models/restorer/<arch>/<set>/seed-<seed> and every
evaluation set (OOD sets and the test split's datasets), measures:

* mean brightness of the restored images and of their ground truth (RGB in [0, 1]);
* PSNR as the pipeline measures it;
* PSNR after scaling each restored image so that its mean equals its target's mean: what
  the restorer would score if only its global gain were right.

A large PSNR gap that vanishes after mean matching says the restorer mis-estimates how much
to brighten, not how to restore detail.

    python benchmarks/brightness_gap.py --run /tmp/bench/default --threads 1

Writes benchmarks/results/brightness_gap.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from gendeg.data.manifest import read_manifest
from gendeg.data.pairs import PairBank
from gendeg.measure.metrics import psnr
from gendeg.pipeline.config import read_stage_config
from gendeg.restorers import load_restorer, restore
from gendeg.runtime.atomic import write_json
from gendeg.runtime.machine import provenance

RESULTS = Path(__file__).parent / "results" / "brightness_gap.json"


def mean_matched(restored: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each restored image scaled so its mean equals its target's (clamped to [0, 1])."""
    gain = target.mean(dim=(1, 2, 3), keepdim=True) / restored.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    return (restored * gain).clamp(0, 1)


def set_figures(model: torch.nn.Module, degraded: torch.Tensor, clean: torch.Tensor) -> dict:
    restored = torch.cat([restore(model, degraded[i:i + 64]) for i in range(0, len(degraded), 64)])
    return {"restored_mean": float(restored.mean()), "target_mean": float(clean.mean()),
            "input_mean": float(degraded.mean()), "psnr": float(psnr(restored, clean).mean()),
            "psnr_mean_matched": float(psnr(mean_matched(restored, clean), clean).mean()), "images": len(clean)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished pipeline run folder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = args.run.resolve()
    restorers = sorted(p for p in (run / "models" / "restorer").glob("*/*/seed-*") if (p / "model.safetensors").is_file())
    if not restorers:
        raise SystemExit(f"brightness_gap: no trained restorer under {run / 'models/restorer'}")
    size = read_stage_config(run / "resolved_params" / "evaluate.json")["evaluate"]["image_size"]
    splits = {split: read_manifest(run / "data" / "prepared" / f"{split}.csv") for split in ("ood", "test")}
    images = {}
    for split, frame in splits.items():
        for dataset, rows in frame.groupby("dataset", sort=True):
            rows = rows.assign(image_path=[str(run / p) for p in rows["image_path"]],
                               target_path=[str(run / p) for p in rows["target_path"]])
            degraded, clean = PairBank(rows, size=size, description=f"loading {dataset}").tensors()
            images[(split, dataset, rows["degradation"].iloc[0])] = (degraded, clean)
    results: dict = {"restorers": {}}
    for folder in restorers:
        job = f"{folder.parent.name}-{folder.name}"
        model = load_restorer(folder).eval()
        per_set = {f"{split}/{dataset}": {"degradation": degradation, **set_figures(model, degraded, clean)}
                   for (split, dataset, degradation), (degraded, clean) in images.items()}
        ood = [v for k, v in per_set.items() if k.startswith("ood/")]
        results["restorers"][job] = {
            "mean_ood_psnr": float(np.mean([v["psnr"] for v in ood])),
            "mean_ood_psnr_mean_matched": float(np.mean([v["psnr_mean_matched"] for v in ood])),
            "per_set": per_set,
        }
        print(job, " ".join(f"{k}: {v['psnr']:.2f}->{v['psnr_mean_matched']:.2f} dB "
                            f"(mean {v['restored_mean']:.3f} vs {v['target_mean']:.3f})"
                            for k, v in per_set.items() if v["degradation"] == "low_light"), flush=True)
    results["run"] = {"run_folder": str(args.run), "image_size": size,
                      **provenance(args.run),
                      "command": f"python benchmarks/brightness_gap.py --run {args.run} --threads {args.threads}"}
    write_json(results, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
