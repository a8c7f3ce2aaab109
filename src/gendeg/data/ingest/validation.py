"""Per-file checks: can every stage read this file as an 8-bit RGB image, and is it unique?

Each file is read once: its bytes are hashed (for duplicates) and decoded from memory,
first the header (mode, bit depth, size: cheap) and then the full pixel data, which is
the only way to catch a truncated file.  Checks run in a thread pool because Pillow's
decoders release the GIL; results do not depend on the number of workers.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from gendeg.data.ingest.problems import Problem

# Every format Pillow decodes that a dataset plausibly ships; a file with another extension is
# reported (list_other_files), never passed over in silence.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
                              ".pnm", ".gif"})

# Why each non-RGB mode is a problem, in the user's words.
_MODE_NAMES = {
    "1": "1-bit black and white",
    "L": "grayscale",
    "LA": "grayscale with alpha",
    "P": "palette (indexed colour)",
    "PA": "palette with alpha",
    "RGBA": "RGBA (alpha channel)",
    "RGBa": "RGBA (alpha channel)",
    "CMYK": "CMYK",
    "YCbCr": "YCbCr",
    "LAB": "Lab colour",
    "HSV": "HSV",
    "I": "32-bit integer grayscale",
    "F": "32-bit float grayscale",
    "I;16": "16-bit grayscale",
    "I;16L": "16-bit grayscale",
    "I;16B": "16-bit grayscale",
    "I;16N": "16-bit grayscale",
}


@dataclass(frozen=True)
class FileCheck:
    """What one file turned out to be; `reasons` is empty when every stage can use it."""

    path: str
    sha256: str | None
    size: tuple[int, int] | None  # (width, height)
    reasons: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.reasons


def _visible_files(folder: Path, recursive: bool) -> list[Path]:
    """Files under `folder`, sorted by relative path; hidden ones (".*", e.g. macOS "._x.png" forks) left out."""
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    files = [path for path in candidates
             if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)]
    return sorted(files, key=lambda path: path.relative_to(folder).as_posix())


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files under `folder` (by extension, any case), sorted by relative path."""
    return [path for path in _visible_files(folder, recursive) if path.suffix.lower() in IMAGE_EXTENSIONS]


