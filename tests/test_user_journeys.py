"""What users' own commands do to params.yaml: `dvc exp run -S` rewrites it with DVC's writer."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml
from conftest import ROOT

from gendeg.config import ConfigError, load_params, resolve, write_resolved


def dvc_set(path, dotted: str, value) -> None:
    """Change one key the way `dvc exp run -S key=value` does (DVC's own YAML writer)."""
    from dvc.utils.serialize import modify_yaml

    with modify_yaml(str(path)) as data:
        *parents, last = dotted.split(".")
        for part in parents:
            data = data[part]
        data[last] = value


def git(root, *args) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_COMMITTER_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_EMAIL": "t@example.org"}
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def project_params(tmp_path, preset: str = "default", commit: bool = True):
    text, count = re.subn(r"(?m)^preset: \w+", f"preset: {preset}", (ROOT / "params.yaml").read_text())
    assert count == 1
    (tmp_path / "params.yaml").write_text(text)
    if commit:
        git(tmp_path, "init", "-q")
        git(tmp_path, "add", "params.yaml")
        git(tmp_path, "commit", "-qm", "params")
    return tmp_path / "params.yaml"


def test_dvc_rewrite_keeps_every_value_but_the_one_set(tmp_path):
    path = project_params(tmp_path, commit=False)
    before = load_params(path)
    dvc_set(path, "restorer.train.steps", 2000)
    assert "mixed_precision: no\n" in path.read_text(), "DVC's writer no longer drops the quotes: drop the workaround"
    assert yaml.safe_load(path.read_text())["restorer"]["train"]["mixed_precision"] is False
    after = load_params(path)
    assert after["restorer"]["train"]["steps"] == 2000
    after["restorer"]["train"]["steps"] = before["restorer"]["train"]["steps"]
    assert after == before
    assert after["gendeg"]["train"]["mixed_precision"] == "no"


@pytest.mark.parametrize("junk", [True, "yes", "fp32", 0])
def test_schema_still_rejects_junk_mixed_precision(junk):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["restorer"]["train"]["mixed_precision"] = junk
    with pytest.raises(ConfigError, match="restorer.train.mixed_precision"):
        resolve(params)


def test_an_edit_the_preset_shadows_is_an_error_naming_both_keys(tmp_path):
    path = project_params(tmp_path, preset="smoke")
    write_resolved(path, tmp_path / "resolved")  # the committed file is fine
    dvc_set(path, "restorer.train.steps", 2000)
    with pytest.raises(ConfigError) as error:
        write_resolved(path, tmp_path / "resolved")
    message = str(error.value)
    assert "restorer.train.steps: 2000" in message and "presets.smoke.restorer.train.steps: 10" in message


def test_the_preset_key_itself_is_honoured(tmp_path):
    path = project_params(tmp_path, preset="smoke")
    dvc_set(path, "presets.smoke.restorer.train.steps", 30)
    write_resolved(path, tmp_path / "resolved")
    assert json.loads((tmp_path / "resolved" / "train_restorer.json").read_text())["restorer"]["train"]["steps"] == 30


def test_an_edit_the_preset_does_not_set_is_fine(tmp_path):
    path = project_params(tmp_path, preset="smoke")
    dvc_set(path, "restorer.train.lr", 1.0e-3)
    write_resolved(path, tmp_path / "resolved")
    assert json.loads((tmp_path / "resolved" / "train_restorer.json").read_text())["restorer"]["train"]["lr"] == 1.0e-3


def test_default_preset_takes_the_top_level_value(tmp_path):
    path = project_params(tmp_path, preset="default")
    dvc_set(path, "restorer.train.steps", 2000)
    write_resolved(path, tmp_path / "resolved")
    assert json.loads((tmp_path / "resolved" / "train_restorer.json").read_text())["restorer"]["train"]["steps"] == 2000
