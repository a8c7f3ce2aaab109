"""Real-data ingestion: pairing, manifests, GenDS naming, and every bad-input case in both modes."""

from __future__ import annotations

import csv
import hashlib
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gendeg.data.ingest import (
    IngestError,
    Problem,
    canonical_degradation,
    ingest_all,
    ingest_clean_folder,
    ingest_ood,
    ingest_paired,
    write_problem_report,
)
from gendeg.data.manifest import EXTRA_COLUMNS, GENDS_COLUMNS

MODES = ["fail", "skip"]


# --- tiny files -------------------------------------------------------------------------------

_seed = iter(range(10_000))


def make_image(path: Path, size: tuple[int, int] = (8, 6), mode: str = "RGB", fmt: str | None = None) -> str:
    """A small image with content unique to this call (so no accidental duplicates)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(next(_seed))
    width, height = size
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    image = Image.fromarray(array[..., 0] if channels == 1 else array, mode=mode)
    image.save(path, format=fmt)
    return path.as_posix()


def make_gray16(path: Path, size: tuple[int, int] = (8, 6)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], 40000, dtype=np.uint16)).save(path)
    return path.as_posix()


def make_rgb16_png(path: Path, size: tuple[int, int] = (8, 6)) -> str:
    """A 48-bit PNG, written by hand: Pillow opens it as mode "RGB", hiding the 16 bits."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    width, height = size
    rows = b"".join(b"\x00" + np.arange(width * 3, dtype=">u2").tobytes() for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path.as_posix()


def make_truncated(path: Path, size: tuple[int, int] = (64, 48)) -> str:
    make_image(path, size=size, fmt="JPEG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path.as_posix()


def digests(folder: Path) -> dict[str, str]:
    return {p.as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["image_path"], frame["target_path"], strict=False))


# --- good inputs -----------------------------------------------------------------------------


def test_paired_folders_pair_by_key_regex_and_share_clean_targets(tmp_path):
    hazy, clear = tmp_path / "hazy", tmp_path / "clear"
    d1 = make_image(hazy / "0001_0.8_0.2.png")
    d2 = make_image(hazy / "0001_0.9_0.1.png")
    d3 = make_image(hazy / "0002_0.8_0.2.JPG", fmt="JPEG")
    (hazy / "notes.txt").write_text("not an image")  # listed as a problem (skip: reported, not fatal)
    make_image(hazy / "._0001_0.8_0.2.png")  # macOS fork: hidden, ignored
    c1 = make_image(clear / "0001.png")
    c2 = make_image(clear / "0002.jpeg", fmt="JPEG")
    spec = {"name": "RESIDE", "degradation": "haze", "degraded_dir": str(hazy), "clean_dir": str(clear),
            "key_regex": r"^(?P<key>[^_]+)"}

    result = ingest_paired(spec, "skip")

    assert pairs(result.train) == [(d1, c1), (d2, c1), (d3, c2)]
    assert list(result.train.columns) == GENDS_COLUMNS + EXTRA_COLUMNS
    assert set(result.train["dataset"]) == {"RESIDE"}
    assert set(result.train["degradation"]) == {"haze"}
    assert set(result.train["category"]) == {"Real"}
    assert set(result.train["degradation_sub_type"]) == {"Original"}
    assert set(result.train["split"]) == {"train"}
    assert result.test.empty and result.ood.empty and result.clean.empty
    assert [(p.path, p.reason.split(" (")[0]) for p in result.problems] == [
        ((hazy / "notes.txt").as_posix(), "not an image file")]


def test_paired_folders_default_key_is_whole_stem_and_split_is_configurable(tmp_path):
    make_image(tmp_path / "rainy" / "b.png")
    make_image(tmp_path / "rainy" / "a.bmp", fmt="BMP")
    make_image(tmp_path / "rainy" / "c.webp", fmt="WEBP")
    make_image(tmp_path / "rainy" / "d.TIFF", fmt="TIFF")
    for stem in "abcd":
        make_image(tmp_path / "gt" / f"{stem}.png")
    spec = {"name": "Rain100L", "degradation": "rain", "degraded_dir": str(tmp_path / "rainy"),
            "clean_dir": str(tmp_path / "gt"), "split": "test"}

    result = ingest_paired(spec, "fail")

    assert [Path(p).name for p in result.test["image_path"]] == ["a.bmp", "b.png", "c.webp", "d.TIFF"]
    assert [Path(p).name for p in result.test["target_path"]] == ["a.png", "b.png", "c.png", "d.png"]
    assert set(result.test["split"]) == {"test"} and result.train.empty


def test_recursive_folders_and_separate_clean_key_regex(tmp_path):
    d = make_image(tmp_path / "blur" / "scene1" / "blur_007.png")
    c = make_image(tmp_path / "sharp" / "scene1" / "sharp_007.png")
    spec = {"name": "GoPro-like", "degradation": "motion_blur", "degraded_dir": str(tmp_path / "blur"),
            "clean_dir": str(tmp_path / "sharp"), "recursive": True,
            "key_regex": r"blur_(?P<key>\d+)", "clean_key_regex": r"sharp_(?P<key>\d+)"}
    assert pairs(ingest_paired(spec).train) == [(d, c)]


def test_csv_manifest_resolves_relative_paths_against_its_folder(tmp_path):
    root = tmp_path / "rain13k"
    d1, c1 = make_image(root / "input" / "1.png"), make_image(root / "target" / "1.png")
    d2 = make_image(root / "input" / "2.png")
    c2 = make_image(tmp_path / "elsewhere" / "2.png")
    pd.DataFrame({"image_path": ["input/1.png", d2], "target_path": ["target/1.png", c2],
                  "note": ["extra columns", "are ignored"]}).to_csv(root / "pairs.csv", index=False)

    result = ingest_paired({"name": "Rain13K", "degradation": "rain", "manifest": str(root / "pairs.csv")})

    assert pairs(result.train) == [(d1, c1), (d2, c2)]
    assert set(result.train["dataset"]) == {"Rain13K"} and set(result.train["degradation"]) == {"rain"}


def test_parquet_manifest_with_root_override(tmp_path):
    data = tmp_path / "data"
    d, c = make_image(data / "low" / "1.png"), make_image(data / "high" / "1.png")
    manifest = tmp_path / "meta" / "lol.parquet"
    manifest.parent.mkdir()
    pd.DataFrame({"image_path": ["low/1.png"], "target_path": ["high/1.png"]}).to_parquet(manifest)

    result = ingest_paired({"name": "LOL", "degradation": "low_light", "manifest": str(manifest),
                            "root": str(data), "split": "test"})

    assert pairs(result.test) == [(d, c)]


# Rows in the layout of the GenDS dataset card: `dataset`, `degradation` and `category` describe the
# SOURCE clean image; `degradation_sub_type` is "Original" or the degradation GenDeg applied.
CARD_ROWS = [  # (dataset, degradation, category, degradation_sub_type, split)
    ("REDS", "motion blur", "Real", "Original", "train"),
    ("RESIDE", "haze", "Synthetic", "Original", "test"),
    ("REDS", "motion blur", "Real", "haze", "train"),
    ("RESIDE", "haze", "Synthetic", "raindrop", "train"),
    ("Snow100K", "snow", "Synthetic", "low-light", "train"),
    ("Rain13K", "rain", "Synthetic", "motion", "train"),
]


def write_card_manifest(root: Path, rows=CARD_ROWS) -> Path:
    records = []
    for i, (dataset, degradation, category, sub_type, split) in enumerate(rows):
        make_image(root / "deg" / f"{i}.png")
        make_image(root / "clean" / f"{i}.png")
        generated = sub_type != "Original"
        records.append({"image_path": f"deg/{i}.png", "target_path": f"clean/{i}.png", "dataset": dataset,
                        "degradation": degradation, "category": category, "degradation_sub_type": sub_type,
                        "split": split, "mu": 0.1 * i, "sigma": 0.05, "random_sampled": i == 2,
                        "sampled_dataset": "LOLv2" if generated else ""})
    pd.DataFrame(records).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def test_gends_manifest_in_the_cards_layout_is_read_right(tmp_path):
    """Generated rows show their degradation_sub_type (the card's `motion` included), not their source's
    degradation; only generated rows are "Synthetic", whatever the source dataset's card category."""
    root = tmp_path / "gends"
    result = ingest_paired({"gends_manifest": str(write_card_manifest(root))})

    train = result.train.set_index(result.train["image_path"].map(lambda p: Path(p).stem))
    assert list(train.index) == ["0", "2", "3", "4", "5"]
    assert list(train["degradation"]) == ["motion_blur", "haze", "raindrop", "low_light", "motion_blur"]
    assert list(train["category"]) == ["Real", "Synthetic", "Synthetic", "Synthetic", "Synthetic"]
    assert list(train["degradation_sub_type"]) == ["Original", "haze", "raindrop", "low_light", "motion_blur"]
    assert list(train["dataset"]) == ["REDS", "REDS", "RESIDE", "Snow100K", "Rain13K"]  # the source, as on the card
    test = result.test.iloc[0]  # RESIDE's original pair: an existing pair although RESIDE is synthetic haze
    assert (test["degradation"], test["category"], test["degradation_sub_type"]) == ("haze", "Real", "Original")
    generated = train.loc["2"]
    assert generated["mu"] == pytest.approx(0.2) and generated["sigma"] == pytest.approx(0.05)
    assert bool(generated["random_sampled"]) and generated["sampled_dataset"] == "LOLv2"
    assert generated["image_path"] == (root / "deg" / "2.png").as_posix()


def test_gends_phrases_go_to_the_existing_pairs_of_the_named_dataset(tmp_path):
    root = tmp_path / "gends"
    rows = [("CSD", "snow", "Synthetic", "Original", "train"), ("CSD", "snow", "Synthetic", "haze", "train"),
            ("REDS", "motion blur", "Real", "Original", "train")]
    spec = {"gends_manifest": str(write_card_manifest(root, rows)), "phrases": {"CSD": "in snowy and hazy conditions"}}
    train = ingest_paired(spec).train
    # the generated haze on a CSD image was prompted with haze's own phrase
    assert list(train["phrase"]) == ["in snowy and hazy conditions", "", ""]


def test_our_own_merged_manifest_keeps_its_meaning_through_gends_import(tmp_path):
    """Our writer (synthesize/merge) puts the applied degradation in both degradation columns of a generated
    row and "Synthetic" in category: read back as a GenDS manifest, every row means what it meant."""
    from gendeg.data.manifest import write_manifest
    from gendeg.data.manifest import make_frame

    rows = []
    for i, (degradation, category, sub_type) in enumerate([("haze", "Real", "Original"),
                                                           ("motion_blur", "Synthetic", "motion_blur"),
                                                           ("low_light", "Synthetic", "low_light")]):
        rows.append({"image_path": make_image(tmp_path / "d" / f"{i}.png"),
                     "target_path": make_image(tmp_path / "c" / f"{i}.png"), "dataset": "Set",
                     "degradation": degradation, "category": category, "degradation_sub_type": sub_type,
                     "split": "train", "mu": 0.1, "sigma": 0.05})
    ours = make_frame(rows)
    write_manifest(ours, tmp_path / "manifest.csv")

    again = ingest_paired({"gends_manifest": str(tmp_path / "manifest.csv")}).train
    for column in ("image_path", "degradation", "category", "degradation_sub_type", "dataset"):
        assert list(again[column]) == list(ours[column]), column


@pytest.mark.parametrize("name, expected", [
    ("motion blur", "motion_blur"), ("Motion-Blur", "motion_blur"), ("low-light", "low_light"),
    ("lowlight", "low_light"), ("raindrops", "raindrop"), ("haze", "haze"), ("fog", None), ("", None),
])
def test_canonical_degradation(name, expected):
    assert canonical_degradation(name) == expected


def test_clean_folder_rows_point_at_the_clean_file(tmp_path):
    a = make_image(tmp_path / "div2k" / "0001.png")
    b = make_image(tmp_path / "div2k" / "0002.jpg", fmt="JPEG")

    result = ingest_clean_folder({"name": "DIV2K", "dir": str(tmp_path / "div2k")})

    assert pairs(result.clean) == [(a, a), (b, b)]
    assert set(result.clean["split"]) == {"clean"}
    assert set(result.clean["degradation"]) == {""}
    assert set(result.clean["dataset"]) == {"DIV2K"}
    assert result.train.empty


def test_ood_folders_get_split_ood(tmp_path):
    d = make_image(tmp_path / "ohaze" / "hazy" / "01_outdoor_hazy.jpg", fmt="JPEG")
    c = make_image(tmp_path / "ohaze" / "gt" / "01_outdoor_GT.jpg", fmt="JPEG")
    spec = {"name": "O-HAZE", "degradation": "haze", "degraded_dir": str(tmp_path / "ohaze" / "hazy"),
            "clean_dir": str(tmp_path / "ohaze" / "gt"), "key_regex": r"^(?P<key>\d+)"}

    result = ingest_ood(spec)

    assert pairs(result.ood) == [(d, c)]
    assert set(result.ood["split"]) == {"ood"} and result.train.empty


def _full_config(tmp_path: Path) -> dict:
    for name in ("1", "2"):
        make_image(tmp_path / "hazy" / f"{name}.png")
        make_image(tmp_path / "clear" / f"{name}.png")
    make_image(tmp_path / "snowy" / "s.png")
    make_image(tmp_path / "snowgt" / "s.png")
    make_image(tmp_path / "pool" / "p.png")
    make_image(tmp_path / "ood_in" / "o.png")
    make_image(tmp_path / "ood_gt" / "o.png")
    return {
        "on_bad_input": "fail",
        "workers": 2,
        "paired": [
            {"name": "Haze", "degradation": "haze", "degraded_dir": str(tmp_path / "hazy"),
             "clean_dir": str(tmp_path / "clear")},
            {"name": "Snow", "degradation": "snow", "degraded_dir": str(tmp_path / "snowy"),
             "clean_dir": str(tmp_path / "snowgt"), "split": "test"},
        ],
        "clean": [{"name": "Pool", "dir": str(tmp_path / "pool")}],
        "ood": [{"name": "OOD", "degradation": "haze", "degraded_dir": str(tmp_path / "ood_in"),
                 "clean_dir": str(tmp_path / "ood_gt")}],
    }


def test_ingest_all_fills_every_split_and_is_deterministic(tmp_path):
    config = _full_config(tmp_path)

    first = ingest_all(config)
    second = ingest_all({**config, "workers": 1})

    assert (len(first.train), len(first.test), len(first.ood), len(first.clean)) == (2, 1, 1, 1)
    assert list(first.train["dataset"]) == ["Haze", "Haze"]
    assert first.problems == []
    for split in ("train", "test", "ood", "clean"):
        pd.testing.assert_frame_equal(getattr(first, split), getattr(second, split))


@pytest.mark.parametrize("mode", MODES)
def test_manifest_rows_outside_the_watched_folder_stop_the_run_in_both_modes(tmp_path, mode):
    """DVC hashes data.user.folder only: a manifest row pointing elsewhere could change unseen."""
    root = tmp_path / "user" / "rain13k"
    inside = make_image(root / "input" / "1.png"), make_image(root / "target" / "1.png")
    second, away = make_image(root / "input" / "2.png"), make_image(tmp_path / "elsewhere" / "2.png")
    pd.DataFrame({"image_path": ["input/1.png", "input/2.png"], "target_path": ["target/1.png", away]}).to_csv(
        root / "pairs.csv", index=False)
    config = {"folder": str(tmp_path / "user"), "on_bad_input": mode,
              "paired": [{"name": "Rain13K", "degradation": "rain", "manifest": str(root / "pairs.csv")}]}

    with pytest.raises(IngestError, match=r"1 file\(s\) of this dataset lie outside data.user.folder") as error:
        ingest_all(config)
    assert error.value.problems == [Problem(away, "Rain13K", error.value.problems[0].reason)]
    config["folder"] = str(tmp_path)
    assert pairs(ingest_all(config).train) == [inside, (second, away)]


def test_ingest_all_of_nothing_is_empty():
    result = ingest_all(None)
    assert result.train.empty and result.clean.empty and result.problems == []


# --- bad files: every case, both modes ---------------------------------------------------------


def _messy_dataset(tmp_path: Path) -> tuple[dict, list[tuple[str, str]], dict[str, str]]:
    """A paired-folder dataset with two good pairs and one of every bad-file case.

    Returns the spec, the good pairs, and {bad file: a word its problem must mention}.
    """
    deg, clean = tmp_path / "deg", tmp_path / "clean"
    good = [(make_image(deg / "good1_a.png"), make_image(clean / "good1.png")),
            (make_image(deg / "good2_a.png"), make_image(clean / "good2.png"))]
    bad = {
        make_image(deg / "good1_b.png", size=(9, 6)): "differs from its clean target",  # size mismatch
        make_truncated(deg / "trunc_a.jpg"): "truncated",
        make_image(deg / "gray_a.png", mode="L"): "grayscale",
        make_image(deg / "alpha_a.png", mode="RGBA"): "RGBA",
        make_gray16(deg / "g16_a.png"): "16-bit",
        make_rgb16_png(deg / "rgb16_a.png"): "16-bit",
        make_image(deg / "orphan_a.png"): "no clean counterpart",
        make_image(clean / "lonely.png"): "no degraded counterpart",
        make_image(deg / "-odd_a.png"): "does not match key_regex",
    }
    (deg / "junk_a.png").write_text("this is not an image")
    bad[(deg / "junk_a.png").as_posix()] = "not a readable image"
    shutil.copy(good[0][0], deg / "good1_c.png")  # same bytes as good1_a
    bad[(deg / "good1_c.png").as_posix()] = "same content as"
    for stem in ("trunc", "gray", "alpha", "g16", "rgb16", "junk"):
        make_image(clean / f"{stem}.png", size=(64, 48) if stem == "trunc" else (8, 6))
    spec = {"name": "Messy", "degradation": "haze", "degraded_dir": str(deg), "clean_dir": str(clean),
            "key_regex": r"^(?P<key>[a-z0-9]+)(_|$)"}
    return spec, good, bad


def test_fail_mode_lists_every_bad_file_in_one_error(tmp_path):
    spec, _, bad = _messy_dataset(tmp_path)

    with pytest.raises(IngestError) as caught:
        ingest_paired(spec, "fail")

    assert {p.path for p in caught.value.problems} == set(bad)
    message = str(caught.value)
    for path, word in bad.items():
        assert path in message
        reason = next(p.reason for p in caught.value.problems if p.path == path)
        assert word in reason, (path, reason)
    assert "on_bad_input: skip" in message


def test_skip_mode_keeps_good_pairs_reports_the_rest_and_touches_nothing(tmp_path):
    spec, good, bad = _messy_dataset(tmp_path)
    before = digests(tmp_path)

    result = ingest_paired(spec, "skip")

    assert pairs(result.train) == good
    assert {p.path for p in result.problems} == set(bad)
    assert all(p.dataset == "Messy" for p in result.problems)
    assert digests(tmp_path) == before


def test_skip_mode_problems_are_the_same_every_run(tmp_path):
    spec, _, _ = _messy_dataset(tmp_path)
    assert ingest_paired(spec, "skip", workers=1).problems == ingest_paired(spec, "skip", workers=2).problems


def test_problem_report_is_a_csv_of_every_problem(tmp_path):
    spec, _, bad = _messy_dataset(tmp_path / "data")
    problems = ingest_paired(spec, "skip").problems
    report = tmp_path / "reports" / "ingest_problems.csv"

    write_problem_report(problems, report)

    with open(report, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["path"], r["dataset"], r["reason"]) for r in rows] == [(p.path, p.dataset, p.reason) for p in problems]
    assert {r["path"] for r in rows} == set(bad)
    assert [p.name for p in report.parent.iterdir()] == ["ingest_problems.csv"]  # no temp file left


