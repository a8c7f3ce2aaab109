"""The built-in data builder: manifest frames, files, scene hygiene, intensity targeting, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gendeg import PROJECT_ROOT, REFERENCE_FOLDER
from gendeg.data.builtin_data import build_builtin, describe, resolve_config
from gendeg.data.images import read_image, write_png
from gendeg.data.manifest import EXTRA_COLUMNS, GENDS_COLUMNS
from gendeg.data.standins import OOD_SETS, STANDINS, Histogram, mu_sigma_as_written, reference_histogram
from gendeg.intensity.definition import mu_sigma
from gendeg.pipeline.config import load_params

# The pipeline's data.builtin (params.yaml states crop_size and the pair counts; the code has no default).
BUILTIN = load_params(PROJECT_ROOT / "params.yaml")["data"]["builtin"]
# Tiny: every set present, a handful of 32x32 pairs each; the whole prepare in seconds.
SMOKE_CONFIG = {"crop_size": 32, "train_pairs_per_standin": 4, "test_pairs_per_standin": 2, "pairs_per_ood_set": 2,
                "mu_tolerance": 0.005}

torch.set_num_threads(1)


def write_histogram(folder: Path, label: str, dataset: str, top: float, counts: np.ndarray) -> None:
    edges = np.linspace(0.0, top, len(counts) + 1)
    rows = [{f"{label} min": float(lo), f"{label} max": float(hi), "Count": int(c), "Dataset": dataset}
            for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=False)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{label}_{dataset}.json").write_text(json.dumps(rows))


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory) -> Path:
    """A stand-in for the released statistics: every stand-in's mu in a narrow, known band."""
    root = tmp_path_factory.mktemp("reference")
    for spec in STANDINS:
        folder = root / REFERENCE_FOLDER[spec.degradation]
        mu_counts = np.zeros(128, int)
        mu_counts[9:16] = 5  # mu in [0.049, 0.0875): reachable by every generator on every scene
        write_histogram(folder, "Mu", spec.reference, 0.7, mu_counts)
        write_histogram(folder, "Sigma", spec.reference, 0.4, np.r_[np.zeros(10, int), np.ones(118, int)])
    return root


@pytest.fixture(scope="module")
def smoke_build(tmp_path_factory, reference_dir):
    out = tmp_path_factory.mktemp("build") / "data" / "builtin"
    frames = build_builtin({**SMOKE_CONFIG, "reference_dir": str(reference_dir)}, out, seed=3)
    return out, frames


def test_frames_have_manifest_columns_and_expected_sizes(smoke_build):
    _, frames = smoke_build
    assert set(frames) == {"train", "test", "ood"}
    for split, frame in frames.items():
        assert list(frame.columns) == GENDS_COLUMNS + EXTRA_COLUMNS
        assert (frame["split"] == split).all()
        assert (frame["category"] == "Real").all() and (frame["degradation_sub_type"] == "Original").all()
        assert frame["mu"].notna().all() and frame["sigma"].notna().all()
        assert (frame["caption"] != "").all()
    assert len(frames["train"]) == len(STANDINS) * SMOKE_CONFIG["train_pairs_per_standin"]
    assert len(frames["test"]) == len(STANDINS) * SMOKE_CONFIG["test_pairs_per_standin"]
    assert len(frames["ood"]) == len(OOD_SETS) * SMOKE_CONFIG["pairs_per_ood_set"]
    assert set(frames["ood"]["dataset"]) == {spec.name for spec in OOD_SETS}
    assert set(frames["train"]["degradation"]) == set(REFERENCE_FOLDER)


def test_every_file_exists_at_the_crop_size_and_matches_its_mu(smoke_build):
    out, frames = smoke_build
    for frame in frames.values():
        for row in frame.itertuples():
            assert row.image_path.startswith(str(out / "images"))
            degraded, clean = read_image(row.image_path), read_image(row.target_path)
            assert degraded.shape == clean.shape == (32, 32, 3)
            assert mu_sigma_as_written(clean, degraded) == pytest.approx((row.mu, row.sigma), abs=1e-9)


def test_stand_in_pairs_hit_the_requested_mu(smoke_build):
    train = smoke_build[1]["train"]
    assert train["requested_mu"].between(0.049, 0.0875).all()  # drawn from the (fake) histogram
    error = (train["mu"] - train["requested_mu"]).abs()
    assert error.median() < 0.01


def test_ood_scenes_never_appear_in_train_or_test(smoke_build):
    frames = smoke_build[1]
    seen = set(frames["train"]["scene"]) | set(frames["test"]["scene"])
    assert not seen & set(frames["ood"]["scene"])
    assert len(set(frames["ood"]["scene"])) >= 5


