"""Parameters and CPU training-step time of each restorer at its default (CPU preset) config.

One thread, one 8x3x64x64 batch, L1 loss, forward + backward (+ no optimiser step);
median over `--repeats` timed steps after `--warmup` untimed ones.  Also times the
degradation classifier.  The settings are params.yaml's (restorer.model.<arch>,
classifier.width; its selected preset applied, `default` as shipped).  Writes
benchmarks/results/restorer_speed.json.

    .venv/bin/python benchmarks/restorer_speed.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from gendeg.measure.classifier import CLASSES, DegradationClassifier
from gendeg.pipeline.config import load_params
from gendeg.restorers import BUILDERS, build_restorer, count_parameters, resolved_config
from gendeg.runtime.atomic import write_json
from gendeg.runtime.machine import provenance

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "restorer_speed.json"


def time_step(model: torch.nn.Module, loss_fn, x: torch.Tensor, warmup: int, repeats: int) -> dict[str, float]:
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        loss = loss_fn(model(x))
        model.zero_grad(set_to_none=True)
        loss.backward()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    target = torch.rand(x.shape, generator=torch.Generator().manual_seed(1))
    params = load_params(ROOT / "params.yaml")
    results = {}
    for arch in BUILDERS:
        cfg = {"arch": arch, **params["restorer"]["model"][arch]}
        model = build_restorer(cfg, seed=0).train()
        timing = time_step(model, lambda y: (y - target).abs().mean(), x, args.warmup, args.repeats)
        results[arch] = {"parameters": count_parameters(model), "config": resolved_config(cfg),
                         "forward_backward": timing, "images_per_s": args.batch / timing["median_s"]}
        print(f"{arch:9s} {results[arch]['parameters']:>9,d} params  {timing['median_s'] * 1000:7.1f} ms/step")
    labels = torch.arange(args.batch) % len(CLASSES)
    classifier = DegradationClassifier(params["classifier"]["width"], len(CLASSES))
    timing = time_step(classifier, lambda y: torch.nn.functional.cross_entropy(y, labels), x, args.warmup,
                       args.repeats)
    results["classifier"] = {"parameters": count_parameters(classifier), "forward_backward": timing,
                             "config": {k: classifier.config[k] for k in ("width", "num_classes")}}
    print(f"classifier {results['classifier']['parameters']:>8,d} params  {timing['median_s'] * 1000:7.1f} ms/step")
    write_json({"setup": {"batch": args.batch, "size": args.size, "warmup": args.warmup,
                          "repeats": args.repeats, "torch": torch.__version__, **provenance()},
                "models": results}, args.out)


if __name__ == "__main__":
    main()
