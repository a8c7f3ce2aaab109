"""Synthesis in shards (synthesis.shards): each shard is the unsharded job's samples for its
indices, byte for byte, so GenDS is the same whatever the shard count; images are moved, not
copied; mixed precision only on a GPU; DVC and Snakemake make the same shard jobs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT, stage_workspace, tree_digest
from helpers.presets import TINY_GENDEG as TINY  # a tiny random GenDeg: the shard arithmetic needs no trained model

from gendeg.cli import main
from gendeg.diffusion import GenDegModel
from gendeg.pipeline.config import ConfigError, resolve, stage_config
from gendeg.runtime.speed import AutocastForward
from gendeg.stages import synthesize as stage
from gendeg.stages.merge import merge
from gendeg.stages.synthesize import sampling_model, shard_rows, synthesize


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, smoke_params):
    with stage_workspace(tmp_path_factory.mktemp("shards")) as root:
        yield root, smoke_params


@pytest.fixture(scope="module")
def tiny_gendeg(workdir) -> Path:
    torch.manual_seed(0)
    GenDegModel.from_config(TINY).eval().save_pretrained(Path("models/tiny"))
    return Path("models/tiny")


def synthesis_config(params: dict, shards: int) -> dict:
    """Five samples in batches of two (three batches, the last one short), calibrated, with oracle pairs."""
    config = stage_config(params, "synthesize")
    config["synthesis"].update(per_degradation=5, batch_size=2, image_size=32, shards=list(range(shards)))
    return config


def run_shards(params: dict, prepared: Path, model: Path, shards: int) -> list[Path]:
    config = synthesis_config(params, shards)
    folders = [Path(f"synthetic{shards}/haze/shard-{k}") for k in range(shards)]
    for k, folder in enumerate(folders):
        synthesize(config, prepared, model, "haze", folder, Path(f"work/{shards}/{k}"), shard=k)
    return folders


def merged_digest(params: dict, prepared: Path, folders: list[Path], shards: int) -> dict[str, str]:
    """GenDS from these shard folders, always written to data/gends (its manifest names that folder)."""
    config = stage_config(params, "merge")
    config["degradations"] = ["haze"]
    config["synthesis"]["shards"] = list(range(shards))
    shutil.rmtree("data/gends", ignore_errors=True)
    merge(config, prepared, folders, Path("data/gends"))
    return tree_digest(Path("data/gends"))


@pytest.mark.parametrize("count,batch,shards", [(5, 2, 1), (5, 2, 2), (5, 2, 3), (100000, 16, 10), (160, 32, 5)])
def test_shards_are_runs_of_whole_batches_that_tile_the_samples(count, batch, shards):
    runs = [shard_rows(count, batch, k, shards) for k in range(shards)]
    assert [i for run in runs for i in run] == list(range(count))
    assert all(run and run.start % batch == 0 for run in runs)
    assert max(len(r) for r in runs) - min(len(r) for r in runs) <= batch  # even, to a batch


def test_sharded_synthesis_makes_the_unsharded_samples_and_the_same_gends(workdir, prepared, tiny_gendeg):
    _, params = workdir
    digests, images = {}, {}
    for shards in (1, 2, 3):
        folders = run_shards(params, prepared, tiny_gendeg, shards)
        images[shards] = {name: sha for folder in folders for name, sha in tree_digest(folder).items()
                          if name.startswith(("images/", "oracle/"))}
        rows = pd.concat([pd.read_csv(f / "manifest.csv") for f in folders], ignore_index=True)
        images[shards]["manifest"] = rows.drop(columns="image_path").to_csv(index=False)
        # Each shard measured the same calibration map on the whole degradation's requests.
        assert len({(f / "calibration.json").read_bytes() for f in folders}) == 1
        digests[shards] = merged_digest(params, prepared, folders, shards)
    assert len(images[1]) == 2 * 5 + 1  # five images and five oracle images
    assert images[2] == images[1] and images[3] == images[1]
    assert digests[2] == digests[1] and digests[3] == digests[1]
    assert [len(list(Path(f"synthetic3/haze/shard-{k}/images").iterdir())) for k in range(3)] == [2, 2, 1]
    # `gendeg merge` finds the shards the resolved config names under --synthetic-root.
    config = stage_config(params, "merge")
    config["degradations"], config["synthesis"]["shards"] = ["haze"], [0, 1, 2]
    Path("merge.json").write_text(json.dumps(config))
    shutil.rmtree("data/gends")
    assert main(["merge", "--config", "merge.json", "--prepared", str(prepared), "--synthetic-root", "synthetic3",
                 "--out", "data/gends"]) == 0
    assert tree_digest(Path("data/gends")) == digests[1]


def test_merge_refuses_shards_that_repeat_a_sample(workdir, prepared, tiny_gendeg):
    _, params = workdir
    folders = run_shards(params, prepared, tiny_gendeg, 1)
    with pytest.raises(ValueError, match="repeat sample"):
        merged_digest(params, prepared, folders * 2, 1)


def test_a_shard_outside_synthesis_shards_is_refused(workdir, prepared, tiny_gendeg):
    _, params = workdir
    with pytest.raises(ValueError, match="shard 2 is not one of synthesis.shards"):
        synthesize(synthesis_config(params, 2), prepared, tiny_gendeg, "haze", Path("x"), Path("work/x"), shard=2)


def test_finished_images_are_moved_and_a_failure_after_the_move_starts_afresh(workdir, prepared, tiny_gendeg,
                                                                              monkeypatch):
    _, params = workdir
    config = synthesis_config(params, 1)
    reference = run_shards(params, prepared, tiny_gendeg, 1)[0]

    def no_copies(*args, **kwargs):
        raise AssertionError("synthesize copied a folder instead of moving it")

    monkeypatch.setattr(stage.shutil, "copytree", no_copies)
    real_move, moved = shutil.move, []

    class Killed(Exception):
        pass

    def move_then_fail(source, target):  # dies between the last move and the output's rename
        real_move(source, target)
        moved.append(Path(target).name)
        if len(moved) == 2:
            raise Killed

    monkeypatch.setattr(stage.shutil, "move", move_then_fail)
    with pytest.raises(Killed):
        synthesize(config, prepared, tiny_gendeg, "haze", Path("moved/haze"), Path("work/moved"))
    assert not Path("moved/haze").exists() and not (Path("work/moved") / "fingerprint.txt").exists()
    monkeypatch.setattr(stage.shutil, "move", real_move)
    synthesize(config, prepared, tiny_gendeg, "haze", Path("moved/haze"), Path("work/moved"))
    assert tree_digest(Path("moved/haze")).keys() == tree_digest(reference).keys()
    assert {k: v for k, v in tree_digest(Path("moved/haze")).items() if k.startswith("images/")} == \
           {k: v for k, v in tree_digest(reference).items() if k.startswith("images/")}


def test_mixed_precision_applies_on_a_gpu_only(monkeypatch):
    model = torch.nn.Linear(2, 2)
    for setting in ("no", "fp16", "bf16"):
        assert sampling_model(model, setting) is model  # the CPU samples in fp32: same bytes as before
    monkeypatch.setattr(stage, "model_device", lambda _: torch.device("cuda"))
    assert sampling_model(model, "no") is model
    wrapped = sampling_model(model, "fp16")
    assert isinstance(wrapped, AutocastForward) and wrapped.dtype == torch.float16
    assert sampling_model(model, "bf16").dtype == torch.bfloat16


def params_with(**synthesis) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["synthesis"].update(synthesis)
    return params


def test_shards_are_checked_before_any_job_starts():
    assert resolve(params_with(shards=[0, 1, 2]))["synthesis"]["shards"] == [0, 1, 2]
    with pytest.raises(ConfigError, match=r"synthesis.shards: \[0, 2\] must number the shards 0, 1, ..., N-1"):
        resolve(params_with(shards=[0, 2]))
    with pytest.raises(ConfigError, match="6 shards, but 160 samples per degradation in batches of 32 make 5"):
        resolve(params_with(shards=list(range(6))))
    with pytest.raises(ConfigError, match="synthesis.shards"):
        resolve(params_with(shards=2))  # a list, which DVC's matrix can expand
    with pytest.raises(ConfigError, match="mixed_precision"):
        resolve(params_with(mixed_precision="fp8"))
    params = params_with()
    params["presets"]["paper"]["synthesis"]["shards"] = [0, 1]
    with pytest.raises(ConfigError, match="presets.paper.synthesis.shards: set synthesis.shards at the top level"):
        resolve(params)


def test_the_paper_preset_samples_in_fp16_and_the_default_in_fp32():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert resolve({**params, "preset": "paper"})["synthesis"]["mixed_precision"] == "fp16"
    assert resolve({**params, "preset": "default"})["synthesis"]["mixed_precision"] == "no"
    assert resolve(params)["synthesis"]["shards"] == [0]

