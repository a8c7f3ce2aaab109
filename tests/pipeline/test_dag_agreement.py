"""Snakemake's rules and dvc.yaml are both rendered from the stage table; these dry runs check the two
renderings expand to the same jobs: names, commands, outputs, inputs (by default and with every axis
widened, which the default does not exercise)."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT
from helpers.dag import dag_project, dvc_stages, snakemake_jobs


def widened(text: str) -> str:
    """Two architectures, two seeds, three shards and a scaling curve."""
    text = re.sub(r"(?m)^(architectures:.*\n- nafnet\n)", r"\1- swin\n", text, count=1)
    text = re.sub(r"(?m)^(seeds:.*\n- 0\n)", r"\1- 3\n", text, count=1)
    text = text.replace("scaling_counts: []", "scaling_counts: [0, 8]", 1)
    return text.replace("  shards:\n  - 0\n", "  shards:\n  - 0\n  - 1\n  - 2\n", 1)


def covers(dep: str, path: str) -> bool:
    return path == dep or path.startswith(dep.rstrip("/") + "/")


@pytest.mark.parametrize("edit", [None, widened], ids=["default", "widened"])
def test_snakemake_and_dvc_make_the_same_jobs(tmp_path, edit):
    project = dag_project(ROOT, tmp_path, edit)
    jobs, stages = snakemake_jobs(project), dvc_stages(project)
    assert set(jobs) - {"all"} == set(stages) - {"resolve_params"}
    folder = "data/user"  # data.user.folder: DVC hashes it; Snakemake sees its files through user_data.json
    for name, stage in stages.items():
        if name == "resolve_params":
            continue
        assert jobs[name]["shell"] == stage["cmd"], name
        assert sorted(jobs[name]["output"]) == stage["outs"], name
        deps = [d for d in stage["deps"] if d != folder]
        uncovered = [i for i in jobs[name]["input"] if not any(covers(d, i) for d in deps)]
        unused = [d for d in deps if not any(covers(d, i) for i in jobs[name]["input"])]
        assert not uncovered and not unused, f"{name}: Snakemake-only {uncovered}, DVC-only {unused}"
    if edit is widened:
        assert {"train_restorer@swin-gends-3", "evaluate@nafnet-existing-3", "select_pairs_scaling@8",
                "synthesize@motion_blur-2"} <= set(stages)
        assert "--arch nafnet" in stages["train_restorer_scaling@8"]["cmd"]
        assert {"metrics/scaling/8.json", "metrics/swin/gends/seed-3.json"} <= set(jobs["report"]["input"])
        assert "data/synthetic/raindrop/shard-2" in jobs["merge"]["input"]
