"""`select_pairs` hashes an image once: given a work folder, a re-run reads only the files that
are new or rewritten since they were hashed, and writes the same bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from conftest import stage_workspace

from gendeg.data.manifest import make_frame, read_manifest, write_manifest
from gendeg.stages import select_pairs as select_pairs_stage
from gendeg.stages.select_pairs import select_pairs

PAIRS = 6
WORK = Path("checkpoints/select_pairs/existing")


@pytest.fixture
def data(tmp_path):
    """prepared/train.csv over PAIRS pairs; pairs 0 and 1 share a clean image (hashed once)."""
    with stage_workspace(tmp_path):
        rows = []
        for i in range(PAIRS):
            _write(f"images/degraded/{i}.png", f"degraded {i}".encode() * (100 + i))
            target = f"images/clean/{max(i, 1)}.png"
            _write(target, f"clean {max(i, 1)}".encode() * 50)
            rows.append({"image_path": f"images/degraded/{i}.png", "target_path": target, "dataset": "Stand",
                         "degradation": "haze", "split": "train"})
        write_manifest(make_frame(rows), Path("prepared/train.csv"))
        yield Path("prepared")


def _write(path: str, content: bytes) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(content)


def _touch_later(path: str) -> None:
    """A new mtime even on a coarse clock (what a rewrite in the same second may not give)."""
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def _run(data: Path, work: Path | None, workers: int = 2) -> bytes:
    out = Path("data/training_sets/existing.csv")
    select_pairs("existing", data, out, work_dir=work, workers=workers)
    return out.read_bytes()


@pytest.fixture
def hashed(monkeypatch) -> list[str]:
    """Files the stage reads to hash, in any order (threads)."""
    read: list[str] = []
    sha1 = select_pairs_stage._sha1

    def counted(path):
        read.append(path)
        return sha1(path)

    monkeypatch.setattr(select_pairs_stage, "_sha1", counted)
    return read


def test_same_bytes_with_and_without_the_cache(data):
    plain = _run(data, None, workers=1)
    assert _run(data, WORK) == plain  # cache filled, two threads
    assert _run(data, WORK, workers=3) == plain  # every hash from the cache
    assert sorted(p.name for p in WORK.iterdir()) == ["sha1.parquet"]
    frame = read_manifest(Path("data/training_sets/existing.csv"))
    assert frame["image_sha1"].tolist() == [hashlib.sha1(Path(p).read_bytes()).hexdigest()
                                            for p in frame["image_path"]]
    assert frame["target_sha1"].tolist() == [hashlib.sha1(Path(p).read_bytes()).hexdigest()
                                             for p in frame["target_path"]]


def test_a_rerun_hashes_no_file(data, hashed):
    _run(data, WORK)
    assert sorted(hashed) == sorted({*(f"images/degraded/{i}.png" for i in range(PAIRS)),
                                     *(f"images/clean/{i}.png" for i in range(1, PAIRS))})
    hashed.clear()
    _run(data, WORK)
    assert hashed == []


def test_a_rewritten_file_is_hashed_again(data, hashed):
    _run(data, WORK)
    _write("images/clean/3.png", b"CLEAN 3" * 50)  # same size: only the mtime tells
    _touch_later("images/clean/3.png")
    hashed.clear()
    cached = _run(data, WORK)
    assert hashed == ["images/clean/3.png"]
    assert cached == _run(data, None), "a re-run with the cache differs from hashing everything again"
    assert read_manifest(Path("data/training_sets/existing.csv"))["target_sha1"][3] == hashlib.sha1(
        b"CLEAN 3" * 50).hexdigest()


@pytest.mark.parametrize("damage", ["garbage", "truncated part", "other columns"])
def test_a_cache_in_an_unreadable_state_is_ignored_with_a_notice(data, hashed, capsys, damage):
    truth = _run(data, WORK)
    if damage == "garbage":
        (WORK / "sha1.parquet").write_bytes(b"PAR1 not a parquet file")
    elif damage == "truncated part":
        good = (WORK / "sha1.parquet").read_bytes()
        (WORK / "part_000000.parquet").write_bytes(good[: len(good) // 2])
    else:  # another program's (or version's) table
        make_frame([]).to_parquet(WORK / "sha1.parquet")
    hashed.clear()
    capsys.readouterr()
    assert _run(data, WORK) == truth
    assert "select_pairs: ignoring the sha1 records in" in capsys.readouterr().out
    assert len(hashed) == 2 * PAIRS - 1  # every file hashed again
    hashed.clear()
    assert _run(data, WORK) == truth and hashed == []  # and the damaged cache replaced by a good one
    assert sorted(p.name for p in WORK.iterdir()) == ["sha1.parquet"]


def test_a_killed_run_resumes_from_what_it_hashed(data, monkeypatch):
    """Hashes are written every FLUSH_EVERY files: a run stopped part-way keeps them."""
    monkeypatch.setattr(select_pairs_stage, "FLUSH_EVERY", 2)
    sha1, calls = select_pairs_stage._sha1, []

    def dies_at_the_fifth(path):
        calls.append(path)
        if len(calls) == 5:
            raise OSError("killed")
        return sha1(path)

    monkeypatch.setattr(select_pairs_stage, "_sha1", dies_at_the_fifth)
    with pytest.raises(OSError, match="killed"):
        _run(data, WORK, workers=1)
    monkeypatch.setattr(select_pairs_stage, "_sha1", sha1)
    _, hashed = select_pairs_stage.file_hashes(
        read_manifest(data / "train.csv")["image_path"].tolist(), WORK, workers=1)
    assert hashed == PAIRS - 4
