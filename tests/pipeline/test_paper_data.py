"""The paper preset's data: captions (user manifests, captions files, a BLIP-2 captioner) and the
datasets' own phrases reach the prompts of training, structure correction and synthesis.
The captioner is a tiny randomly initialised BLIP-2 written offline."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import stage_workspace
from PIL import Image

from gendeg import DEGRADATIONS
from gendeg.data.ingest import IngestError, ingest_all
from gendeg.data.manifest import read_manifest
from gendeg.diffusion.text import Caption, build_prompt, build_prompts, prompt_captions
from gendeg.pipeline.config import stage_config
from gendeg.stages import prepare as prepare_stage

SNOWY_AND_HAZY = "in snowy and hazy conditions"


@pytest.fixture
def workdir(tmp_path, smoke_params):
    with stage_workspace(tmp_path) as root:
        yield root, smoke_params


def _image(path: str, seed: int, size=(24, 20), degrade_of: str | None = None) -> str:
    """A random image, or a mild degradation of `degrade_of` (mu well below the 0.28 cap)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if degrade_of is None:
        array = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    else:
        array = (np.asarray(Image.open(degrade_of), dtype=np.float32) * 0.8 + 20 + seed % 7).astype(np.uint8)
    Image.fromarray(array).save(path)
    return path


def _user_data(captioner: str | None = None) -> dict:
    """CSD-like snow pairs from a manifest (captions in a column, two blank) with the official compound
    phrase, and haze pairs from folders with a captions file covering half of them."""
    rows = []
    for i in range(4):
        clean = _image(f"user/csd/clean/{i}.png", 10 + i)
        degraded = _image(f"user/csd/snow/{i}.png", 20 + i, degrade_of=clean)
        rows.append({"image_path": degraded, "target_path": clean, "caption": f"a house {i}" if i < 2 else ""})
    pd.DataFrame(rows).to_csv("user/csd.csv", index=False)
    for i in range(4):
        _image(f"user/haze/hazy/{i}.png", 40 + i, degrade_of=_image(f"user/haze/clean/{i}.png", 30 + i))
    pd.DataFrame({"image_path": ["clean/0.png", "clean/1.png"], "caption": ["a street", "a tree"]}).to_csv(
        "user/haze/captions.csv", index=False)
    return {"folder": "user", "on_bad_input": "fail", "captioner": captioner,
            "paired": [{"name": "CSD", "degradation": "snow", "manifest": "user/csd.csv", "root": ".",
                        "phrase": SNOWY_AND_HAZY},
                       {"name": "MyHaze", "degradation": "haze", "degraded_dir": "user/haze/hazy",
                        "clean_dir": "user/haze/clean", "captions": "user/haze/captions.csv"}],
            "clean": [], "ood": []}


def _prepare(params: dict, user: dict, work: Path | None = None) -> Path:
    config = copy.deepcopy(stage_config(params, "prepare"))
    config["data"]["source"] = "user"
    config["data"]["user"] = user
    prepare_stage.prepare(config, Path("prepared"), work)
    return Path("prepared")


def test_captions_and_phrases_from_manifests_and_captions_files_reach_the_prepared_manifests(workdir):
    _, params = workdir
    prepared = _prepare(params, _user_data())
    train = read_manifest(prepared / "train.csv").set_index("dataset")
    assert list(train.loc["CSD", "caption"]) == ["a house 0", "a house 1", "", ""]
    assert set(train.loc["CSD", "phrase"]) == {SNOWY_AND_HAZY}
    assert list(train.loc["MyHaze", "caption"]) == ["a street", "a tree", "", ""]
    assert set(train.loc["MyHaze", "phrase"]) == {""}
    pool = pd.read_csv(prepared / "clean_pool.csv", keep_default_na=False)
    assert set(pool["caption"]) == {"a house 0", "a house 1", "a street", "a tree", ""}


def test_a_captions_file_that_names_no_image_stops_the_run(workdir):
    user = _user_data()
    pd.DataFrame({"image_path": ["elsewhere/0.png"], "caption": ["a street"]}).to_csv("user/haze/captions.csv",
                                                                                       index=False)
    with pytest.raises(IngestError, match="captions file names none of this dataset's"):
        ingest_all(user)


