"""`prepare` measures (mu, sigma) over the job's cores and, given a work folder, reads again
only the files that are new or changed since they were measured."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import stage_workspace, tree_digest
from PIL import Image

from gendeg.pipeline.config import stage_config
from gendeg.stages import prepare as prepare_stage

PAIRS = 6


@pytest.fixture
def workdir(tmp_path, smoke_params):
    with stage_workspace(tmp_path) as root:
        yield root, smoke_params


def _write(path: str, array: np.ndarray) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _user_config(params: dict, threads: int) -> dict:
    """A user-data prepare config over PAIRS hazy pairs and PAIRS OOD pairs of differing sizes
    (so the Lanczos resize is exercised), written here; none of them comes with (mu, sigma)."""
    rng = np.random.default_rng(0)
    for i in range(PAIRS):
        clean = rng.integers(0, 255, (40 + 3 * i, 48, 3), dtype=np.uint8)
        _write(f"user/clean/{i}.png", clean)
        _write(f"user/hazy/{i}_0.8.png", (clean * (0.4 + 0.1 * i) + 90).astype(np.uint8))
        _write(f"user/ood_gt/{i}.png", clean[::-1].copy())
        _write(f"user/ood_in/{i}.png", (clean[::-1] * 0.5).astype(np.uint8))
    config = copy.deepcopy(stage_config(params, "prepare"))
    config["threads"] = threads
    config["data"]["source"] = "user"
    config["data"]["user"] = {
        "on_bad_input": "fail",
        "paired": [{"name": "MyHaze", "degradation": "haze", "degraded_dir": "user/hazy", "clean_dir": "user/clean",
                    "key_regex": r"^(?P<key>[^_]+)"}],
        "clean": [], "ood": [{"name": "MyOOD", "degradation": "haze", "degraded_dir": "user/ood_in",
                              "clean_dir": "user/ood_gt"}],
    }
    return config


def _counting(monkeypatch) -> list[str]:
    """Degraded files the (in-process, one worker) measure reads, in order."""
    read: list[str] = []
    measure = prepare_stage._measure

    def counted(pair):
        read.append(pair[1])
        return measure(pair)

    monkeypatch.setattr(prepare_stage, "_measure", counted)
    return read


def _prepare(config: dict, work: Path | None = None) -> dict[str, str]:
    """Digest of a fresh `prepared` folder (always the same path, so the bytes are comparable)."""
    shutil.rmtree("prepared", ignore_errors=True)
    prepare_stage.prepare(config, Path("prepared"), work)
    return tree_digest(Path("prepared"))


def test_outputs_are_the_same_bytes_whatever_the_worker_count_or_cache(workdir):
    _, params = workdir
    one = _prepare(_user_config(params, threads=1))
    assert pd.read_csv("prepared/train.csv")["mu"].gt(0).all()
    two = _prepare(_user_config(params, threads=2), Path("checkpoints/prepare"))  # two processes, cache filled
    assert two == one
    assert _prepare(_user_config(params, threads=2), Path("checkpoints/prepare")) == one  # every value from the cache
    assert sorted(p.name for p in Path("checkpoints/prepare").iterdir()) == ["intensity.parquet"]


def test_a_rerun_reads_only_the_changed_file(workdir, monkeypatch):
    _, params = workdir
    config = _user_config(params, threads=1)
    read = _counting(monkeypatch)
    _prepare(config, Path("checkpoints/prepare"))
    assert len(read) == 2 * PAIRS  # train and OOD pairs, each read once
    changed = "user/hazy/3_0.8.png"
    _write(changed, np.full((49, 48, 3), 200, dtype=np.uint8))
    stat = os.stat(changed)
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new mtime even on a coarse clock
    read.clear()
    cached = _prepare(config, Path("checkpoints/prepare"))
    assert [Path(p).name for p in read] == ["3_0.8.png"]
    assert cached == _prepare(config), "a re-run with the cache differs from measuring everything again"


def test_a_cache_entry_with_a_stale_mtime_is_not_reused(workdir):
    _, params = workdir
    _user_config(params, threads=1)
    images = [f"user/hazy/{i}_0.8.png" for i in range(PAIRS)]
    targets = [f"user/clean/{i}.png" for i in range(PAIRS)]
    work = Path("checkpoints/prepare")
    truth, measured = prepare_stage.measure_pairs(images, targets, 1, work)
    assert measured == PAIRS
    cache = pd.read_parquet(work / "intensity.parquet")
    cache["mu"] = 0.625  # a value no pair has: where it comes back, the cache was used
    cache.to_parquet(work / "intensity.parquet", index=False)
    stat = os.stat(images[2])
    os.utime(images[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same bytes, another mtime
    values, measured = prepare_stage.measure_pairs(images, targets, 1, work)
    assert measured == 1
    assert values.at[2, "mu"] == truth.at[2, "mu"]  # re-measured, not the stale record
    assert (values["mu"].drop(index=2) == 0.625).all()


def test_a_killed_measurement_resumes_from_what_it_wrote(workdir, monkeypatch):
    """Records are written every FLUSH_EVERY pairs: a run stopped part-way keeps them."""
    _, params = workdir
    _user_config(params, threads=1)
    images = [f"user/hazy/{i}_0.8.png" for i in range(PAIRS)]
    targets = [f"user/clean/{i}.png" for i in range(PAIRS)]
    work = Path("checkpoints/prepare")
    monkeypatch.setattr(prepare_stage, "FLUSH_EVERY", 2)
    measure, calls = prepare_stage._measure, []

    def dies_at_the_fifth(pair):
        calls.append(pair)
        if len(calls) == 5:
            raise Killed
        return measure(pair)

    monkeypatch.setattr(prepare_stage, "_measure", dies_at_the_fifth)
    monkeypatch.setattr(prepare_stage.IntensityCache, "flush", _periodic_only(prepare_stage.IntensityCache.flush))
    with pytest.raises(Killed):
        prepare_stage.measure_pairs(images, targets, 1, work)
    assert len(list(work.glob("part_*.parquet"))) == 2
    monkeypatch.undo()
    values, measured = prepare_stage.measure_pairs(images, targets, 1, work)
    assert measured == PAIRS - 4
    assert values.equals(prepare_stage.measure_pairs(images, targets, 1, None)[0])


class Killed(BaseException):
    """Stands for a kill: nothing but the periodic writes before it counts."""


def _periodic_only(flush):
    """`flush` as a SIGKILL leaves it: the final flush of the `finally` clause never runs."""

    def periodic(self):
        if len(self.pending) >= prepare_stage.FLUSH_EVERY:
            flush(self)

    return periodic
