"""params.yaml: presets, validation errors that name the key, resolved stage files."""

from __future__ import annotations

import copy
import json
import os
import time

import pytest
import yaml
from conftest import ROOT

from gendeg.pipeline.config import STAGE_SECTIONS, ConfigError, deep_merge, load_params, resolve, write_resolved


@pytest.fixture
def params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_shipped_params_resolve_under_every_preset(params):
    for preset in params["presets"]:
        resolved = resolve({**params, "preset": preset})
        assert resolved["preset"] == preset
        assert "presets" not in resolved


def test_preset_overrides_only_what_it_names(params):
    smoke = resolve({**params, "preset": "smoke"})
    default = resolve({**params, "preset": "default"})
    assert smoke["restorer"]["train"]["steps"] < default["restorer"]["train"]["steps"]
    assert smoke["restorer"]["train"]["lr"] == default["restorer"]["train"]["lr"]  # not named by smoke


def test_deep_merge_does_not_mutate_inputs():
    base = {"a": {"b": 1, "c": [1, 2]}}
    merged = deep_merge(base, {"a": {"b": 2}})
    assert merged == {"a": {"b": 2, "c": [1, 2]}} and base == {"a": {"b": 1, "c": [1, 2]}}


@pytest.mark.parametrize(
    "edit, key, fragment",
    [
        (lambda p: p["restorer"]["train"].__setitem__("steps", -3), "restorer.train.steps", "-3"),
        (lambda p: p["synthesis"].__setitem__("sampler", "ddim"), "synthesis.sampler", "ddim"),
        (lambda p: p.__setitem__("degradations", ["haze", "fog"]), "degradations.1", "fog"),
        (lambda p: p["merge"]["filter"].__setitem__("mu_cap", "high"), "merge.filter.mu_cap", "high"),
        (lambda p: p.__setitem__("typo_section", {}), "<top level>", "typo_section"),
        (lambda p: p["gendeg"]["train"].__setitem__("snr_gamma", 0), "gendeg.train.snr_gamma", "0"),
        (lambda p: p["gendeg"]["train"].update(snr_gamma=1.0, snr_floor=5.0), "gendeg.train.snr_floor", "5.0"),
        (lambda p: p["restorer"]["train"].__setitem__("snr_gamma", 5.0), "restorer.train", "snr_gamma"),
    ],
)
def test_bad_values_are_reported_with_their_key(params, edit, key, fragment):
    bad = copy.deepcopy(params)
    edit(bad)
    with pytest.raises(ConfigError) as error:
        resolve(bad)
    assert key in str(error.value) and fragment in str(error.value)


def test_bad_value_inside_a_preset_names_the_preset(params):
    bad = copy.deepcopy(params)
    bad["preset"] = "smoke"
    bad["presets"]["smoke"]["restorer"]["train"]["batch_size"] = 0
    with pytest.raises(ConfigError, match=r"preset 'smoke' applied[\s\S]*restorer.train.batch_size"):
        resolve(bad)


def test_presets_may_not_reshape_the_dag(params):
    bad = copy.deepcopy(params)
    bad["presets"]["smoke"]["training_sets"] = {"existing": "prepared"}
    with pytest.raises(ConfigError, match="presets.smoke"):
        resolve(bad)


def test_unknown_preset(params):
    with pytest.raises(ConfigError, match="preset: 'huge' is not defined"):
        resolve({**params, "preset": "huge"})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("preset: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")


def test_resolved_files_hold_only_their_sections_and_are_rewritten_only_on_change(tmp_path, params):
    source = tmp_path / "params.yaml"
    source.write_text(yaml.safe_dump(params))
    out = tmp_path / "resolved"
    assert len(write_resolved(source, out)) == len(STAGE_SECTIONS) + 1  # + the user-data fingerprint
    restorer = json.loads((out / "train_restorer.json").read_text())
    assert set(restorer) == {"preset", "threads", *STAGE_SECTIONS["train_restorer"]}
    assert restorer["threads"] == params["threads"].get("train_restorer", params["threads"]["default"])
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    time.sleep(0.01)
    assert write_resolved(source, out) == []  # nothing changed, nothing touched
    params["restorer"]["train"]["lr"] = 1e-4
    source.write_text(yaml.safe_dump(params))
    changed = write_resolved(source, out)
    assert [p.name for p in changed] == ["train_restorer.json"]
    assert all(p.stat().st_mtime_ns == stamps[p.name] for p in out.iterdir() if p.name != "train_restorer.json")
    # A job's thread count is one of its parameters: changing GenDeg's re-runs GenDeg only.
    params["threads"]["train_gendeg"] = 3
    source.write_text(yaml.safe_dump(params))
    assert [p.name for p in write_resolved(source, out)] == ["train_gendeg.json"]
    assert json.loads((out / "train_gendeg.json").read_text())["threads"] == 3


def test_stage_sections_exist_in_params(params):
    for stage, sections in STAGE_SECTIONS.items():
        missing = [s for s in sections if s not in params]
        assert not missing, f"{stage} depends on sections {missing} that params.yaml lacks"
    assert os.path.exists(ROOT / "workflow" / "schemas" / "params.schema.yaml")


def test_comparison_switch_rewrites_only_the_dag_keys_and_round_trips(tmp_path):
    from gendeg.pipeline.config import COMPARISONS, set_comparison

    original = (ROOT / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(original)
    assert set(set_comparison(path, "full")) == {"architectures", "training_sets", "scaling_counts"}
    full = load_params(path)
    for key, value in COMPARISONS["full"].items():
        assert full[key] == value
    assert full["restorer"] == load_params(ROOT / "params.yaml")["restorer"]  # nothing else moved
    assert "# nafnet | promptir | swin" in path.read_text(), "the key's comment was lost"
    assert set_comparison(path, "full") == []
    set_comparison(path, "default")
    assert path.read_text() == original
    with pytest.raises(ConfigError, match="unknown comparison 'huge'"):
        set_comparison(path, "huge")


def test_presets_may_not_set_architectures_or_scaling_counts(params):
    for key, value in (("architectures", ["swin"]), ("scaling_counts", [4])):
        bad = copy.deepcopy(params)
        bad["presets"]["smoke"][key] = value
        with pytest.raises(ConfigError, match="presets.smoke"):
            resolve(bad)


def test_restorer_settings_may_not_name_the_architecture(params):
    bad = copy.deepcopy(params)
    bad["restorer"]["model"]["nafnet"]["arch"] = "swin"
    with pytest.raises(ConfigError, match="restorer.model.nafnet.arch"):
        resolve(bad)


def test_jobs_that_cannot_be_built_are_refused_before_any_runs(params):
    bad = copy.deepcopy(params)
    bad["architectures"] = ["nafnet", "swin"]
    del bad["restorer"]["model"]["swin"]
    with pytest.raises(ConfigError, match=r"architectures: \['swin'\] have no settings under restorer.model"):
        resolve(bad)
    bad = copy.deepcopy(params)
    bad["scaling_counts"] = [10, 10_000]
    with pytest.raises(ConfigError, match=r"scaling_counts: \[10000\] exceed synthesis.per_degradation"):
        resolve(bad)
