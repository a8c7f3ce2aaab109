"""End to end: the smoke preset through Snakemake, then the DVC behaviour users rely on.

In a temporary git repository holding the project's files:
1. `snakemake --cores 2` builds every declared output, logs, benchmarks and MLflow runs;
2. `dvc repro` then has nothing to do (Snakemake's onsuccess committed the DVC lock);
3. editing one restorer parameter re-runs only restorer training, evaluation and report;
4. after that `snakemake -n` has nothing to do;
5. `snakemake --report` renders every report figure with its caption.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import smoke_project

pytestmark = pytest.mark.e2e

DEGRADATIONS = ["haze", "rain", "snow", "motion_blur", "low_light", "raindrop"]
TRAINING_SETS = ["existing", "gends"]
ARCH = "nafnet"  # architectures: [nafnet] by default


def run(command: list[str], cwd: Path, env: dict, timeout: int = 900) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((cwd / "logs").rglob("*.log")))
        raise AssertionError(f"{' '.join(command)} failed ({done.returncode}):\n{output[-6000:]}\n{logs}")
    return output


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A fresh repository with the project's files and the smoke preset selected."""
    root = tmp_path_factory.mktemp("project")
    env = smoke_project(root)
    return root, env


@pytest.fixture(scope="module")
def snakemake_run(project):
    root, env = project
    output = run(["snakemake", "--cores", "2"], root, env)
    return root, env, output


def test_every_declared_output_exists(snakemake_run):
    root, _, _ = snakemake_run
    expected = [
        "data/prepared/train.csv", "data/prepared/test.csv", "data/prepared/ood.csv", "data/prepared/clean_pool.csv",
        "data/prepared/summary.json", "models/gendeg/model.safetensors", "models/gendeg/config.json",
        "models/gendeg/preview.png", "models/structure_correction/config.json",
        "data/gends/manifest.csv", "data/gends/summary.json", "data/gends/oracle.csv",
        "reports/report.md", "reports/ood_psnr.png", "reports/ood_per_degradation.png", "reports/samples.png",
        "reports/summary.json", "models/classifier/classifier.safetensors", "models/classifier/classifier.json",
        "models/classifier/summary.json", "logs/train_classifier.log", "logs/benchmarks/train_classifier.tsv",
        "logs/prepare.log", "logs/benchmarks/prepare.tsv", "logs/report.log", "logs/benchmarks/report.tsv",
    ]
    expected += [f"data/synthetic/{d}/shard-0/manifest.csv" for d in DEGRADATIONS]
    expected += [f"logs/synthesize/{d}/shard-0.log" for d in DEGRADATIONS]
    for s in TRAINING_SETS:
        expected += [f"data/training_sets/{s}.csv", f"models/restorer/{ARCH}/{s}/seed-0/model.safetensors",
                     f"metrics/{ARCH}/{s}/seed-0.json", f"metrics/{ARCH}/{s}/seed-0_per_set.csv",
                     f"logs/train_restorer/{ARCH}/{s}/seed-0.log", f"logs/evaluate/{ARCH}/{s}/seed-0.log"]
    missing = [p for p in expected if not (root / p).exists()]
    assert not missing, missing
    assert not list(root.rglob(".*.tmp-*")), "a temporary file survived"
    assert not (root / "checkpoints" / "train_gendeg").exists(), "checkpoint left after a finished job"


def test_metrics_and_report_are_consistent(snakemake_run):
    root, _, _ = snakemake_run
    summary = json.loads((root / "reports" / "summary.json").read_text())
    for s in TRAINING_SETS:
        metrics = json.loads((root / "metrics" / ARCH / s / "seed-0.json").read_text())
        assert summary["mean_ood_psnr"][f"{ARCH}-{s}"] == pytest.approx(metrics["ood"]["mean_psnr"])
        assert len(metrics["ood"]["per_set"]) >= len(DEGRADATIONS)
        assert metrics["restorer"]["arch"] == ARCH and metrics["restorer"]["train_set"] == s
        assert metrics["ood"]["mean_kid"] is not None and metrics["ood"]["pooled"]["input_swd"] is not None
    text = (root / "reports" / "report.md").read_text()
    assert f"{ARCH} / existing" in text and "In distribution vs out of distribution" in text
    assert "Data scaling" not in text, "no scaling_counts by default, so no scaling section"
    # The project is a clean commit; the report's own committed outputs, which Snakemake removes
    # before the job runs, used to make every report say "with uncommitted changes".
    assert re.search(r"Made at commit [0-9a-f]{12} on ", text), text[-600:]



