"""Evaluate restorer checkpoints on the frozen second OOD benchmark (docs/ood-photos.md).

    make ood-photos      # once: installs the Debian photo packages, builds data/ood_photos
    python benchmarks/ood_photos.py \\
        --restorer existing@0=RUN0/models/restorer/nafnet/existing/seed-0 \\
        --restorer gends@0=RUN0/models/restorer/nafnet/gends/seed-0 \\
        --restorer existing@1=... --restorer gends@1=... \\
        --compare gends existing --image-size 128 --threads 1

Each `--restorer LABEL[@SEED]=DIR` is one checkpoint folder (`gendeg.restorers.save_restorer`
format); a label given several times is one restorer trained with several seeds.  Figures per
degradation and as the mean over the six degradations (equal weight), for the unrestored
input and every checkpoint: PSNR (`gendeg.measure.metrics.psnr`), restorer - input, mean-matched PSNR
(each image's per-channel mean set to the target's, for restorer and input alike: what
remains is structure, not colour) and the global colour shift (restored mean - target mean
per RGB channel).  Per label: mean +- std (population) over its seeds; `--compare A B`: A - B
per seed (paired by seed name) with mean +- std.  The result JSON records seeds, git commit,
thread count, machine and the set's build_info (whose code hash must match the frozen files).

The benchmark is frozen: never choose a default, a lever or a hyperparameter by it; report
its figures whatever they say, next to the first OOD benchmark's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gendeg.data.manifest import read_manifest
from gendeg.data.pairs import load_square
from gendeg.measure.metrics import colour_shift, mean_matched_psnr, psnr
from gendeg.restorers import load_restorer, restore
from gendeg.runtime.machine import describe_machine

HERE = Path(__file__).resolve().parent
FROZEN_CODE = HERE / "ood_photos_set"
NATIVE_SIZE = 128
DEFAULT_SET = Path("data/ood_photos")


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image PSNR, mean-matched PSNR and per-channel colour shift (B x 3), as the pipeline's evaluate defines them."""
    return {
        "psnr": psnr(pred, target).numpy().astype(np.float64),
        "mean_matched_psnr": mean_matched_psnr(pred, target).numpy().astype(np.float64),
        "colour_shift": colour_shift(pred, target).double().numpy(),
    }


def load_set(set_dir: Path, image_size: int) -> dict:
    """Degraded and clean tensors of every pair, resized (Lanczos) when image_size is not native."""
    manifest_path = set_dir / "manifest.csv"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: build the set first with `make ood-photos` "
                                f"(or python benchmarks/ood_photos_set/build.py --out {set_dir})")
    frame = read_manifest(manifest_path)
    frame = frame[frame["split"] == "ood"].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"{manifest_path}: no rows with split 'ood'")

    def resolve(path: str) -> str:
        candidate = Path(path)
        if not candidate.is_absolute() and not candidate.exists():
            candidate = set_dir / candidate
        if not candidate.is_file():
            raise FileNotFoundError(f"{manifest_path}: image {path!r} not found (was the set moved? rebuild it)")
        return str(candidate)

    def stack(paths) -> torch.Tensor:
        arrays = [load_square(resolve(p), image_size) for p in paths]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0

    info_path = set_dir / "build_info.json"
    build_info = json.loads(info_path.read_text()) if info_path.is_file() else None
    return {"degraded": stack(frame["image_path"]), "clean": stack(frame["target_path"]),
            "degradation": frame["degradation"].tolist(), "scene": frame["scene"].tolist(),
            "build_info": build_info}


def summarise(per_image: dict[str, np.ndarray], degradations: list[str]) -> dict:
    """Per-degradation means and the mean over degradations (each degradation weighs the same)."""
    names = sorted(set(degradations), key=degradations.index)
    labels = np.asarray(degradations)
    out = {"per_degradation": {}}
    for name in names:
        rows = labels == name
        out["per_degradation"][name] = {
            "count": int(rows.sum()),
            "psnr": float(per_image["psnr"][rows].mean()),
            "mean_matched_psnr": float(per_image["mean_matched_psnr"][rows].mean()),
            "colour_shift": [float(v) for v in per_image["colour_shift"][rows].mean(axis=0)],
        }
    per = out["per_degradation"].values()
    out["mean"] = {
        "psnr": float(np.mean([p["psnr"] for p in per])),
        "mean_matched_psnr": float(np.mean([p["mean_matched_psnr"] for p in per])),
        "colour_shift": [float(v) for v in np.mean([p["colour_shift"] for p in per], axis=0)],
    }
    return out


