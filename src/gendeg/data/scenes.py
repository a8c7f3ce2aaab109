"""Clean scenes for the built-in default: photos that installed packages ship, plus procedural ones.

A *scene* is one source image rendered at a modest resolution (a small multiple of the crop
size), so that every crop of a scene looks like every other crop of it: "a dataset with few
scenes" then really has low diversity, which is the situation GenDeg was built for.

Sources, all read straight from files inside installed packages (no fetcher, no download):

- colour photos from scikit-image, scikit-learn and matplotlib;
- grey photos and textures from scikit-image, given a per-scene duotone tint;
- procedural "dead leaves" scenes (occluding textured disks); each seed is a new scene.

Every scene carries a depth map in [0, 1] (1 = far) for the haze generators: the stereo
disparity scikit-image ships for the motorcycle photo, the occlusion order for dead leaves,
and a tilted ground-plane ramp (top = far) for everything else.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
import skimage.data
import sklearn.datasets
from PIL import Image

_SKIMAGE = Path(skimage.data.__file__).parent
_SKLEARN = Path(sklearn.datasets.__file__).parent / "images"
_MATPLOTLIB = Path(matplotlib.get_data_path()) / "sample_data"

# name -> file.  motorcycle_right is left out on purpose: it is the same scene as
# motorcycle_left, and a scene must never sit on both sides of the OOD split.
PHOTO_FILES: dict[str, Path] = {
    "astronaut": _SKIMAGE / "astronaut.png",
    "chelsea": _SKIMAGE / "chelsea.png",
    "coffee": _SKIMAGE / "coffee.png",
    "rocket": _SKIMAGE / "rocket.jpg",
    "ihc": _SKIMAGE / "ihc.png",
    "motorcycle": _SKIMAGE / "motorcycle_left.png",
    "retina": _SKIMAGE / "retina.jpg",
    "colour_wheel": _SKIMAGE / "color.png",
    "china": _SKLEARN / "china.jpg",
    "flower": _SKLEARN / "flower.jpg",
    "grace_hopper": _MATPLOTLIB / "grace_hopper.jpg",
}
GREY_FILES: dict[str, Path] = {
    "camera": _SKIMAGE / "camera.png",
    "coins": _SKIMAGE / "coins.png",
    "brick": _SKIMAGE / "brick.png",
    "grass": _SKIMAGE / "grass.png",
    "gravel": _SKIMAGE / "gravel.png",
    "moon": _SKIMAGE / "moon.png",
    "cell": _SKIMAGE / "cell.png",
}
MOTORCYCLE_DISPARITY = _SKIMAGE / "motorcycle_disp.npz"
# Short captions, the "<caption of the clean image>" part of GenDeg's prompt.
CAPTIONS: dict[str, str] = {
    "astronaut": "a portrait of an astronaut in a white spacesuit in front of a flag",
    "chelsea": "a close-up of a tabby cat",
    "coffee": "a cup of coffee on a saucer on a table",
    "rocket": "a rocket on a launch pad under the sky",
    "ihc": "a microscope image of stained tissue",
    "motorcycle": "a motorcycle parked in a room",
    "retina": "a photo of the retina of an eye",
    "colour_wheel": "a chart of coloured patches",
    "china": "a chinese temple among trees",
    "flower": "a close-up of a flower",
    "grace_hopper": "a portrait of a woman in a navy uniform",
    "camera": "a man with a camera on a tripod in a field",
    "coins": "coins lying on a surface",
    "brick": "a brick wall",
    "grass": "a patch of grass",
    "gravel": "a patch of gravel",
    "moon": "the surface of the moon",
    "cell": "a microscope image of a cell",
}
PROCEDURAL_CAPTION = "an abstract pattern of overlapping textured shapes"
PROCEDURAL_PREFIX = "deadleaves-"


@dataclass(frozen=True)
class Scene:
    """One clean source image at render resolution, with its depth map (1 = far)."""

    name: str
    kind: str  # "photo", "grey" or "procedural"
    image: np.ndarray  # float32 HxWx3 in [0, 1]
    depth: np.ndarray  # float32 HxW in [0, 1]


def name_seed(name: str) -> int:
    """A stable per-name integer (Python's hash() is salted per process)."""
    return zlib.crc32(name.encode("utf-8"))


def catalogue(n_procedural: int) -> list[str]:
    """Every scene name available: bundled photos, tinted grey photos, `n_procedural` dead-leaves scenes."""
    if n_procedural < 0:
        raise ValueError(f"n_procedural must be >= 0, got {n_procedural}")
    return list(PHOTO_FILES) + list(GREY_FILES) + [f"{PROCEDURAL_PREFIX}{i:02d}" for i in range(n_procedural)]


def caption(name: str) -> str:
    """The clean-image caption used in GenDeg prompts for scene `name`."""
    return PROCEDURAL_CAPTION if scene_kind(name) == "procedural" else CAPTIONS[name]


def scene_kind(name: str) -> str:
    if name in PHOTO_FILES:
        return "photo"
    if name in GREY_FILES:
        return "grey"
    if name.startswith(PROCEDURAL_PREFIX) and name[len(PROCEDURAL_PREFIX):].isdigit():
        return "procedural"
    raise KeyError(f"unknown scene {name!r}; known: photos {sorted(PHOTO_FILES)}, grey {sorted(GREY_FILES)}, "
                   f"or '{PROCEDURAL_PREFIX}NN'")


@lru_cache(maxsize=128)
def load_scene(name: str, short_side: int) -> Scene:
    """Render scene `name` with its shorter side `short_side` pixels (cached; arrays are read-only)."""
    if short_side < 8:
        raise ValueError(f"short_side must be >= 8, got {short_side}")
    kind = scene_kind(name)
    if kind == "procedural":
        image, depth = dead_leaves(short_side, seed=int(name[len(PROCEDURAL_PREFIX):]))
    else:
        path = PHOTO_FILES.get(name) or GREY_FILES[name]
        if not path.exists():
            raise FileNotFoundError(f"scene {name!r}: bundled file {path} is missing from the installed package")
        with Image.open(path) as source:
            source.load()
            size = _render_size(source.size, short_side)
            if kind == "photo":
                image = _resize_rgb(source.convert("RGB"), size)
            else:
                image = _tint(_resize_rgb(source.convert("L").convert("RGB"), size)[..., 0], name)
        depth = _motorcycle_depth(size) if name == "motorcycle" else _ramp_depth(size, name)
    image.setflags(write=False)
    depth.setflags(write=False)
    return Scene(name=name, kind=kind, image=image, depth=depth)


def _render_size(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    width, height = size
    scale = short_side / min(width, height)
    return max(short_side, round(width * scale)), max(short_side, round(height * scale))


def _resize_rgb(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS), dtype=np.float32) / 255.0


def _tint(grey: np.ndarray, name: str) -> np.ndarray:
    """Duotone: map black and white to two seeded colours, so grey photos become colour scenes."""
    rng = np.random.default_rng(name_seed(name))
    dark = rng.uniform(0.0, 0.25, size=3)
    light = rng.uniform(0.7, 1.0, size=3)
    return np.clip(dark + grey[..., None] * (light - dark), 0.0, 1.0).astype(np.float32)


def _ramp_depth(size: tuple[int, int], name: str) -> np.ndarray:
    """Ground-plane prior: the top of the frame is far, with a seeded tilt and offset per scene."""
    width, height = size
    rng = np.random.default_rng(name_seed(name) + 1)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    tilt = rng.uniform(-0.3, 0.3)
    ramp = (1.0 - y / max(height - 1, 1)) + tilt * (x / max(width - 1, 1) - 0.5)
    return _normalise(ramp)


def _motorcycle_depth(size: tuple[int, int]) -> np.ndarray:
    """Depth from the stereo disparity scikit-image ships (depth ~ 1 / disparity)."""
    with np.load(MOTORCYCLE_DISPARITY) as archive:
        disparity = archive[archive.files[0]].astype(np.float32)
    finite = np.isfinite(disparity) & (disparity > 0)
    disparity = np.where(finite, disparity, np.median(disparity[finite]))
    resized = np.asarray(Image.fromarray(disparity, mode="F").resize(size, Image.Resampling.BILINEAR))
    return _normalise(1.0 / resized)


def _normalise(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return ((values - low) / max(high - low, 1e-6)).astype(np.float32)


def dead_leaves(size: int, seed: int, n_leaves: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A dead-leaves scene: textured disks with power-law radii dropped one over another.

    The model has the scale-invariant statistics of natural images; later leaves occlude
    earlier ones, so the drop order is a depth map (last dropped = nearest).
    """
    rng = np.random.default_rng([seed, 0x1EAF])
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    image = np.empty((size, size, 3), np.float32)
    image[:] = rng.uniform(0.2, 0.8, size=3)
    order = np.zeros((size, size), np.float32)
    # Radii ~ r^-3 between r_min and r_max (inverse-CDF draw); all parameters drawn up front.
    r_min, r_max = 0.02 * size, 0.35 * size
    u = rng.random(n_leaves)
    radii = (r_min ** -2 - u * (r_min ** -2 - r_max ** -2)) ** -0.5
    centres = rng.uniform(-0.1 * size, 1.1 * size, size=(n_leaves, 2))
    colours = rng.uniform(0.05, 0.95, size=(n_leaves, 3))
    textures = rng.integers(0, 3, size=n_leaves)  # 0 flat, 1 stripes, 2 shading
    angles = rng.uniform(0, np.pi, size=n_leaves)
    periods = rng.uniform(0.03, 0.12, size=n_leaves) * size
    contrasts = rng.uniform(0.1, 0.35, size=n_leaves)
    for i in range(n_leaves):
        dy, dx = y - centres[i, 0], x - centres[i, 1]
        inside = dy * dy + dx * dx <= radii[i] ** 2
        if not inside.any():
            continue
        along = dx[inside] * np.cos(angles[i]) + dy[inside] * np.sin(angles[i])
        if textures[i] == 1:
            modulation = contrasts[i] * np.sin(2 * np.pi * along / periods[i])
        elif textures[i] == 2:
            modulation = contrasts[i] * along / radii[i]
        else:
            modulation = np.zeros_like(along)
        image[inside] = np.clip(colours[i] * (1.0 + modulation[:, None]), 0.0, 1.0)
        order[inside] = i + 1
    depth = 1.0 - order / n_leaves
    return image, depth.astype(np.float32)


def random_crop(scene: Scene, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A `size` x `size` crop of a scene's image and depth at a position drawn from `rng`."""
    height, width = scene.depth.shape
    if size > min(height, width):
        raise ValueError(f"crop {size} does not fit scene {scene.name!r} rendered at {width}x{height}")
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    window = (slice(top, top + size), slice(left, left + size))
    return scene.image[window].copy(), scene.depth[window].copy()


@dataclass(frozen=True)
class SceneSplit:
    """Which scenes each named group (stand-in dataset) uses, and the held-out OOD scenes."""

    groups: dict[str, list[str]]
    ood: list[str]

    def check_disjoint(self) -> None:
        """Raise if any scene is shared by two groups or by a group and the OOD set."""
        owner: dict[str, str] = {}
        for group, names in [*self.groups.items(), ("<ood>", self.ood)]:
            for name in names:
                if name in owner:
                    raise ValueError(f"scene {name!r} is used by both {owner[name]!r} and {group!r}")
                owner[name] = group


def split_scenes(names: list[str], group_sizes: dict[str, int], n_ood: int, rng: np.random.Generator) -> SceneSplit:
    """Give each group its own scenes and hold `n_ood` others out for the OOD sets only.

    Scenes are shuffled within kind (photo, grey, procedural) and then interleaved, so the
    OOD pool and every group get a mix of kinds rather than, say, only textures.
    """
    needed = n_ood + sum(group_sizes.values())
    if needed > len(names):
        raise ValueError(f"scene split needs {needed} scenes ({n_ood} OOD + {sum(group_sizes.values())} for "
                         f"the stand-ins) but only {len(names)} exist; raise n_procedural_scenes")
    by_kind: dict[str, list[str]] = {}
    for name in names:
        by_kind.setdefault(scene_kind(name), []).append(name)
    shuffled = [list(rng.permutation(group)) for _, group in sorted(by_kind.items())]
    interleaved = [str(group[i]) for i in range(max(map(len, shuffled))) for group in shuffled if i < len(group)]
    ood, rest = interleaved[:n_ood], interleaved[n_ood:]
    groups: dict[str, list[str]] = {}
    for group, count in group_sizes.items():
        groups[group], rest = rest[:count], rest[count:]
    split = SceneSplit(groups=groups, ood=ood)
    split.check_disjoint()
    return split
