"""Intensity (mu, sigma): measurement, bins, the released JSON layout, and the synthesis sampler."""

from __future__ import annotations

import filecmp
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage import data

from gendeg import DEGRADATIONS, PROJECT_ROOT
from gendeg.intensity.definition import (
    N_BINS,
    NULL_SLOT,
    RANGES,
    bin_centre,
    bin_edges,
    bin_index,
    histogram_counts,
    joint_counts,
    mu_sigma,
    mu_sigma_torch,
)
from gendeg.intensity.sampler import IntensitySampler, histogram_w1
from gendeg.intensity.stats import (
    DegradationStats,
    IntensityStats,
    IntensityStatsError,
    load_intensity_stats,
    stats_from_frame,
    write_intensity_stats,
    write_official_stats,
)
from gendeg.pipeline.config import load_params

torch.set_num_threads(1)
# The pipeline's down-weights (params.yaml's synthesis.down_weights, their one statement), for the
# released statistics; statistics of made-up datasets take none ({}).
DOWN_WEIGHTS = load_params(PROJECT_ROOT / "params.yaml")["synthesis"]["down_weights"]


def _released_dir() -> Path:
    try:
        from gendeg.data.reference import released_stats_dir
        return released_stats_dir()
    except (ImportError, FileNotFoundError):
        return Path(__file__).resolve().parents[2] / "reference" / "gendeg-intensity-stats"