def add_gain(restored: dict, baseline: dict) -> dict:
    """Restorer - input for PSNR and mean-matched PSNR, per degradation and on the mean."""
    for key in ("psnr", "mean_matched_psnr"):
        for name, figures in restored["per_degradation"].items():
            figures[f"{key}_gain"] = figures[key] - baseline["per_degradation"][name][key]
        restored["mean"][f"{key}_gain"] = restored["mean"][key] - baseline["mean"][key]
    return restored


def evaluate_checkpoint(directory: str | Path, data: dict, batch_size: int = 16) -> dict:
    """Restore every degraded image with the checkpoint in `directory` and summarise against the input."""
    model = load_restorer(directory)
    restored = restore(model, data["degraded"], batch_size=batch_size)
    return summarise(image_metrics(restored, data["clean"]), data["degradation"])


SCALARS = ("psnr", "psnr_gain", "mean_matched_psnr", "mean_matched_psnr_gain")


def _mean_std(values) -> dict:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std()), "per_seed": [float(v) for v in array]}


def over_seeds(runs: dict[str, dict]) -> dict:
    """mean +- std over seeds of every scalar, per degradation and on the mean; colour shift per channel."""
    seeds = list(runs)

    def block(get) -> dict:
        figures = {key: _mean_std([get(runs[s])[key] for s in seeds]) for key in SCALARS}
        shifts = np.array([get(runs[s])["colour_shift"] for s in seeds])
        figures["colour_shift"] = {"mean": [float(v) for v in shifts.mean(axis=0)],
                                   "std": [float(v) for v in shifts.std(axis=0)]}
        return figures

    first = runs[seeds[0]]
    return {"seeds": seeds, "mean": block(lambda r: r["mean"]),
            "per_degradation": {name: block(lambda r, n=name: r["per_degradation"][n])
                                for name in first["per_degradation"]}}


def compare(runs_a: dict[str, dict], runs_b: dict[str, dict], label_a: str, label_b: str) -> dict:
    """A - B per shared seed (paired), mean +- std, per degradation and on the mean."""
    shared = [s for s in runs_a if s in runs_b]
    if not shared:
        raise ValueError(f"--compare {label_a} {label_b}: no seed in common ({list(runs_a)} vs {list(runs_b)}); "
                         "name seeds as LABEL@SEED=DIR")

    def block(get) -> dict:
        return {key: _mean_std([get(runs_a[s])[key] - get(runs_b[s])[key] for s in shared])
                for key in ("psnr", "mean_matched_psnr")}

    names = runs_a[shared[0]]["per_degradation"]
    return {"a": label_a, "b": label_b, "seeds": shared, "difference": f"{label_a} - {label_b}",
            "mean": block(lambda r: r["mean"]),
            "per_degradation": {n: block(lambda r, n=n: r["per_degradation"][n]) for n in names}}


def parse_restorers(specs: list[str]) -> dict[str, dict[str, str]]:
    """['gends@1=/dir', 'gends=/dir2'] -> {'gends': {'1': '/dir', '1#2': ...}}; unnamed seeds are numbered in order."""
    labels: dict[str, dict[str, str]] = {}
    for spec in specs:
        if "=" not in spec:
            raise ValueError(f"--restorer {spec!r}: expected LABEL=DIR or LABEL@SEED=DIR")
        key, directory = spec.split("=", 1)
        label, _, seed = key.partition("@")
        if not label:
            raise ValueError(f"--restorer {spec!r}: empty label")
        seeds = labels.setdefault(label, {})
        seed = seed or str(len(seeds))
        if seed in seeds:
            raise ValueError(f"--restorer {spec!r}: label {label!r} already has seed {seed!r}")
        seeds[seed] = directory
    return labels


def frozen_code_status(build_info: dict | None) -> dict:
    """Do the generators, photo list and build script still hash as when the set was built?"""
    current = {name: hashlib.sha256((FROZEN_CODE / name).read_bytes()).hexdigest()
               for name in ("generators.py", "photos.py", "build.py")}
    built = (build_info or {}).get("code_sha256")
    return {"current": current, "built_with": built, "matches": built == current if built else None}


def git_commit() -> str:
    def run(*args):
        result = subprocess.run(["git", *args], capture_output=True, text=True, cwd=HERE)
        return result.stdout.strip() if result.returncode == 0 else ""
    commit = run("rev-parse", "HEAD") or "unknown"
    return commit + (" (dirty)" if run("status", "--porcelain", "--untracked-files=no") else "")


