"""Snakemake rules and DVC stages must describe the same pipeline: same jobs, same command,
same inputs, same outputs.  This test fails the moment one is edited without the other."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from gendeg.pipeline.config import STAGE_SECTIONS, USER_DATA

JOB_HEADER = re.compile(r"^(?:local)?rule (\w+):$")
# Dry-run stand-ins for a resolved config params.yaml changes (workflow/rules/common.smk): the
# Snakemake side of DVC's resolve_params stage, listed only when a config is out of date.
STAND_INS = {"resolve_params"}


def snakemake_jobs(root: Path = ROOT) -> dict[str, dict]:
    """Every job of a forced dry run: inputs, outputs and shell command, keyed like DVC stages."""
    snakemake = Path(sys.executable).parent / "snakemake"
    done = subprocess.run([str(snakemake), "-n", "--forceall", "--cores", "2", "--printshellcmds"], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    jobs, current = {}, None
    for line in (done.stdout + done.stderr).splitlines():
        header = JOB_HEADER.match(line.strip())
        if header:
            current = {"rule": header.group(1), "input": [], "output": [], "wildcards": {}, "shell": None}
            continue
        if current is None:
            continue
        field, _, value = line.strip().partition(": ")
        if field in ("input", "output"):
            current[field] = [v.strip() for v in value.split(",") if v.strip()]
        elif field == "wildcards":
            current["wildcards"] = dict(pair.split("=", 1) for pair in value.split(", "))
        elif line.startswith("Shell command:") or field == "Shell command":
            current["shell"] = line.split(":", 1)[1].strip()
            # DVC names foreach jobs `stage@value` and matrix jobs `stage@value1-value2`.
            suffix = "@" + "-".join(current["wildcards"].values()) if current["wildcards"] else ""
            if current["rule"] not in STAND_INS:
                jobs[current["rule"] + suffix] = current
            current = None
    return jobs


def dvc_stages(root: Path = ROOT) -> dict:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {
            stage.name: {
                "cmd": " ".join(stage.cmd.split()),
                "deps": sorted(dep.def_path for dep in stage.deps if not dep.def_path.startswith("params")),
                "params": sorted(k for dep in stage.deps if hasattr(dep, "params") for k in (dep.params or [])),
                "outs": sorted(out.def_path for out in stage.outs),
            }
            for stage in repo.index.stages
        }


@pytest.fixture(scope="module")
def both():
    return snakemake_jobs(), dvc_stages()


def normalise_shell(command: str) -> str:
    """Whitespace and a log redirect only: a flag one tool alone passes (as `--threads` was) is drift."""
    command = re.sub(r"\s*>\s*\S+\s+2>&1\s*$", "", command)
    return " ".join(command.split())


def test_same_jobs(both):
    jobs, stages = both
    assert set(jobs) - {"all"} == set(stages) - {"resolve_params"}


def test_same_commands(both):
    jobs, stages = both
    for name, stage in stages.items():
        if name != "resolve_params":
            assert normalise_shell(jobs[name]["shell"]) == stage["cmd"], name


def test_same_outputs(both):
    jobs, stages = both
    for name, stage in stages.items():
        if name != "resolve_params":
            assert sorted(jobs[name]["output"]) == stage["outs"], name


def test_same_inputs(both):
    """A DVC dependency may be the parent folder of several Snakemake inputs (data/synthetic).

    One is DVC's alone: prepare hashes data.user.folder, because DVC cannot be told the folders
    data.user lists; Snakemake sees the same files through resolved_params/user_data.json.
    """
    jobs, stages = both
    folder = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["user"]["folder"]
    assert folder in stages["prepare"]["deps"]
    stages = {**stages, "prepare": {**stages["prepare"], "deps": [d for d in stages["prepare"]["deps"] if d != folder]}}
    for name, stage in stages.items():
        if name == "resolve_params":
            continue
        inputs = jobs[name]["input"]

        def covers(dep: str, path: str) -> bool:
            return path == dep or path.startswith(dep.rstrip("/") + "/")

        uncovered = [i for i in inputs if not any(covers(d, i) for d in stage["deps"])]
        unused = [d for d in stage["deps"] if not any(covers(d, i) for i in inputs)]
        assert not uncovered and not unused, f"{name}: Snakemake-only {uncovered}, DVC-only {unused}"


def test_every_parameter_section_is_tracked_by_dvc(both):
    _, stages = both
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert sorted(stages["resolve_params"]["params"]) == sorted(params)
    assert {s for sections in STAGE_SECTIONS.values() for s in sections} <= set(params)
    # Every resolved stage config is read by some DVC stage, and every config a stage reads exists.
    configs = {Path(dep).stem for stage in stages.values() for dep in stage["deps"] if dep.startswith("resolved_params/")}
    assert configs == set(STAGE_SECTIONS) | {USER_DATA}


def test_scaling_and_architecture_jobs_stay_in_step(tmp_path):
    """The jobs params.yaml does not create by default (scaling curve, more architectures) drift too."""
    import shutil

    for name in ("Snakefile", "dvc.yaml", "params.yaml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    for name in ("workflow", "src", "data/user"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = (tmp_path / "params.yaml").read_text()
    params = re.sub(r"(?m)^(architectures:.*\n- nafnet\n)", r"\1- swin\n", params, count=1)
    params = params.replace("scaling_counts: []", "scaling_counts: [0, 8]", 1)
    (tmp_path / "params.yaml").write_text(params)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "-q"], cwd=tmp_path, check=True)
    jobs, stages = snakemake_jobs(tmp_path), dvc_stages(tmp_path)
    expected = {"train_restorer@swin-gends", "evaluate@swin-existing", "select_pairs_scaling@8",
                "train_restorer_scaling@0", "evaluate_scaling@8"}
    assert expected <= set(stages)
    assert set(jobs) - {"all"} == set(stages) - {"resolve_params"}
    for name in expected:
        assert normalise_shell(jobs[name]["shell"]) == stages[name]["cmd"], name
        assert sorted(jobs[name]["output"]) == stages[name]["outs"], name
    assert "--arch nafnet" in stages["train_restorer_scaling@8"]["cmd"]
    assert "metrics/scaling/8.json" in jobs["report"]["input"]