def list_other_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The visible files list_images leaves out: each becomes a problem, so none vanishes unexplained."""
    return [path for path in _visible_files(folder, recursive) if path.suffix.lower() not in IMAGE_EXTENSIONS]


def not_an_image(path: Path) -> str:
    extension = path.suffix or "none"
    return f"not an image file (extension {extension}; images are {', '.join(sorted(IMAGE_EXTENSIONS))})"


def _raw_mode(image: Image.Image) -> str:
    """The decoder's raw mode, which is where Pillow hides 16-bit-per-channel RGB ("RGB;16B")."""
    if not image.tile:
        return ""
    args = image.tile[0].args
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def check_file(path: str) -> FileCheck:
    """Hash, header-check and fully decode one file; never raises for a bad file."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return FileCheck(path, None, None, ("file not found",))
    except OSError as error:
        return FileCheck(path, None, None, (f"cannot read file: {error}",))
    digest = hashlib.sha256(data).hexdigest()
    reasons: list[str] = []
    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
            if image.mode != "RGB":
                kind = _MODE_NAMES.get(image.mode, f"mode {image.mode}")
                reasons.append(f"{kind} image (mode {image.mode}); the stages expect 8-bit RGB")
            elif ";16" in _raw_mode(image):
                reasons.append("16-bit-per-channel RGB image; the stages expect 8-bit RGB")
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                reasons.append(f"has {frames} frames (animated or multi-page); expected a single image")
            try:
                image.load()
            except (OSError, SyntaxError, ValueError) as error:
                reasons.append(f"truncated or corrupt image data: {error}")
    except Image.DecompressionBombError as error:
        return FileCheck(path, digest, None, (f"too large to decode safely: {error}",))
    except UnidentifiedImageError:  # its message holds a memory address: keep reports byte-stable
        return FileCheck(path, digest, None, ("not a readable image (unknown or damaged format)",))
    except (OSError, SyntaxError, ValueError) as error:
        return FileCheck(path, digest, None, (f"not a readable image: {error}",))
    return FileCheck(path, digest, size, tuple(reasons))


class ImageChecker:
    """Checks files once each (a clean image shared by many pairs is decoded once) and remembers results."""

    def __init__(self, workers: int | None = None):
        self.workers = workers if workers is not None else min(8, os.cpu_count() or 1)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        self.results: dict[str, FileCheck] = {}

    def check(self, paths: Iterable[str], desc: str = "validating images") -> None:
        """Check every path not seen yet, with a progress bar."""
        todo = list(dict.fromkeys(path for path in paths if path not in self.results))
        if not todo:
            return
        with tqdm(total=len(todo), desc=desc, unit="img", mininterval=1.0) as bar:
            if self.workers == 1:
                for path in todo:
                    self.results[path] = check_file(path)
                    bar.update()
            else:
                with ThreadPoolExecutor(self.workers) as pool:
                    for path, result in zip(todo, pool.map(check_file, todo), strict=False):
                        self.results[path] = result
                        bar.update()

    def __getitem__(self, path: str) -> FileCheck:
        return self.results[path]


def validate_pairs(rows: Sequence[dict], checker: ImageChecker, desc: str) -> tuple[list[dict], list[Problem]]:
    """Keep the pairs whose two files are good and the same size; one problem per bad file."""
    checker.check((path for row in rows for path in (row["image_path"], row["target_path"])), desc)
    problems: list[Problem] = []
    reported: set[str] = set()
    kept: list[dict] = []
    for row in rows:
        bad = False
        for path in dict.fromkeys((row["image_path"], row["target_path"])):
            result = checker[path]
            if not result.ok:
                bad = True
                if path not in reported:
                    reported.add(path)
                    problems.append(Problem(path, row["dataset"], "; ".join(result.reasons)))
        if bad:
            continue
        degraded, clean = checker[row["image_path"]].size, checker[row["target_path"]].size
        if degraded != clean:
            problems.append(Problem(
                row["image_path"], row["dataset"],
                f"size {degraded[0]}x{degraded[1]} differs from its clean target {row['target_path']} "
                f"({clean[0]}x{clean[1]})",
            ))
            continue
        kept.append(row)
    return kept, problems


def drop_duplicates(rows: Sequence[dict], checker: ImageChecker) -> tuple[list[dict], list[Problem]]:
    """Keep the first file with each content; later copies are problems and their pairs are dropped.

    One clean file may be the target of many pairs (same path, e.g. RESIDE's several hazy
    versions of one scene); anything else seen twice is a duplicate: the same degraded file
    listed twice, two files with identical bytes, or a degraded image identical to a clean
    one, or a clean-pool file that is also a paired target.  Callers order `rows` by priority (OOD before test before train before clean pools)
    so that a copy of a benchmark image is removed from training, not from the benchmark.
    """
    first_seen: dict[str, tuple[str, str]] = {}  # sha256 -> (path, role)
    duplicate_of: dict[str, str] = {}  # path -> why, once per file
    problems: list[Problem] = []
    kept: list[dict] = []
    for row in rows:
        pool = row["split"] == "clean"
        roles = [(row["target_path"], "pool")] if pool else [(row["image_path"], "degraded"), (row["target_path"], "clean")]
        bad = False
        for path, role in roles:
            if path in duplicate_of:
                bad = True
                continue
            digest = checker[path].sha256
            seen = first_seen.get(digest)
            if seen is None:
                first_seen[digest] = (path, role)
            elif seen != (path, "clean") or role != "clean":
                bad = True
                what = "is listed more than once" if seen[0] == path else f"has the same content as {seen[0]}"
                duplicate_of[path] = what
                problems.append(Problem(path, row["dataset"], f"duplicate: {what}"))
        if not bad:
            kept.append(row)
    return kept, problems