def test_empty_problem_report_still_has_a_header(tmp_path):
    write_problem_report([], tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_text() == "path,dataset,reason\n"


def test_ambiguous_clean_key_is_reported_for_both_files(tmp_path):
    d = make_image(tmp_path / "deg" / "1_x.png")
    c1, c2 = make_image(tmp_path / "clean" / "1_a.png"), make_image(tmp_path / "clean" / "1_b.png")
    spec = {"name": "Amb", "degradation": "rain", "degraded_dir": str(tmp_path / "deg"),
            "clean_dir": str(tmp_path / "clean"), "key_regex": r"^(?P<key>\d+)_"}
    result = ingest_paired(spec, "skip")
    assert result.train.empty
    assert {p.path for p in result.problems} == {c1, c2}
    assert all("share the pair key" in p.reason for p in result.problems)
    with pytest.raises(IngestError):
        ingest_paired(spec, "fail")
    assert d  # the degraded file itself is fine; only its target is ambiguous


@pytest.mark.parametrize("mode", MODES)
def test_manifest_with_missing_files_and_empty_paths(tmp_path, mode):
    d, c = make_image(tmp_path / "in" / "1.png"), make_image(tmp_path / "gt" / "1.png")
    make_image(tmp_path / "in" / "2.png")
    table = pd.DataFrame({"image_path": ["in/1.png", "in/2.png", "in/3.png"],
                          "target_path": ["gt/1.png", "gt/2.png", ""]})
    table.to_csv(tmp_path / "m.csv", index=False)
    spec = {"name": "M", "degradation": "snow", "manifest": str(tmp_path / "m.csv")}
    expected = {(tmp_path / "gt" / "2.png").as_posix(): "file not found", f"{tmp_path / 'm.csv'} row 3": "empty"}

    if mode == "fail":
        with pytest.raises(IngestError) as caught:
            ingest_paired(spec, mode)
        problems = caught.value.problems
    else:
        result = ingest_paired(spec, mode)
        assert pairs(result.train) == [(d, c)]
        problems = result.problems
    assert {p.path: p.reason for p in problems}.keys() == expected.keys()
    assert all(expected[p.path] in p.reason for p in problems)


@pytest.mark.parametrize("mode", MODES)
def test_gends_rows_with_unknown_degradation_or_split(tmp_path, mode):
    for i in range(3):
        make_image(tmp_path / "d" / f"{i}.png")
        make_image(tmp_path / "c" / f"{i}.png")
    pd.DataFrame({
        "image_path": [f"d/{i}.png" for i in range(3)], "target_path": [f"c/{i}.png" for i in range(3)],
        "dataset": ["A", "B", "C"], "degradation": ["snow", "fog", "rain"], "split": ["train", "train", "val"],
    }).to_parquet(tmp_path / "gends.parquet")
    spec = {"gends_manifest": str(tmp_path / "gends.parquet")}

    if mode == "fail":
        with pytest.raises(IngestError) as caught:
            ingest_paired(spec, mode)
        problems = caught.value.problems
    else:
        result = ingest_paired(spec, mode)
        assert list(result.train["dataset"]) == ["A"]
        problems = result.problems
    reasons = {Path(p.path).name: p.reason for p in problems}
    assert reasons.keys() == {"1.png", "2.png"}
    assert "unknown degradation 'fog'" in reasons["1.png"] and "unknown split 'val'" in reasons["2.png"]


@pytest.mark.parametrize("mode", MODES)
def test_bad_and_duplicate_files_in_a_clean_pool(tmp_path, mode):
    pool = tmp_path / "pool"
    keep = make_image(pool / "a.png")
    shutil.copy(keep, pool / "b.png")
    gray = make_image(pool / "c.png", mode="L")
    spec = {"name": "Pool", "dir": str(pool)}

    if mode == "fail":
        with pytest.raises(IngestError) as caught:
            ingest_clean_folder(spec, mode)
        problems = caught.value.problems
    else:
        result = ingest_clean_folder(spec, mode)
        assert list(result.clean["image_path"]) == [keep]
        problems = result.problems
    assert {p.path for p in problems} == {(pool / "b.png").as_posix(), gray}


@pytest.mark.parametrize("mode", MODES)
def test_duplicates_across_splits_leave_training_not_the_benchmark(tmp_path, mode):
    config = _full_config(tmp_path)
    config["on_bad_input"] = mode
    ood_image = tmp_path / "ood_in" / "o.png"
    leaked = tmp_path / "hazy" / "3.png"
    shutil.copy(ood_image, leaked)
    make_image(tmp_path / "clear" / "3.png")
    pool_copy = tmp_path / "pool" / "copy_of_target.png"
    shutil.copy(tmp_path / "clear" / "1.png", pool_copy)

    if mode == "fail":
        with pytest.raises(IngestError) as caught:
            ingest_all(config)
        problems = caught.value.problems
    else:
        result = ingest_all(config)
        assert pairs(result.ood) == [(ood_image.as_posix(), (tmp_path / "ood_gt" / "o.png").as_posix())]
        assert leaked.as_posix() not in set(result.train["image_path"]) and len(result.train) == 2
        assert list(result.clean["image_path"]) == [(tmp_path / "pool" / "p.png").as_posix()]
        problems = result.problems
    assert {p.path: p.dataset for p in problems} == {leaked.as_posix(): "Haze", pool_copy.as_posix(): "Pool"}
    assert all("duplicate" in p.reason for p in problems)


@pytest.mark.parametrize("mode", MODES)
def test_problems_from_several_datasets_are_gathered_in_one_error(tmp_path, mode):
    config = _full_config(tmp_path)
    config["on_bad_input"] = mode
    a = make_image(tmp_path / "hazy" / "9.png")  # no clean counterpart
    b = make_image(tmp_path / "snowy" / "t.png", mode="RGBA")
    make_image(tmp_path / "snowgt" / "t.png")

    if mode == "fail":
        with pytest.raises(IngestError) as caught:
            ingest_all(config)
        assert {(p.path, p.dataset) for p in caught.value.problems} == {(a, "Haze"), (b, "Snow")}
    else:
        result = ingest_all(config)
        assert {(p.path, p.dataset) for p in result.problems} == {(a, "Haze"), (b, "Snow")}
        assert (len(result.train), len(result.test)) == (2, 1)


# --- config mistakes: fatal in both modes, all listed at once -----------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_config_mistakes_stop_the_run_in_both_modes_and_are_all_listed(tmp_path, mode):
    config = _full_config(tmp_path)
    config["on_bad_input"] = mode
    make_image(tmp_path / "m" / "x.png")
    pd.DataFrame({"image": ["x.png"], "target_path": ["x.png"]}).to_csv(tmp_path / "m" / "cols.csv", index=False)
    config["paired"] += [
        {"name": "Typo", "degradation": "hazee", "degraded_dir": str(tmp_path / "hazy"),
         "clean_dir": str(tmp_path / "clear")},
        {"name": "Gone", "degradation": "rain", "degraded_dir": str(tmp_path / "nope"),
         "clean_dir": str(tmp_path / "clear")},
        {"name": "NoGroup", "degradation": "rain", "degraded_dir": str(tmp_path / "hazy"),
         "clean_dir": str(tmp_path / "clear"), "key_regex": r"^([^_]+)"},
        {"name": "Broken", "degradation": "rain", "degraded_dir": str(tmp_path / "hazy"),
         "clean_dir": str(tmp_path / "clear"), "key_regex": r"^(?P<key>[^_]+"},
        {"name": "Extra", "degradation": "rain", "degraded_dir": str(tmp_path / "hazy"),
         "clean_dir": str(tmp_path / "clear"), "clean_dr": "x"},
        {"name": "TwoSources", "degradation": "rain", "manifest": "a.csv", "degraded_dir": str(tmp_path / "hazy")},
        {"name": "Haze", "degradation": "snow", "degraded_dir": str(tmp_path / "snowy"),
         "clean_dir": str(tmp_path / "snowgt")},
    ]
    config["clean"].append({"name": "NoDir", "dir": str(tmp_path / "missing_pool")})

    with pytest.raises(IngestError) as caught:
        ingest_all(config)

    reasons = [f"{p.dataset}: {p.reason}" for p in caught.value.problems]
    for expected in ["Typo: unknown degradation 'hazee'", "Gone: degraded_dir is not an existing folder",
                     "NoGroup: key_regex", "Broken: key_regex", "Extra: unknown key(s) ['clean_dr']",
                     "TwoSources: give exactly one source", "Haze: dataset name used by more than one",
                     "NoDir: dir is not an existing folder"]:
        assert any(r.startswith(expected) for r in reasons), (expected, reasons)
    assert any("no named group 'key'" in r for r in reasons)
    assert any("not a valid regular expression" in r for r in reasons)
    assert "skipping them would silently drop whole datasets" in str(caught.value)


@pytest.mark.parametrize("mode", MODES)
def test_missing_manifest_columns_and_empty_folders_are_fatal(tmp_path, mode):
    (tmp_path / "empty").mkdir()
    make_image(tmp_path / "clean" / "1.png")
    pd.DataFrame({"image": ["a.png"], "target_path": ["b.png"]}).to_csv(tmp_path / "m.csv", index=False)
    pd.DataFrame({"image_path": ["a.png"], "target_path": ["b.png"]}).to_csv(tmp_path / "g.csv", index=False)
    config = {"on_bad_input": mode, "paired": [
        {"name": "Cols", "degradation": "rain", "manifest": str(tmp_path / "m.csv")},
        {"name": "GenDS", "gends_manifest": str(tmp_path / "g.csv")},
        {"name": "Empty", "degradation": "rain", "degraded_dir": str(tmp_path / "empty"),
         "clean_dir": str(tmp_path / "clean")},
    ]}

    with pytest.raises(IngestError) as caught:
        ingest_all(config)

    reasons = {p.dataset: p.reason for p in caught.value.problems}
    assert "missing column(s) ['image_path']" in reasons["Cols"]
    assert "missing column(s) ['dataset', 'degradation', 'split']" in reasons["GenDS"]
    assert "holds no images" in reasons["Empty"]
    assert {p.path for p in caught.value.problems} >= {str(tmp_path / "m.csv"), str(tmp_path / "g.csv")}


def test_unknown_user_key_and_bad_on_bad_value(tmp_path):
    with pytest.raises(IngestError, match=r"unknown key\(s\) \['pairs'\]"):
        ingest_all({"pairs": []})
    with pytest.raises(IngestError, match="on_bad_input.*must be one of \\['fail', 'skip'\\], got 'ignore'"):
        ingest_all({"on_bad_input": "ignore"})
    with pytest.raises(IngestError, match="must be one of"):
        ingest_clean_folder({"name": "x", "dir": str(tmp_path)}, "ignore")  # type: ignore[arg-type]


def test_ood_rejects_gends_and_foreign_split(tmp_path):
    make_image(tmp_path / "a" / "1.png")
    make_image(tmp_path / "b" / "1.png")
    with pytest.raises(IngestError, match="give exactly one source"):
        ingest_ood({"name": "X", "gends_manifest": str(tmp_path / "g.csv")})
    with pytest.raises(IngestError, match="OOD sets always have split 'ood'"):
        ingest_ood({"name": "X", "degradation": "rain", "degraded_dir": str(tmp_path / "a"),
                    "clean_dir": str(tmp_path / "b"), "split": "train"})


def test_problem_str_names_file_and_dataset():
    assert str(Problem("/d/x.png", "RESIDE", "truncated")) == "/d/x.png [RESIDE]: truncated"