def test_test_split_uses_each_stand_in_own_scenes_with_other_draws(smoke_build, reference_dir):
    frames = smoke_build[1]
    plan = describe({**SMOKE_CONFIG, "reference_dir": str(reference_dir)}, seed=3)
    for split in ("train", "test"):
        for dataset, rows in frames[split].groupby("dataset"):
            assert set(rows["scene"]) <= set(plan["standins"][dataset]["scenes"])
    assert not set(frames["test"]["sample_seed"]) & set(frames["train"]["sample_seed"])


def test_stand_ins_get_few_scenes_and_the_union_is_larger():
    plan = describe(BUILTIN)
    per_degradation: dict[str, set] = {}
    for info in plan["standins"].values():
        per_degradation.setdefault(info["degradation"], set()).update(info["scenes"])
    assert all(2 <= len(scenes) <= 4 for scenes in per_degradation.values())
    union = set().union(*per_degradation.values())
    assert 15 <= len(union) <= 25
    assert len(plan["ood_scenes"]) >= 8 and not union & set(plan["ood_scenes"])


def test_same_config_and_seed_give_identical_bytes(smoke_build, tmp_path, reference_dir):
    out_a, frames_a = smoke_build
    out_b = tmp_path / "again"
    frames_b = build_builtin({**SMOKE_CONFIG, "reference_dir": str(reference_dir)}, out_b, seed=3)
    files_a = sorted(p.relative_to(out_a) for p in out_a.rglob("*.png"))
    files_b = sorted(p.relative_to(out_b) for p in out_b.rglob("*.png"))
    assert files_a == files_b and files_a
    assert all((out_a / p).read_bytes() == (out_b / p).read_bytes() for p in files_a)
    for split in frames_a:
        left = frames_a[split].drop(columns=["image_path", "target_path"])
        right = frames_b[split].drop(columns=["image_path", "target_path"])
        assert left.equals(right)


def test_another_seed_gives_other_pairs(smoke_build, tmp_path, reference_dir):
    cfg = {**SMOKE_CONFIG, "reference_dir": str(reference_dir), "standins": ["RESIDE-like"], "ood_sets": []}
    a = build_builtin(cfg, tmp_path / "a", seed=3)["train"]
    b = build_builtin(cfg, tmp_path / "b", seed=4)["train"]
    assert not np.allclose(a["mu"], b["mu"])


def test_config_errors_name_the_key_or_set(reference_dir, tmp_path):
    with pytest.raises(KeyError, match="unknown key.*crop"):
        resolve_config({"crop": 64})
    with pytest.raises(KeyError, match="unknown set.*'Nope-like'"):
        resolve_config({**BUILTIN, "standins": ["Nope-like"]})
    with pytest.raises(ValueError, match="crop_size"):
        resolve_config({**BUILTIN, "crop_size": 8})
    with pytest.raises(KeyError, match=r"missing key\(s\) \['pairs_per_ood_set'\]"):  # params.yaml states it
        resolve_config({k: v for k, v in BUILTIN.items() if k != "pairs_per_ood_set"})
    with pytest.raises(FileNotFoundError, match="Mu_RESIDE.json"):
        build_builtin({**SMOKE_CONFIG, "reference_dir": str(tmp_path / "missing")}, tmp_path / "out", seed=0)


def test_recorded_mu_sigma_is_that_of_the_8_bit_files(tmp_path):
    rng = np.random.default_rng(0)
    clean = rng.random((40, 40, 3)).astype(np.float32) * 0.5
    degraded = np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1).astype(np.float32)
    assert mu_sigma_as_written(clean, clean) == (0.0, 0.0)
    write_png(clean, tmp_path / "clean.png")
    write_png(degraded, tmp_path / "degraded.png")
    from_files = mu_sigma(read_image(tmp_path / "clean.png"), read_image(tmp_path / "degraded.png"))
    assert mu_sigma_as_written(clean, degraded) == pytest.approx(from_files, abs=1e-9)
    mu, sigma = mu_sigma_as_written(np.zeros((40, 40, 3), np.float32), np.full((40, 40, 3), 0.2, np.float32))
    assert mu == pytest.approx(51 / 255, abs=1e-6) and sigma == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        mu_sigma_as_written(clean, clean[:20])


def test_histogram_sampling_and_wasserstein(reference_dir):
    histogram = reference_histogram(str(reference_dir), "haze", "RESIDE", "mu")
    samples = histogram.sample(np.random.default_rng(0), size=2000)
    assert samples.min() >= 0.049 and samples.max() <= 0.0875
    assert histogram.wasserstein(samples) < 0.003
    assert histogram.wasserstein(samples + 0.05) == pytest.approx(0.05, abs=0.003)
    assert isinstance(histogram, Histogram)
