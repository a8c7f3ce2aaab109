"""The jobs Snakemake and DVC make of a project folder, in one shape, for the tests that compare them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

JOB_HEADER = re.compile(r"^(?:local)?rule (\w+):$")
STAND_INS = {"resolve_params"}  # the dry-run stand-in for a resolved config params.yaml changes (common.smk)


def snakemake_jobs(root: Path) -> dict[str, dict]:
    """Every job of a forced dry run (inputs, outputs, shell command), named as DVC names its jobs
    (`stage@value` for foreach, `stage@value1-value2` for matrix)."""
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
            current["shell"] = " ".join(line.split(":", 1)[1].split())
            suffix = "@" + "-".join(current["wildcards"].values()) if current["wildcards"] else ""
            if current["rule"] not in STAND_INS:
                jobs[current["rule"] + suffix] = current
            current = None
    return jobs


def dvc_stages(root: Path) -> dict[str, dict]:
    """Every expanded dvc.yaml stage: command, file dependencies, params, outputs."""
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


def dag_project(root: Path, tmp_path: Path, edit=None) -> Path:
    """A copy of what both tools read (Snakefile, dvc.yaml, params.yaml, workflow/, src/), params edited by
    `edit(text) -> text`, in a fresh git + DVC repository."""
    for name in ("Snakefile", "dvc.yaml", "params.yaml"):
        shutil.copy2(root / name, tmp_path / name)
    for name in ("workflow", "src", "data/user"):
        shutil.copytree(root / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    if edit is not None:
        (tmp_path / "params.yaml").write_text(edit((tmp_path / "params.yaml").read_text()))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path