RELEASED = _released_dir()
needs_release = pytest.mark.skipif(not RELEASED.is_dir(), reason=f"released statistics not found at {RELEASED}")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A smooth-ish natural image squeezed into [0.2, 0.7], so Lanczos overshoot never clips."""
    return (0.2 + 0.5 * data.astronaut().astype(np.float32) / 255.0).astype(np.float32)


@pytest.fixture(scope="module")
def released() -> IntensityStats:
    return load_intensity_stats(RELEASED)


# ---------------------------------------------------------------- measuring


def test_identical_images_have_zero_intensity(photo):
    assert mu_sigma(photo, photo) == (0.0, 0.0)


def test_constant_offset_gives_mu_c_and_zero_sigma(photo):
    mu, sigma = mu_sigma(photo, photo + 0.1)  # 512x512 -> resized
    assert mu == pytest.approx(0.1, abs=1e-5)
    assert sigma == pytest.approx(0.0, abs=1e-5)


def test_half_changed_image_has_mu_and_sigma_c_over_two():
    clean = np.full((256, 256, 3), 0.3, dtype=np.float32)
    degraded = clean.copy()
    degraded[:, :128] += 0.4
    mu, sigma = mu_sigma(clean, degraded)
    assert mu == pytest.approx(0.2, abs=1e-6)
    assert sigma == pytest.approx(0.2, abs=1e-6)


def test_difference_is_clipped_to_unit_range():
    clean = np.zeros((256, 256, 3), dtype=np.float32)
    assert mu_sigma(clean, np.full_like(clean, 3.0)) == pytest.approx((1.0, 0.0))


def test_float_lanczos_agrees_with_the_released_8bit_path(photo):
    rng = np.random.default_rng(0)
    degraded = np.clip(photo * 0.6 + 0.3 + rng.normal(0, 0.05, photo.shape), 0, 1)
    clean8, degraded8 = (np.round(x * 255).astype(np.uint8) for x in (photo, degraded))

    def released_way(image8):
        return np.asarray(Image.fromarray(image8).resize((256, 256), Image.Resampling.LANCZOS)) / 255

    difference = np.abs(released_way(clean8) - released_way(degraded8))
    mu, sigma = mu_sigma(clean8.astype(np.float32) / 255, degraded8.astype(np.float32) / 255)
    assert mu == pytest.approx(difference.mean(), abs=1e-3)
    assert sigma == pytest.approx(difference.std(), abs=1e-3)


def test_images_of_different_sizes_are_both_resized(photo):
    small = np.asarray(Image.fromarray(np.round(photo * 255).astype(np.uint8)).resize((300, 200))) / 255.0
    mu, _ = mu_sigma(photo, (small + 0.05).astype(np.float32))
    assert 0.0 < mu < 0.2


def test_mu_sigma_rejects_non_rgb_arrays():
    with pytest.raises(ValueError, match="HxWx3"):
        mu_sigma(np.zeros((8, 8)), np.zeros((8, 8)))


def test_torch_helper_matches_numpy_at_native_size():
    rng = np.random.default_rng(1)
    clean = rng.random((2, 256, 256, 3), dtype=np.float32)
    degraded = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    as_batch = lambda array: torch.from_numpy(array).permute(0, 3, 1, 2)  # noqa: E731
    mu, sigma = mu_sigma_torch(as_batch(clean), as_batch(degraded))
    assert mu.shape == sigma.shape == (2,)
    for b in range(2):
        expected = mu_sigma(clean[b], degraded[b])
        assert (mu[b].item(), sigma[b].item()) == pytest.approx(expected, abs=1e-5)


def test_torch_helper_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="Bx3xHxW"):
        mu_sigma_torch(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


# ---------------------------------------------------------------- bins


def test_bin_index_edges_overflow_and_null_slot():
    width = RANGES["mu"] / N_BINS
    assert bin_index(0.0, "mu") == 0
    assert bin_index(width * 1.5, "mu") == 1
    assert bin_index(0.7, "mu") == N_BINS - 1
    assert bin_index(5.0, "sigma") == N_BINS - 1
    assert bin_index(-0.1, "sigma") == 0
    assert NULL_SLOT == N_BINS == 128
    np.testing.assert_array_equal(bin_index(torch.tensor([0.0, 0.39, 1.0]), "sigma"), [0, 124, 127])
    with pytest.raises(ValueError, match="intensity kind"):
        bin_index(0.1, "gamma")


def test_histograms_count_every_value_with_overflow_in_top_bin():
    mu = np.array([0.0, 0.001, 0.1, 0.698, 0.9])
    sigma = np.array([0.0, 0.0, 0.05, 0.39, 2.0])
    counts = histogram_counts(mu, "mu")
    assert counts.sum() == 5 and counts[0] == 2 and counts[-1] == 2
    joint = joint_counts(mu, sigma)
    np.testing.assert_array_equal(joint.sum(axis=1), counts)
    np.testing.assert_array_equal(joint.sum(axis=0), histogram_counts(sigma, "sigma"))
    assert joint[N_BINS - 1, N_BINS - 1] == 1


@needs_release
def test_bin_edges_are_the_released_floats():
    rows = json.loads((RELEASED / "haze" / "Mu_DenseHaze.json").read_text())
    assert [r["Mu min"] for r in rows] == bin_edges("mu")[:-1]
    assert rows[2]["Mu max"] == 0.016406249999999997  # float spelling matters for byte equality
    rows = json.loads((RELEASED / "rain" / "Sigma_ORD.json").read_text())
    assert [r["Sigma max"] for r in rows] == bin_edges("sigma")[1:]


# ---------------------------------------------------------------- released layout


@needs_release
def test_released_folder_loads_for_all_six_degradations(released):
    assert released.degradations == DEGRADATIONS
    haze = released["haze"]
    assert haze.datasets == ("CityscapesFog", "DenseHaze", "I-HAZE", "NH-HAZE", "RESIDE")
    assert int(haze.mu_counts["RESIDE"].sum()) == 71459
    assert int(released["low_light"].sigma_counts["SID"].sum()) == 844
    assert released["motion_blur"].joint_counts.shape == (N_BINS, N_BINS)
    assert int(released["snow"].joint_counts.sum()) == 49896 + 7617 + 1900
    with pytest.raises(KeyError, match="fog"):
        released["fog"]


@needs_release
def test_round_trip_of_released_folder_is_byte_identical(released, tmp_path):
    write_intensity_stats(released, tmp_path / "stats")
    released_files = sorted(p.relative_to(RELEASED) for p in RELEASED.rglob("*.json"))
    written_files = sorted(p.relative_to(tmp_path / "stats") for p in (tmp_path / "stats").rglob("*.json"))
    assert written_files == released_files
    mismatched = [str(p) for p in released_files
                  if not filecmp.cmp(RELEASED / p, tmp_path / "stats" / p, shallow=False)]
    assert mismatched == []


def _frame_from_counts(stats: DegradationStats) -> pd.DataFrame:
    """A manifest whose (mu, sigma) pairs reproduce the counts (one row per joint cell entry)."""
    rows = []
    remaining = {d: stats.mu_counts[d].copy() for d in stats.datasets}
    for m, s in zip(*np.nonzero(stats.joint_counts), strict=False):
        for _ in range(stats.joint_counts[m, s]):
            dataset = next(d for d in stats.datasets if remaining[d][m] > 0)
            remaining[dataset][m] -= 1
            rows.append((dataset, bin_centre(m, "mu"), bin_centre(s, "sigma")))
    frame = pd.DataFrame(rows, columns=["dataset", "mu", "sigma"])
    frame["degradation"] = stats.degradation
    return frame


@needs_release
def test_manifest_writer_reproduces_released_joint_file(released, tmp_path):
    low_light = released["low_light"]
    frame = _frame_from_counts(low_light)
    write_official_stats(frame, tmp_path / "stats")
    # The released per-dataset sigma histograms are not recoverable from mu counts + the pooled
    # joint, so the joint and the mu histograms are the files that must match byte for byte.
    for name in ("Mu-Sigma.json", "Mu_LOLv2.json", "Mu_SID.json"):
        assert filecmp.cmp(RELEASED / "low-light" / name, tmp_path / "stats" / "low-light" / name, shallow=False), name


def test_write_then_load_round_trip_from_a_manifest(tmp_path):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "degradation": ["haze"] * 30 + ["motion_blur"] * 10,
        "dataset": ["A"] * 20 + ["B"] * 10 + ["Blur"] * 10,
        "mu": rng.uniform(0, 0.3, 40),
        "sigma": rng.uniform(0, 0.2, 40),
    })
    written = write_official_stats(frame, tmp_path / "stats")
    assert sorted(p.name for p in (tmp_path / "stats" / "motion-blur").iterdir()) == [
        "Mu-Sigma.json", "Mu_Blur.json", "Sigma_Blur.json"]
    joint_rows = json.loads((tmp_path / "stats" / "haze" / "Mu-Sigma.json").read_text())
    assert {r["Dataset"] for r in joint_rows} == {"A"}
    loaded = load_intensity_stats(tmp_path / "stats")
    assert loaded.degradations == ("haze", "motion_blur")
    for degradation in loaded.degradations:
        for dataset in written[degradation].datasets:
            np.testing.assert_array_equal(loaded[degradation].mu_counts[dataset],
                                          written[degradation].mu_counts[dataset])
            np.testing.assert_array_equal(loaded[degradation].sigma_counts[dataset],
                                          written[degradation].sigma_counts[dataset])
        np.testing.assert_array_equal(loaded[degradation].joint_counts, written[degradation].joint_counts)
    np.testing.assert_array_equal(loaded["haze"].mu_counts["A"], histogram_counts(frame["mu"][:20], "mu"))


def test_writer_rejects_missing_intensities_and_unknown_degradations(tmp_path):
    frame = pd.DataFrame({"degradation": ["haze"], "dataset": ["A"], "mu": [np.nan], "sigma": [0.1]})
    with pytest.raises(IntensityStatsError, match="missing or negative"):
        write_official_stats(frame, tmp_path / "stats")
    frame = pd.DataFrame({"degradation": ["fog"], "dataset": ["A"], "mu": [0.1], "sigma": [0.1]})
    with pytest.raises(IntensityStatsError, match="fog"):
        write_official_stats(frame, tmp_path / "stats")
    assert not (tmp_path / "stats").exists()


def test_stats_from_frame_names_missing_columns():
    with pytest.raises(IntensityStatsError, match="sigma"):
        stats_from_frame(pd.DataFrame({"degradation": ["haze"], "dataset": ["A"], "mu": [0.1]}))


@pytest.fixture()
def small_stats_dir(tmp_path) -> Path:
    frame = pd.DataFrame({"degradation": ["rain"] * 4, "dataset": ["A", "A", "B", "B"],
                          "mu": [0.01, 0.1, 0.2, 0.2], "sigma": [0.01, 0.05, 0.1, 0.1]})
    write_official_stats(frame, tmp_path / "stats")
    return tmp_path / "stats"


def test_missing_file_error_names_the_file(small_stats_dir):
    (small_stats_dir / "rain" / "Sigma_B.json").unlink()
    with pytest.raises(IntensityStatsError, match="Sigma_B.json"):
        load_intensity_stats(small_stats_dir)


def test_missing_joint_file_error_names_the_file(small_stats_dir):
    (small_stats_dir / "rain" / "Mu-Sigma.json").unlink()
    with pytest.raises(IntensityStatsError, match="Mu-Sigma.json"):
        load_intensity_stats(small_stats_dir)


def test_malformed_file_error_names_the_file(small_stats_dir):
    (small_stats_dir / "rain" / "Mu_A.json").write_text("[{")
    with pytest.raises(IntensityStatsError, match="Mu_A.json"):
        load_intensity_stats(small_stats_dir)


def test_wrong_bin_edges_are_rejected(small_stats_dir):
    path = small_stats_dir / "rain" / "Sigma_A.json"
    rows = json.loads(path.read_text())
    rows[5]["Sigma max"] = 0.5
    path.write_text(json.dumps(rows, indent=4))
    with pytest.raises(IntensityStatsError, match="Sigma_A.json.*bin edges"):
        load_intensity_stats(small_stats_dir)


def test_inconsistent_joint_is_rejected(small_stats_dir):
    path = small_stats_dir / "rain" / "Mu-Sigma.json"
    rows = json.loads(path.read_text())
    rows[0]["Count"][0]["Count"] += 1
    path.write_text(json.dumps(rows, indent=4))
    with pytest.raises(IntensityStatsError, match="row sums"):
        load_intensity_stats(small_stats_dir)


def test_missing_requested_degradation_folder_is_an_error(small_stats_dir):
    assert load_intensity_stats(small_stats_dir).degradations == ("rain",)
    with pytest.raises(IntensityStatsError, match="haze"):
        load_intensity_stats(small_stats_dir, degradations=["haze"])


def test_original_release_layout_loads(small_stats_dir, tmp_path):
    """The original GenDeg/data: 'motion blur' folder and one Mu-Sigma-<ds>.json copy per dataset."""
    legacy = tmp_path / "legacy" / "motion blur"
    legacy.mkdir(parents=True)
    for path in (small_stats_dir / "rain").iterdir():
        shutil.copy(path, legacy / path.name)
    (legacy / "Mu-Sigma.json").rename(legacy / "Mu-Sigma-_A.json")
    shutil.copy(legacy / "Mu-Sigma-_A.json", legacy / "Mu-Sigma-_B.json")
    loaded = load_intensity_stats(tmp_path / "legacy")
    assert loaded.degradations == ("motion_blur",) and loaded["motion_blur"].datasets == ("A", "B")


# ---------------------------------------------------------------- sampler


def _draw_arrays(draws):
    return (np.array([d.mu for d in draws]), np.array([d.sigma for d in draws]),
            np.array([d.random_sampled for d in draws]), np.array([d.sampled_dataset for d in draws]))


@needs_release
def test_sampler_draws_only_from_non_empty_bins(released):
    haze = released["haze"]
    draws = IntensitySampler(released, "haze", DOWN_WEIGHTS).sample(4000, np.random.default_rng(0))
    mu, sigma, uniform, dataset = _draw_arrays(draws)
    mu_bins, sigma_bins = bin_index(mu, "mu"), bin_index(sigma, "sigma")
    for i in np.flatnonzero(~uniform):
        assert haze.mu_counts[dataset[i]][mu_bins[i]] > 0
        assert haze.joint_counts[mu_bins[i], sigma_bins[i]] > 0
    assert mu.max() < 0.285


@needs_release
def test_every_twentieth_sample_is_uniform_over_the_observed_range(released):
    sampler = IntensitySampler(released, "rain", DOWN_WEIGHTS)
    mu, sigma, uniform, dataset = _draw_arrays(sampler.sample(400, np.random.default_rng(1)))
    np.testing.assert_array_equal(np.flatnonzero(uniform), np.arange(0, 400, 20))
    for i in np.flatnonzero(uniform):
        counts = released["rain"].mu_counts[dataset[i]]
        nonzero = np.flatnonzero(counts)
        assert bin_edges("mu")[nonzero[0]] <= mu[i] <= bin_edges("mu")[nonzero[-1] + 1]
        assert dataset[i] in released["rain"].datasets
    offset = _draw_arrays(sampler.sample(40, np.random.default_rng(1), start_index=5))[2]
    np.testing.assert_array_equal(np.flatnonzero(offset), [15, 35])
    never = IntensitySampler(released, "rain", DOWN_WEIGHTS, uniform_every=0).sample(100, np.random.default_rng(1))
    assert not any(d.random_sampled for d in never)


@needs_release
def test_down_weights_set_dataset_frequencies(released):
    n = 20000
    sampler = IntensitySampler(released, "haze", DOWN_WEIGHTS)
    _, _, _, dataset = _draw_arrays(sampler.sample(n, np.random.default_rng(2)))
    frequency = Counter(dataset)
    weights = {d: DOWN_WEIGHTS.get(d, 1.0) for d in released["haze"].datasets}
    total = sum(weights.values())
    for name, weight in weights.items():
        assert frequency[name] / n == pytest.approx(weight / total, abs=0.015), name
    _, _, _, dataset = _draw_arrays(
        IntensitySampler(released, "haze", down_weights={"RESIDE": 0.0}).sample(2000, np.random.default_rng(2)))
    assert "RESIDE" not in set(dataset) and len(set(dataset)) == 4


def test_sampler_is_deterministic_and_chunk_invariant(small_stats_dir):
    stats = load_intensity_stats(small_stats_dir)
    sampler = IntensitySampler(stats, "rain", {}, uniform_every=3)
    whole = sampler.sample(30, np.random.default_rng(7))
    assert whole == sampler.sample(30, np.random.default_rng(7))
    assert whole != sampler.sample(30, np.random.default_rng(8))
    rng = np.random.default_rng(7)
    chunks = sampler.sample(12, rng) + sampler.sample(18, rng, start_index=12)
    assert chunks == whole


def _one_dataset_stats(mu_counts, sigma_counts, joint) -> IntensityStats:
    return IntensityStats({"snow": DegradationStats("snow", {"X": mu_counts}, {"X": sigma_counts}, joint)})


def test_sigma_follows_the_conditional_row_of_the_mu_bin():
    mu_counts, sigma_counts, joint = (np.zeros(N_BINS, np.int64), np.zeros(N_BINS, np.int64),
                                      np.zeros((N_BINS, N_BINS), np.int64))
    mu_counts[[10, 40]] = [5, 5]
    joint[10, 3], joint[40, 90] = 5, 5
    sigma_counts[[3, 90]] = [5, 5]
    draws = IntensitySampler(_one_dataset_stats(mu_counts, sigma_counts, joint), "snow", {},
                             uniform_every=0).sample(500, np.random.default_rng(4))
    mu, sigma, _, _ = _draw_arrays(draws)
    pairs = set(zip(bin_index(mu, "mu").tolist(), bin_index(sigma, "sigma").tolist(), strict=False))
    assert pairs == {(10, 3), (40, 90)}


def test_empty_conditional_row_falls_back_to_dataset_sigma_histogram():
    mu_counts, sigma_counts, joint = (np.zeros(N_BINS, np.int64), np.zeros(N_BINS, np.int64),
                                      np.zeros((N_BINS, N_BINS), np.int64))
    mu_counts[20] = 4
    sigma_counts[[7, 8]] = [2, 2]
    draws = IntensitySampler(_one_dataset_stats(mu_counts, sigma_counts, joint), "snow", {},
                             uniform_every=0).sample(200, np.random.default_rng(5))
    _, sigma, _, _ = _draw_arrays(draws)
    assert set(bin_index(sigma, "sigma").tolist()) == {7, 8}


def test_sampler_rejects_bad_settings(small_stats_dir):
    stats = load_intensity_stats(small_stats_dir)
    with pytest.raises(ValueError, match="down_weights\\['A'\\]"):
        IntensitySampler(stats, "rain", down_weights={"A": -1.0})
    with pytest.raises(ValueError, match="no dataset"):
        IntensitySampler(stats, "rain", down_weights={"A": 0.0, "B": 0.0})
    with pytest.warns(UserWarning, match="Nope"):
        IntensitySampler(stats, "rain", down_weights={"Nope": 0.5})
    with pytest.raises(KeyError, match="haze"):
        IntensitySampler(stats, "haze", {})
    with pytest.raises(TypeError, match="down_weights"):  # params.yaml states them: no default to fall back on
        IntensitySampler(stats, "rain")


# ---------------------------------------------------------------- W1


def test_w1_is_zero_for_the_histogram_itself_and_one_bin_for_a_shift():
    counts = np.zeros(N_BINS)
    counts[[5, 6, 30]] = [3, 1, 2]
    samples = np.repeat(bin_centre(np.arange(N_BINS), "mu"), counts.astype(int))
    assert histogram_w1(samples, counts, "mu") == pytest.approx(0.0, abs=1e-12)
    width = RANGES["mu"] / N_BINS
    assert histogram_w1(samples + width, counts, "mu") == pytest.approx(width)
    assert histogram_w1(samples, counts, "sigma") > 0.01


def test_w1_rejects_empty_histograms():
    with pytest.raises(ValueError, match="positive sum"):
        histogram_w1([0.1], np.zeros(N_BINS), "mu")
    with pytest.raises(ValueError, match="128"):
        histogram_w1([0.1], np.ones(10), "mu")


# ---------------------------------------------------------------- down-weights and the mu cap


def _haze_stats(tmp_path, mus=(0.05, 0.1, 0.2, 0.3, 0.4)) -> IntensityStats:
    """Our statistics of two haze datasets, one spelled as a user might ("Dense-Haze"), mu up to 0.4."""
    rows = [{"degradation": "haze", "dataset": name, "mu": mu, "sigma": mu / 2}
            for name in ("Dense-Haze", "RESIDE") for mu in mus]
    write_official_stats(pd.DataFrame(rows), tmp_path / "stats")
    return load_intensity_stats(tmp_path / "stats")


def test_down_weights_match_names_whatever_their_spelling(tmp_path):
    stats = _haze_stats(tmp_path)
    sampler = IntensitySampler(stats, "haze", down_weights={"DenseHaze": 0.05, "SID": 0.2})
    assert dict(zip(sampler.datasets, sampler.dataset_probabilities, strict=True)) == pytest.approx(
        {"Dense-Haze": 0.05 / 1.05, "RESIDE": 1 / 1.05})


def test_down_weights_that_match_no_dataset_are_named_with_the_datasets(tmp_path):
    stats = _haze_stats(tmp_path)
    with pytest.warns(UserWarning) as caught:
        IntensitySampler(stats, "haze", down_weights={"DenseHase": 0.05, "RESIDE": 1.0})
    message = str(caught[0].message)
    assert "['DenseHase']" in message and "['Dense-Haze', 'RESIDE']" in message


def test_requests_are_capped_at_mu_cap_when_drawn(tmp_path):
    stats = _haze_stats(tmp_path)
    rng = np.random.default_rng
    free = _draw_arrays(IntensitySampler(stats, "haze", {}).sample(400, rng(0)))[0]
    capped, _, uniform, _ = _draw_arrays(IntensitySampler(stats, "haze", {}, mu_cap=0.28).sample(400, rng(0)))
    assert free.max() > 0.35  # the statistics reach 0.4 ...
    assert capped.max() <= 0.28 and uniform.any()  # ... the requests, histogram and uniform draws alike, do not
    assert (capped > 0.2).any()  # the cap truncates; it does not squash everything down


@needs_release
def test_the_cap_leaves_released_draws_below_it_alone(released):
    """The released histograms end at 0.284: capping at 0.28 clips the top bin's few histogram draws and
    narrows the uniform draws' range to end at the cap."""
    rng = np.random.default_rng
    free, _, uniform, _ = _draw_arrays(IntensitySampler(released, "low_light", DOWN_WEIGHTS).sample(2000, rng(3)))
    capped = _draw_arrays(IntensitySampler(released, "low_light", DOWN_WEIGHTS, mu_cap=0.28).sample(2000, rng(3)))[0]
    np.testing.assert_array_equal(capped[~uniform], np.minimum(free[~uniform], 0.28))
    assert (free[~uniform] > 0.28).any() and capped.max() <= 0.28
