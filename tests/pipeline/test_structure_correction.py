"""Structure correction S on the smoke configuration: outputs, the disabled marker, apply's
identity for uncovered degradations, same bytes for the same seed (also when resumed from
the cached GenDeg inputs), and that training lowers the loss."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from conftest import stage_workspace, tree_digest

import gendeg.stages.train_structure_correction as stage
from gendeg.diffusion.structure_correction import load_structure_correction
from gendeg.pipeline.config import ConfigError, stage_config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, smoke_params):
    """Stages write relative paths, as they do under the orchestrators."""
    with stage_workspace(tmp_path_factory.mktemp("structure_correction")) as root:
        yield root, smoke_params


@pytest.fixture(scope="module")
def config(workdir) -> dict:
    _, params = workdir
    resolved = stage_config(params, "train_structure_correction")
    resolved["structure_correction"]["train"].update(steps=40, checkpoint_every=10)  # enough steps to see the loss fall
    # 40 steps on 12 pairs do not make S help, so the gate would leave every degradation out.
    resolved["structure_correction"].update(min_psnr_gain=None, min_diversity_kept=None)
    return resolved


@pytest.fixture(scope="module")
def trained(config, prepared, gendeg_model):
    summary = stage.train_structure_correction(config, prepared, gendeg_model, Path("models/sc"), Path("checkpoints/sc"))
    return Path("models/sc"), summary


def test_the_stage_writes_its_outputs_and_training_lowers_the_loss(trained, config):
    out, summary = trained
    names = config["structure_correction"]["degradations"]
    assert json.loads((out / "config.json").read_text()) == {
        "enabled": True, "degradations": names, "trained_on": names, "image_size": 32}
    for name in ("model/model.safetensors", "model/config.json", "train_summary.json", "samples.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "model/config.json").read_text())["in_channels"] == 6
    assert not Path("checkpoints/sc").exists(), "checkpoint folder left after a finished job"
    written = json.loads((out / "train_summary.json").read_text())
    assert written["eval_split"] == "test" and set(written["per_degradation"]) == {"haze", "motion_blur", "raindrop"}
    for when in ("before", "after"):
        assert written[when]["l1"] > 0 and written[when]["psnr"] > 0
        assert written["diversity"][when] > 0  # two seeds of one request differ
    assert written["loss_last"] < 0.9 * written["loss_first"], (written["loss_first"], written["loss_last"])
    assert summary["pairs"] == {"haze": 4, "motion_blur": 4, "raindrop": 4}


def test_apply_is_the_identity_only_where_s_does_not_apply(trained):
    out, _ = trained
    correction = load_structure_correction(out)
    assert correction is not None and correction.covers("raindrop") and not correction.covers("rain")
    generator = torch.Generator().manual_seed(0)
    clean, generated = torch.rand(2, 3, 32, 32, generator=generator), torch.rand(2, 3, 32, 32, generator=generator)
    assert torch.equal(correction.apply(clean, generated, "rain"), generated)
    assert torch.equal(correction.apply(clean, generated, "low_light"), generated)
    corrected = correction.apply(clean, generated, "haze")
    assert corrected.shape == generated.shape and corrected.min() >= 0 and corrected.max() <= 1
    assert (corrected - generated).abs().mean() > 1e-3, "S left a covered degradation unchanged"
    with pytest.raises(ValueError, match="hazy"):
        correction.apply(clean, generated, "hazy")
    with pytest.raises(ValueError, match="shape"):
        correction.apply(clean[:, :, :16], generated, "haze")


def test_same_seed_same_bytes_and_a_resumed_job_does_not_regenerate(trained, config, prepared, gendeg_model,
                                                                      monkeypatch):
    """Killed after generating its inputs, the job resumes from the cache and writes the same bytes."""
    first, _ = trained

    class Killed(Exception):
        pass

    def killed(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(stage, "train", killed)
        with pytest.raises(Killed):
            stage.train_structure_correction(config, prepared, gendeg_model, Path("models/again"), Path("checkpoints/again"))
    assert not Path("models/again").exists(), "a killed job left a finished-looking output"
    assert list(Path("checkpoints/again/generated").glob("*.safetensors")), "generated inputs were not cached"

    calls = []
    real_generate = stage.generate
    monkeypatch.setattr(stage, "generate", lambda *a, **k: calls.append(1) or real_generate(*a, **k))
    stage.train_structure_correction(config, prepared, gendeg_model, Path("models/again"), Path("checkpoints/again"))
    assert not calls, "a resumed job generated its inputs again"
    assert tree_digest(Path("models/again")) == tree_digest(first)


def test_disabled_writes_the_marker_and_trains_nothing(config, prepared, gendeg_model, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a disabled stage must neither generate nor train")

    monkeypatch.setattr(stage, "train", forbidden)
    monkeypatch.setattr(stage, "generate", forbidden)
    disabled = copy.deepcopy(config)
    disabled["structure_correction"]["enabled"] = False
    summary = stage.train_structure_correction(disabled, prepared, gendeg_model, Path("models/off"), Path("checkpoints/off"))
    assert summary == {"enabled": False}
    assert json.loads(Path("models/off/config.json").read_text()) == {"enabled": False, "degradations": [],
                                                                      "trained_on": []}
    assert sorted(p.name for p in Path("models/off").iterdir()) == ["config.json", "train_summary.json"]
    assert load_structure_correction(Path("models/off")) is None
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_structure_correction(Path("models/missing"))


def test_config_errors_name_the_key_and_value(config):
    bad = copy.deepcopy(config)
    bad["structure_correction"]["degradations"] = ["haze", "fog"]
    with pytest.raises(ConfigError, match=r"structure_correction.degradations.*'fog'"):
        stage.section_config(bad)
    bad = copy.deepcopy(config)
    bad["structure_correction"]["model"]["in_channels"] = 3
    with pytest.raises(ConfigError, match="in_channels 3"):
        stage.section_config(bad)


def test_pair_selection_is_seeded_capped_and_limited_to_the_pipeline(config, prepared):
    cfg = {**stage.section_config(config), "max_pairs_per_degradation": 2}
    narrowed = {**config, "degradations": ["haze", "rain"]}
    train, evaluation, split, covered = stage.correction_pairs(narrowed, cfg, prepared)
    assert covered == ["haze"] and split == "test"
    assert set(train["degradation"]) == set(evaluation["degradation"]) == {"haze"} and len(train) == 2
    again = stage.correction_pairs(narrowed, cfg, prepared)[0]
    assert list(again.index) == list(train.index)
    with pytest.raises(ConfigError, match="enabled: false"):
        stage.correction_pairs({**config, "degradations": ["rain"]}, cfg, prepared)


def test_the_gate_keeps_s_only_where_it_helps_without_erasing_variation():
    def per(before_psnr: float, after_psnr: float, kept: float | None) -> dict:
        return {"before": {"psnr": before_psnr}, "after": {"psnr": after_psnr}, "diversity": {"kept": kept}}

    measured = {"per_degradation": {"haze": per(15, 18, 0.8), "motion_blur": per(17, 16, 0.9),
                                    "raindrop": per(15, 24, 0.1)}}
    names = ["haze", "motion_blur", "raindrop"]
    applied, left_out = stage.gate(measured, names, {"min_psnr_gain": 0.0, "min_diversity_kept": 0.5})
    assert applied == ["haze"] and set(left_out) == {"motion_blur", "raindrop"}
    assert "min_psnr_gain" in left_out["motion_blur"] and "min_diversity_kept" in left_out["raindrop"]
    assert stage.gate(measured, names, {"min_psnr_gain": None, "min_diversity_kept": None})[0] == names
    with pytest.raises(KeyError, match="min_psnr_gain"):  # no default in code: params.yaml (schema-checked) is the source
        stage.gate(measured, names, {})