def test_mlflow_has_one_parent_and_a_child_per_job(snakemake_run):
    root, _, _ = snakemake_run
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("gendeg")
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    parents = [r for r in runs if r.data.tags.get("gendeg.orchestrator") == "snakemake"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    # prepare, train_gendeg, train_structure_correction, synthesize x6, merge, train_classifier,
    # select_pairs / train_restorer / evaluate per training set, report
    jobs = 1 + 1 + 1 + len(DEGRADATIONS) + 1 + 1 + 3 * len(TRAINING_SETS) + 1
    assert len(children) == jobs
    restorer = next(r for r in children if r.info.run_name == f"{ARCH} · gends · s0")
    assert "restorer.train.lr" in restorer.data.params
    assert len(client.get_metric_history(restorer.info.run_id, "loss")) >= 2
    assert any(a.path.endswith(".png") for a in client.list_artifacts(restorer.info.run_id))
    gendeg = next(r for r in children if r.info.run_name == "train_gendeg")
    assert any(a.path.endswith(".png") for a in client.list_artifacts(gendeg.info.run_id))


def test_dvc_agrees_then_reruns_only_what_a_restorer_edit_affects(snakemake_run):
    root, env, _ = snakemake_run
    status = run(["dvc", "status"], root, env)
    assert "up to date" in status, status
    assert "Running stage" not in run(["dvc", "repro"], root, env)

    params = root / "params.yaml"
    original = params.read_text()
    start = original.index("\nrestorer:\n")  # restorer.train.lr (structure_correction has an lr too)
    text, count = re.subn(r"(?m)^(    lr: )2\.0e-3$", r"\g<1>1.0e-3", original[start:])
    assert count == 1, "restorer.train.lr not found in params.yaml"
    params.write_text(original[:start] + text)
    output = run(["gendeg", "track", "--", "dvc", "repro"], root, env)
    ran = set(re.findall(r"Running stage '([^']+)'", output))
    expected = ({f"train_restorer@{ARCH}-{s}-0" for s in TRAINING_SETS} | {f"evaluate@{ARCH}-{s}-0" for s in TRAINING_SETS}
                | {"report"})
    assert expected <= ran, output
    assert ran - expected <= {"resolve_params"}, f"unexpected stages re-ran: {sorted(ran - expected)}"

    dry = run(["snakemake", "-n", "--cores", "2"], root, env)
    assert "Nothing to be done" in dry, dry


def test_push_clone_pull_leaves_both_tools_with_nothing_to_do(snakemake_run, tmp_path):
    """The README's sharing route: commit dvc.lock, `dvc push`; elsewhere clone, `dvc pull`,
    `snakemake --touch` (pulled files' times follow no DAG order); then nothing to re-run."""
    root, env, _ = snakemake_run
    run(["dvc", "remote", "add", "-d", "-f", "store", str(tmp_path / "remote")], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "a finished run"], root, env)
    run(["dvc", "push"], root, env)
    run(["git", "clone", "-q", str(root), str(tmp_path / "clone")], tmp_path, env)
    clone = tmp_path / "clone"
    run(["dvc", "pull"], clone, env)
    assert (clone / "resolved_params" / "train_restorer.json").read_text() == \
        (root / "resolved_params" / "train_restorer.json").read_text()
    assert "up to date" in run(["dvc", "status"], clone, env)
    lock = (clone / "dvc.lock").read_bytes()
    touched = run(["snakemake", "--touch", "--cores", "1"], clone, env)
    # A touch builds nothing, so it commits nothing to DVC (re-saving outputs would rewrite them in
    # DVC's order and undo the touch) and opens no MLflow run.
    assert "dvc.lock is left as it is" in touched and (clone / "dvc.lock").read_bytes() == lock
    assert not (clone / "mlflow.db").exists()
    dry = run(["snakemake", "-n", "--cores", "1"], clone, env)
    assert "Nothing to be done" in dry, dry
    assert "up to date" in run(["dvc", "status"], clone, env)


def test_snakemake_report_has_a_caption_per_figure(snakemake_run):
    root, env, _ = snakemake_run
    run(["snakemake", "--cores", "1", "--report", "report.html"], root, env)
    html = (root / "report.html").read_text(errors="replace")
    assert "OOD sets grouped by the degradation they show" in html
    assert "One image per OOD set" in html
