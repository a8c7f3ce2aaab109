"""Sample grid of the second OOD benchmark for docs/ood-photos.md: one row per crop, clean then
each degradation, read from the built set (so the picture shows exactly what is evaluated).

    python benchmarks/ood_photos_samples.py --set data/ood_photos --out docs/ood-photos-samples.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from gendeg.data.manifest import read_manifest

DEFAULT_CROPS = ("aitzgorri_whole", "eveningglow_whole", "friends_whole", "colorfulcups_detail", "path_whole")


def sample_grid(set_dir: Path, crops=DEFAULT_CROPS) -> Image.Image:
    frame = read_manifest(set_dir / "manifest.csv")
    degradations = list(dict.fromkeys(frame["degradation"]))
    stems = frame["target_path"].map(lambda p: Path(p).stem)
    missing = sorted(set(crops) - set(stems))
    if missing:
        raise ValueError(f"{set_dir / 'manifest.csv'}: no crop(s) {missing}; crops look like {sorted(set(stems))[:4]}")
    header, size = 16, 128
    grid = Image.new("RGB", ((1 + len(degradations)) * size, header + len(crops) * size), "white")
    draw = ImageDraw.Draw(grid)
    for column, title in enumerate(["clean", *degradations]):
        draw.text((column * size + 4, 2), title, fill="black")
    for row, crop in enumerate(crops):
        rows = frame[stems == crop]
        images = [rows["target_path"].iloc[0]] + [rows[rows["degradation"] == d]["image_path"].iloc[0] for d in degradations]
        for column, path in enumerate(images):
            with Image.open(path) as image:
                tile = np.asarray(image.convert("RGB"))
            grid.paste(Image.fromarray(tile), (column * size, header + row * size))
    return grid


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=Path("data/ood_photos"))
    parser.add_argument("--out", type=Path, default=Path("docs/ood-photos-samples.png"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sample_grid(args.set).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
