"""The stage table is the one statement of the pipeline's stages: dvc.yaml is what it makes, the CLI
offers what it declares, and its stages wire into one DAG."""

from __future__ import annotations

import argparse
import importlib
import inspect

import yaml
from conftest import ROOT

from gendeg.cli import build_parser
from gendeg.pipeline.config import load_params
from gendeg.pipeline.dvc_yaml import main as dvc_yaml_main
from gendeg.pipeline.dvc_yaml import render_dvc_yaml
from gendeg.pipeline.stage_table import COMMANDS, STAGE_SECTIONS, STAGES, fill, job_names, needed_files


def test_dvc_yaml_is_what_the_table_makes(capsys):
    assert (ROOT / "dvc.yaml").read_text() == render_dvc_yaml(), "run `python -m gendeg.pipeline.dvc_yaml write`"
    assert dvc_yaml_main(["check"]) == 0


def test_a_stale_dvc_yaml_is_named(tmp_path, monkeypatch, capsys):
    import gendeg.pipeline.dvc_yaml as module

    stale = tmp_path / "dvc.yaml"
    stale.write_text(render_dvc_yaml().replace("--work checkpoints/prepare", ""))
    monkeypatch.setattr(module, "DVC_YAML", stale)
    assert dvc_yaml_main(["check"]) == 1
    assert "stale" in capsys.readouterr().err


def test_every_command_calls_a_function_that_takes_its_arguments():
    for command in COMMANDS:
        module, name = command.function.split(":")
        assert (ROOT / command.code).is_file(), command.code
        parameters = inspect.signature(getattr(importlib.import_module(module), name)).parameters
        wanted = [a.param for a in command.args if a.param] + ([command.threads_param] if command.threads_param else [])
        assert set(wanted) <= set(parameters), f"{command.name}: {sorted(set(wanted) - set(parameters))}"


def test_the_cli_offers_exactly_the_table_arguments():
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command in COMMANDS:
        flags = {s for a in subparsers[command.name]._actions for s in a.option_strings} - {"-h", "--help"}
        expected = {a.flag for a in command.args} | ({"--config"} if command.sections is not None else set())
        assert flags == expected, command.name


def test_stage_configs_name_schema_sections():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "params.schema.yaml").read_text())["properties"]
    for config, sections in STAGE_SECTIONS.items():
        assert set(sections) <= set(schema), config


def test_every_job_input_is_a_source_file_or_another_job_output():
    """The table wires one DAG: under the full comparison (every stage has jobs), each file a job reads
    is made by a job, or is the code, a resolved config, or the user's data."""
    resolved = load_params(ROOT / "params.yaml")
    resolved.update(architectures=["nafnet", "swin"], scaling_counts=[0, 8], seeds=[0, 3],
                    training_sets={"existing": "prepared", "gends": "gends", "oracle": "gends"})
    made, read = set(), {}
    for stage in STAGES:
        for job, values in job_names(stage, resolved).items():
            made |= {fill(path, resolved, values) for path in stage.outputs().values()}
            read[job] = [fill(path, resolved, values) for name, path in stage.inputs().items() if name not in stage.needs]
            read[job] += needed_files(tuple(p for needs in stage.needs.values() for p in needs), resolved)
    assert len(made) == sum(len(job_names(s, resolved)) * len(s.outputs()) for s in STAGES), "two jobs write one path"
    sources = ("src/", "resolved_params/")
    unmade = {job: [p for p in paths if p not in made and not p.startswith(sources)] for job, paths in read.items()}
    assert not any(unmade.values()), {job: paths for job, paths in unmade.items() if paths}


def test_the_report_finds_each_restorer_where_the_table_puts_it():
    """report_from_dirs lays jobs out under --metrics-dir / --models-dir: the paths the table's jobs write."""
    from gendeg.pipeline.stage_table import stage
    from gendeg.stages.report import restorer_jobs

    resolved = load_params(ROOT / "params.yaml")
    resolved.update(architectures=["nafnet", "swin"], seeds=[0, 3])
    jobs = restorer_jobs(resolved, "metrics", "models/restorer")
    evaluated = [fill(stage("evaluate").outputs()["out_json"], resolved, v)
                 for v in job_names(stage("evaluate"), resolved).values()]
    trained = [fill(stage("train_restorer").outputs()["out"], resolved, v)
               for v in job_names(stage("train_restorer"), resolved).values()]
    assert sorted(str(j["metrics"]) for j in jobs) == sorted(evaluated)
    assert sorted(str(j["model"]) for j in jobs) == sorted(trained)