def test_blip2_captions_fill_the_blank_captions_once(workdir, tmp_path, monkeypatch):
    from gendeg.data.ingest import blip2

    _, params = workdir
    folder = blip2.write_random_blip2(tmp_path / "blip2")
    captioned: list[str] = []
    caption = blip2.Blip2Captioner.caption

    def counted(self, paths):
        captioned.extend(paths)
        return caption(self, paths)

    monkeypatch.setattr(blip2.Blip2Captioner, "caption", counted)
    user = _user_data(str(folder))
    prepared = _prepare(params, user, Path("checkpoints/prepare"))
    train = read_manifest(prepared / "train.csv").set_index("dataset")
    assert list(train.loc["CSD", "caption"])[:2] == ["a house 0", "a house 1"]  # given captions are kept
    assert list(train.loc["MyHaze", "caption"])[:2] == ["a street", "a tree"]
    made = list(train.loc["CSD", "caption"])[2:] + list(train.loc["MyHaze", "caption"])[2:]
    assert all(text and set(text.split()) <= set(blip2.TINY_WORDS) for text in made), made
    assert sorted(captioned) == sorted(["user/csd/clean/2.png", "user/csd/clean/3.png",
                                        "user/haze/clean/2.png", "user/haze/clean/3.png"])
    first = (prepared / "train.csv").read_bytes()
    captioned.clear()
    prepared = _prepare(params, user, Path("checkpoints/prepare"))
    assert captioned == [] and (prepared / "train.csv").read_bytes() == first  # kept records, same bytes


def test_a_captioner_folder_that_does_not_exist_is_named(workdir):
    with pytest.raises(IngestError, match="data.user.captioner"):
        ingest_all(_user_data("no/such/blip2"))


def test_prompts_carry_the_dataset_phrase_for_its_own_degradation_only():
    caption = Caption("a house", SNOWY_AND_HAZY, "snow")
    assert build_prompt("snow", caption) == f"a house, {SNOWY_AND_HAZY}"
    assert build_prompt("haze", caption) == "a house, in hazy conditions"  # e.g. the preview's other columns
    assert build_prompt("snow", Caption("", SNOWY_AND_HAZY, "snow")) == SNOWY_AND_HAZY
    frame = pd.DataFrame({"caption": ["a house", "a street"], "phrase": [SNOWY_AND_HAZY, ""],
                          "degradation": ["snow", "haze"]})
    assert prompt_captions(frame) == [caption, "a street"]
    assert prompt_captions(frame.drop(columns="phrase")) == ["a house", "a street"]  # no phrase: plain captions


def test_training_and_structure_correction_batches_are_prompted_with_caption_and_phrase(workdir):
    from gendeg.stages.train_gendeg import captions_of
    from gendeg.stages.train_structure_correction import pair_captions

    _, params = workdir
    frame = read_manifest(_prepare(params, _user_data()) / "train.csv")
    bank = SimpleNamespace(frame=frame)  # what the prompts read of a PairBank
    ids = torch.tensor([DEGRADATIONS.index(d) for d in frame["degradation"]])
    expected = [f"a house 0, {SNOWY_AND_HAZY}", f"a house 1, {SNOWY_AND_HAZY}", SNOWY_AND_HAZY, SNOWY_AND_HAZY,
                "a street, in hazy conditions", "a tree, in hazy conditions", "in hazy conditions",
                "in hazy conditions"]
    assert build_prompts(ids, captions_of(bank, torch.arange(len(frame)))) == expected
    assert build_prompts(ids, pair_captions(bank, slice(0, len(frame)))) == expected


def test_synthesis_prompts_carry_the_caption_and_the_phrase_of_the_sampled_dataset(workdir):
    from gendeg.stages.synthesize import plan

    _, params = workdir
    prepared = _prepare(params, _user_data())
    config = copy.deepcopy(stage_config(params, "synthesize"))
    config["synthesis"]["per_degradation"] = 6
    rows = plan(config, prepared, "snow")  # snow's only dataset is CSD: every request is drawn from it
    assert set(rows["sampled_dataset"]) == {"CSD"} and set(rows["phrase"]) == {SNOWY_AND_HAZY}
    ids = torch.full((len(rows),), DEGRADATIONS.index("snow"))
    prompts = build_prompts(ids, prompt_captions(rows, "snow"))
    by_source = dict(zip(rows["target_path"], prompts, strict=True))
    assert by_source["user/haze/clean/0.png"] == f"a street, {SNOWY_AND_HAZY}"
    assert all(p.endswith(SNOWY_AND_HAZY) for p in prompts)
    haze = plan(config, prepared, "haze")  # MyHaze sets no phrase: the plain one, with CSD's captions
    assert set(haze["phrase"]) == {""}
    prompts = build_prompts(torch.full((len(haze),), 0), prompt_captions(haze, "haze"))
    assert "a house 0, in hazy conditions" in prompts


def test_the_user_data_fingerprint_follows_captions_files_and_the_captioner(workdir, tmp_path):
    from gendeg.data.ingest.blip2 import write_random_blip2
    from gendeg.data.ingest.fingerprint import user_data_fingerprint

    user = _user_data(str(write_random_blip2(tmp_path / "blip2")))
    before = user_data_fingerprint({"source": "user", "user": user})
    assert "user/haze/captions.csv" in before["paths"] and f"captioner:{tmp_path / 'blip2'}" in before["paths"]
    pd.DataFrame({"image_path": ["clean/0.png"], "caption": ["another street"]}).to_csv("user/haze/captions.csv",
                                                                                       index=False)
    assert user_data_fingerprint({"source": "user", "user": user}) != before
