"""GPUs as a Snakemake resource: the rules that run a network declare `gpu`, a local run never
puts more GPU jobs on this machine's card than `--resources gpu` allows, a rule given N GPUs uses
N (train_gendeg under `accelerate launch`) or refuses them, and the shipped profiles agree with
the rules and with the SLURM executor.  All through dry runs: no GPU needed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

SNAKEMAKE = Path(sys.executable).parent / "snakemake"
GPU_RULES = {"train_gendeg", "train_structure_correction", "synthesize", "train_classifier", "train_restorer",
             "evaluate"}  # the stage table's gpu=True stages with their own resource settings
MULTI_PROCESS_RULES = {"train_gendeg"}  # launched on N processes when given N GPUs
PROFILES = ROOT / "profiles"


def dry_run(*args: str, gpus: str) -> subprocess.CompletedProcess:
    """`snakemake -n --forceall ...` on a machine showing `gpus` (CUDA_VISIBLE_DEVICES)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpus}
    return subprocess.run([str(SNAKEMAKE), "-n", "--forceall", "--printshellcmds", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def jobs(done: subprocess.CompletedProcess) -> list[dict]:
    """Rule, resources and shell command of every job a dry run lists."""
    assert done.returncode == 0, done.stdout + done.stderr
    found, current = [], None
    for line in done.stdout.splitlines():
        header = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if header:
            current = {"rule": header.group(1), "resources": {}, "shell": ""}
            found.append(current)
        elif current is not None and line.strip().startswith("resources:"):
            pairs = (item.split("=", 1) for item in line.split(":", 1)[1].split(", "))
            current["resources"] = {key.strip(): value.strip() for key, value in pairs}
        elif current is not None and line.startswith("Shell command:"):
            current["shell"] = line.split(":", 1)[1].strip()
    return found


def gpus_by_rule(listed: list[dict]) -> dict[str, set]:
    by_rule: dict[str, set] = {}
    for job in listed:
        by_rule.setdefault(job["rule"], set()).add(job["resources"].get("gpu"))
    return by_rule


def test_gpu_rules_declare_one_gpu_on_a_gpu_machine_and_none_on_a_cpu_one():
    on_gpu = gpus_by_rule(jobs(dry_run("--cores", "8", "--resources", "gpu=1", gpus="0")))
    assert {rule: on_gpu[rule] for rule in GPU_RULES} == {rule: {"1"} for rule in GPU_RULES}
    assert on_gpu["prepare"] == on_gpu["merge"] == {None}  # CPU-only rules never wait for the card
    on_cpu = gpus_by_rule(jobs(dry_run("--cores", "8", gpus="")))
    # Declared 0: a CPU machine runs these jobs side by side, as it always has.
    assert {rule: on_cpu[rule] for rule in GPU_RULES} == {rule: {"0"} for rule in GPU_RULES}


def test_a_rule_given_n_gpus_trains_on_n_processes_if_the_machine_allows_n():
    listed = jobs(dry_run("--cores", "8", "--resources", "gpu=2", "--set-resources", "train_gendeg:gpu=2", gpus="0,1"))
    [train] = [job for job in listed if job["rule"] == "train_gendeg"]
    assert train["resources"]["gpu"] == "2"
    assert train["shell"].startswith("accelerate launch --multi_gpu --num_processes 2 -m gendeg.cli "
                                     "--log-file logs/train_gendeg.log --benchmark logs/benchmarks/train_gendeg.tsv "
                                     "train-gendeg --config resolved_params/train_gendeg.json")
    # Without --resources, a local run allows one GPU job at a time: the request is cut to one card.
    listed = jobs(dry_run("--cores", "8", "--set-resources", "train_gendeg:gpu=2", gpus="0,1"))
    [train] = [job for job in listed if job["rule"] == "train_gendeg"]
    assert train["resources"]["gpu"] == "1" and train["shell"].startswith("gendeg --log logs/train_gendeg.log ")


def test_a_one_process_rule_given_several_gpus_is_an_error():
    done = dry_run("--cores", "8", "--resources", "gpu=2", "--set-resources", "synthesize:gpu=2", gpus="0,1")
    assert done.returncode != 0 and "synthesis.shards" in done.stdout + done.stderr


def test_the_slurm_profile_gives_gpus_to_its_gpu_rules_only():
    """Also on a submit host with a card: there the rules' GPUs come from the profile alone."""
    by_rule = gpus_by_rule(jobs(dry_run("--profile", "profiles/slurm", gpus="0")))
    profile = set_resources("slurm")
    for rule, gpus in by_rule.items():
        expected = str(profile[rule]["gpu"]) if "gpu" in profile.get(rule, {}) else ("0" if rule in GPU_RULES else None)
        assert gpus == {expected}, rule


def set_resources(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text()).get("set-resources") or {}


def workflow_rules() -> set[str]:
    from gendeg.pipeline.stage_table import STAGES

    return {stage.name for stage in STAGES}


@pytest.mark.parametrize("name", ["default", "slurm", "slurm-site"])
def test_profiles_name_existing_rules_and_ask_for_gpus_the_way_the_executor_accepts(name):
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm.validation import get_forbidden_slurm_options

    class Job:
        def __init__(self, resources):
            self.resources = type("Resources", (dict,), {"__getattr__": dict.get})(resources)

    resources = set_resources(name)
    assert set(resources) <= workflow_rules()
    for rule, settings in resources.items():
        extra = str(settings.get("slurm_extra", ""))
        forbidden = [option for pattern, option in get_forbidden_slurm_options().items() if re.search(pattern, extra)]
        assert not forbidden, f"{name}: {rule}: slurm_extra asks for {forbidden}, which the executor refuses"
        gpus = settings.get("gpu", 0)
        assert isinstance(gpus, int) and gpus >= 0, (rule, gpus)
        assert gpus <= 1 or rule in MULTI_PROCESS_RULES, f"{name}: {rule} uses one GPU per job, asked for {gpus}"
        assert set_gres_string(Job({"gpu": gpus})) == (f" --gpus={gpus}" if gpus else "")


def test_the_slurm_profile_puts_every_gpu_rule_on_a_gpu_and_the_site_file_overrides_them_all():
    shipped, site = set_resources("slurm"), set_resources("slurm-site")
    on_gpus = {rule for rule, settings in shipped.items() if settings.get("gpu")}
    assert GPU_RULES <= on_gpus  # train_structure_correction too: 100-step sampling on a CPU node was hours
    assert all(shipped[rule]["slurm_partition"] == "gpu" for rule in on_gpus)
    # The site file describes the CPU-only cluster of .ci/slurm_smoke.sh: no rule may ask it for a GPU.
    assert on_gpus <= set(site) and all(site[rule]["gpu"] == 0 for rule in on_gpus)
