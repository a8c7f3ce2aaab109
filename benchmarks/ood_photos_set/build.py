"""Build the second OOD benchmark: 50 photo crops x 6 degradations = 300 pairs at 128 px.

FROZEN with generators.py and photos.py: crops, seeds and severity ranges below were
committed before any restorer was evaluated on the set; never change them.

    python benchmarks/ood_photos_set/build.py --out data/ood_photos     (or: make ood-photos)

Needs the Debian packages named in photos.PACKAGES (the error says how to install them).
Writes <out>/clean/<crop>.png, <out>/degraded/<degradation>/<crop>.png, <out>/manifest.csv
(the project's manifest columns, absolute paths, split "ood") and <out>/build_info.json
(sources, versions, seeds, mu statistics, sha256 of every written image).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL
import scipy
from PIL import Image

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ood_photos_set.generators import GENERATORS  # noqa: E402
from ood_photos_set.photos import PACKAGES, PHOTOS, PhotoSourceError, check_sources  # noqa: E402

SIZE = 128
BASE_SEED = 13_003  # issue 13, item 3
# Per photo: "whole" = shorter side resized to 128 px, centre crop (the whole scene);
# "detail" = shorter side resized to 256 px, a seeded random 128 px crop (a closer view).
CROPS = (("whole", SIZE), ("detail", 2 * SIZE))
# Severity of each pair drawn uniformly from these ranges (chosen from the look of the
# degraded photos and plausible mu, before any restorer saw the set).
SEVERITY = {
    "haze": (0.3, 1.0),
    "rain": (0.5, 1.0),
    "snow": (0.4, 1.0),
    "motion_blur": (0.35, 0.9),
    "low_light": (0.3, 1.0),
    "raindrop": (0.5, 1.0),
}
DEGRADATIONS = tuple(SEVERITY)


def crop_seed(photo_index: int) -> int:
    return BASE_SEED * 1000 + photo_index


def pair_seed(degradation_index: int, crop_index: int) -> int:
    """One integer per (degradation, crop): recorded in the manifest's sample_seed column."""
    return BASE_SEED * 100_000 + (degradation_index + 1) * 1000 + crop_index


def load_crops() -> list[tuple[str, str, np.ndarray]]:
    """(crop name, photo name, HxWx3 float32) for every photo and crop kind, in a fixed order."""
    crops = []
    for index, photo in enumerate(PHOTOS):
        with Image.open(photo.path) as image:
            image = image.convert("RGB")
            width, height = image.size
            for kind, short in CROPS:
                scale = short / min(width, height)
                resized = image.resize((max(short, round(width * scale)), max(short, round(height * scale))),
                                       Image.LANCZOS)
                w, h = resized.size
                if kind == "whole":
                    left, top = (w - SIZE) // 2, (h - SIZE) // 2
                else:
                    rng = np.random.default_rng(crop_seed(index))
                    left, top = int(rng.integers(0, w - SIZE + 1)), int(rng.integers(0, h - SIZE + 1))
                array = np.asarray(resized.crop((left, top, left + SIZE, top + SIZE)), dtype=np.float32) / 255.0
                crops.append((f"{photo.name}_{kind}", photo.name, array))
    return crops


def degrade(name: str, clean: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """The degraded image and its severity: severity then the generator's draws, from one seeded rng."""
    rng = np.random.default_rng(seed)
    severity = float(rng.uniform(*SEVERITY[name]))
    return GENERATORS[name](clean, rng, severity), severity


def _to_uint8(array: np.ndarray) -> np.ndarray:
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _save(array: np.ndarray, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_to_uint8(array), mode="RGB").save(path, format="PNG")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _package_versions() -> dict[str, str]:
    versions = {}
    for package in PACKAGES:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
        versions[package] = result.stdout.strip() if result.returncode == 0 else "unknown (dpkg-query failed)"
    return versions


def _git_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def build(out: Path) -> dict:
    from gendeg.data.manifest import make_frame, write_manifest

    check_sources()
    start = time.time()
    out = out.resolve()
    crops = load_crops()
    rows, checksums = [], {}
    mu = {name: [] for name in DEGRADATIONS}
    for crop_index, (crop, photo, clean) in enumerate(crops):
        clean_path = out / "clean" / f"{crop}.png"
        checksums[str(clean_path.relative_to(out))] = _save(clean, clean_path)
        clean_q = _to_uint8(clean).astype(np.float32) / 255.0
        for degradation_index, name in enumerate(DEGRADATIONS):
            seed = pair_seed(degradation_index, crop_index)
            degraded, severity = degrade(name, clean, seed)
            path = out / "degraded" / name / f"{crop}.png"
            checksums[str(path.relative_to(out))] = _save(degraded, path)
            difference = _to_uint8(degraded).astype(np.float32) / 255.0 - clean_q
            mu[name].append(float(np.abs(difference).mean()))
            rows.append({
                "image_path": str(path), "target_path": str(clean_path), "dataset": "ood_photos",
                "degradation": name, "category": "Real", "degradation_sub_type": GENERATORS[name].__name__,
                "split": "ood", "mu": mu[name][-1], "sigma": float(difference.std()), "scene": photo,
                "sample_seed": seed, "requested_mu": float("nan"), "caption": f"severity {severity:.4f}",
            })
    write_manifest(make_frame(rows), out / "manifest.csv")
    info = {
        "benchmark": "second OOD benchmark (frozen): real photos x third generator family",
        "size": SIZE, "base_seed": BASE_SEED, "crops": [kind for kind, _ in CROPS], "severity": SEVERITY,
        "pairs": len(rows), "crops_total": len(crops), "photos": len(PHOTOS),
        "mu": {name: {"mean": float(np.mean(v)), "std": float(np.std(v)), "min": float(np.min(v)),
                      "max": float(np.max(v))} for name, v in mu.items()},
        "packages": _package_versions(), "frozen_package_versions": PACKAGES,
        "sources": [{"name": p.name, "package": p.package, "path": p.path, "sha256": p.sha256, "author": p.author,
                     "licence": p.licence} for p in PHOTOS],
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                     "pillow": PIL.__version__},
        "git_commit": _git_commit(), "seconds": round(time.time() - start, 1),
        "code_sha256": {name: hashlib.sha256((Path(__file__).parent / name).read_bytes()).hexdigest()
                        for name in ("generators.py", "photos.py", "build.py")},
        "sha256": checksums,
    }
    (out / "build_info.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/ood_photos"), help="output folder (default data/ood_photos)")
    args = parser.parse_args(argv)
    try:
        info = build(args.out)
    except PhotoSourceError as error:
        sys.exit(f"error: {error}")
    print(f"wrote {info['pairs']} pairs from {info['crops_total']} crops of {info['photos']} photos to {args.out} "
          f"in {info['seconds']} s")
    for name, stats in info["mu"].items():
        print(f"  {name:12s} mu {stats['mean']:.3f} +- {stats['std']:.3f} [{stats['min']:.3f}, {stats['max']:.3f}]")


if __name__ == "__main__":
    main()
