"""Throughput of every degradation generator at 256x256 on one CPU thread.

Two figures per generator: one call at a fixed severity ("pairs_per_s"), and one pair with
its intensity targeted by root finding as the builder does it ("targeted_pairs_per_s",
several generator calls per pair).  Also times a DEFAULT-preset build of the built-in data.

    python benchmarks/generator_speed.py [--repeats 10] [--skip-build]

Writes benchmarks/results/generator_speed.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gendeg.data.builtin_data import build_builtin
from gendeg.data.scenes import load_scene, random_crop
from gendeg.data.standins import degrade_to_mu
from gendeg.degradations import GENERATORS, generate
from gendeg.pipeline.config import load_params
from gendeg.runtime.atomic import write_json
from gendeg.runtime.machine import provenance

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "generator_speed.json")
    args = parser.parse_args()

    clean, depth = random_crop(load_scene("astronaut", args.size * 2), args.size, np.random.default_rng(0))
    results: dict[str, dict] = {}
    for name in sorted(GENERATORS):
        generate(name, clean, 0, 0.5, depth)  # warm-up (imports, FFT plans)
        start = time.perf_counter()
        for seed in range(args.repeats):
            generate(name, clean, seed, 0.5, depth)
        single = (time.perf_counter() - start) / args.repeats
        start = time.perf_counter()
        for seed in range(args.repeats):
            degrade_to_mu(lambda s, name=name, seed=seed: generate(name, clean, seed, s, depth), clean, 0.08,
                          tolerance=1e-3)
        targeted = (time.perf_counter() - start) / args.repeats
        results[name] = {"pairs_per_s": round(1.0 / single, 2), "targeted_pairs_per_s": round(1.0 / targeted, 2)}
        print(name, results[name], flush=True)
    report = {"size": args.size, "repeats": args.repeats, **provenance(), "generators": results}
    if not args.skip_build:
        builtin = load_params(ROOT / "params.yaml")["data"]["builtin"]  # as prepare builds it
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            frames = build_builtin(builtin, Path(tmp) / "builtin", seed=0)
            seconds = time.perf_counter() - start
        report["default_build"] = {"seconds": round(seconds, 1), "pairs": {k: len(v) for k, v in frames.items()}}
        print("default build", report["default_build"], flush=True)
    write_json(report, args.out)


if __name__ == "__main__":
    main()