def evaluate(restorers: dict[str, dict[str, str]], set_dir: Path = DEFAULT_SET, image_size: int = NATIVE_SIZE,
             comparisons: list[tuple[str, str]] = (), threads: int = 1, batch_size: int = 16) -> dict:
    """The whole benchmark result as a dict (what --out writes)."""
    torch.set_num_threads(threads)
    start = time.time()
    data = load_set(Path(set_dir), image_size)
    baseline = summarise(image_metrics(data["degraded"], data["clean"]), data["degradation"])
    runs = {label: {seed: add_gain(evaluate_checkpoint(d, data, batch_size), baseline) for seed, d in seeds.items()}
            for label, seeds in restorers.items()}
    for a, b in comparisons:
        for label in (a, b):
            if label not in runs:
                raise ValueError(f"--compare {a} {b}: no restorer labelled {label!r}; labels: {sorted(runs)}")
    build_info = data["build_info"] or {}
    return {
        "benchmark": "ood_photos (second OOD benchmark, frozen; docs/ood-photos.md)",
        "set": str(Path(set_dir).resolve()), "image_size": image_size, "native_size": NATIVE_SIZE,
        "pairs": len(data["degradation"]), "scenes": len(set(data["scene"])),
        "input": baseline,
        "restorers": {label: {"checkpoints": restorers[label], "per_seed": per_seed, "over_seeds": over_seeds(per_seed)}
                      for label, per_seed in runs.items()},
        "comparisons": [compare(runs[a], runs[b], a, b) for a, b in comparisons],
        "git_commit": git_commit(), "threads": threads, "machine": describe_machine(),
        "set_build": {k: build_info.get(k) for k in ("git_commit", "base_seed", "severity", "packages", "mu")},
        "frozen_code": frozen_code_status(data["build_info"]),
        "seconds": round(time.time() - start, 1),
    }


def format_table(result: dict) -> str:
    """A plain-text table: input and every label (mean +- std over seeds) per degradation."""
    names = list(result["input"]["per_degradation"]) + ["mean"]

    def pick(block, name):
        return block["mean"] if name == "mean" else block["per_degradation"][name]

    lines = [f"second OOD benchmark, {result['pairs']} pairs, {result['image_size']} px, "
             f"threads {result['threads']}: PSNR / mean-matched PSNR (dB), colour shift (RGB)"]
    for name in names:
        base = pick(result["input"], name)
        lines.append(f"{name:12s} input      {base['psnr']:6.2f} / {base['mean_matched_psnr']:6.2f}  "
                     f"shift {np.round(base['colour_shift'], 3).tolist()}")
        for label, entry in result["restorers"].items():
            fig = pick(entry["over_seeds"], name)
            lines.append(f"{'':12s} {label:10s} {fig['psnr']['mean']:6.2f} +- {fig['psnr']['std']:.2f} "
                         f"(gain {fig['psnr_gain']['mean']:+.2f}) / {fig['mean_matched_psnr']['mean']:6.2f} "
                         f"(gain {fig['mean_matched_psnr_gain']['mean']:+.2f})  "
                         f"shift {np.round(fig['colour_shift']['mean'], 3).tolist()}")
    for comparison in result["comparisons"]:
        m = comparison["mean"]
        lines.append(f"{comparison['difference']} over seeds {comparison['seeds']}: PSNR {m['psnr']['mean']:+.2f} +- "
                     f"{m['psnr']['std']:.2f}, mean-matched {m['mean_matched_psnr']['mean']:+.2f} +- "
                     f"{m['mean_matched_psnr']['std']:.2f} dB")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--restorer", action="append", required=True, metavar="LABEL[@SEED]=DIR",
                        help="a restorer checkpoint folder; repeat a label for several seeds")
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="built set folder (default data/ood_photos)")
    parser.add_argument("--image-size", type=int, default=NATIVE_SIZE,
                        help="evaluate at this size (128 = native; 64 = the default preset's training size)")
    parser.add_argument("--compare", nargs=2, action="append", default=[], metavar=("A", "B"),
                        help="report A - B per shared seed; repeatable")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ood_photos.json")
    args = parser.parse_args(argv)
    if args.image_size < 8:
        parser.error(f"--image-size must be at least 8, got {args.image_size}")
    try:
        result = evaluate(parse_restorers(args.restorer), args.set, args.image_size,
                          [tuple(c) for c in args.compare], args.threads, args.batch_size)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    if result["frozen_code"]["matches"] is False:
        print("WARNING: the set was built by generator/photo/build code that differs from the frozen files; "
              "rebuild it with `make ood-photos`", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(format_table(result))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
