"""What users' own commands do to params.yaml: `dvc exp run -S` rewrites it with DVC's writer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, smoke_project

from gendeg.pipeline.config import ConfigError, load_params, resolve, write_resolved


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


def dvc_override(path, override: str) -> None:
    """Exactly what `dvc exp run -S <override>` does to the file (dvc.repo.experiments.queue.base._update_params)."""
    from dvc.utils.hydra import apply_overrides

    apply_overrides(str(path), [override])


@pytest.mark.parametrize("override, line", [
    ("restorer.train.lr=0.001", "    lr: 0.001\n"),
    ("seed=3", "seed: 3\n"),
    ("presets.paper.gendeg.train.steps=5", "        steps: 5         # CHANGE: your budget\n"),
    ("presets.smoke.restorer.train.steps=3", "        steps: 3\n"),
])
def test_dvc_exp_set_param_changes_only_the_line_it_sets(tmp_path, override, line):
    path = project_params(tmp_path, commit=False)
    before = path.read_text().splitlines(keepends=True)
    dvc_override(path, override)
    after = path.read_text().splitlines(keepends=True)
    changed = [(old, new) for old, new in zip(before, after) if old != new]
    assert len(after) == len(before) and len(changed) == 1, changed
    assert changed[0][1] == line


def test_a_refused_set_param_under_dvc_exp_leaves_params_yaml_as_committed(tmp_path, monkeypatch):
    path = project_params(tmp_path, preset="smoke")
    committed = path.read_bytes()
    dvc_override(path, "restorer.train.lr=0.5")  # not shadowed: stays
    kept = path.read_bytes()
    dvc_override(path, "restorer.train.steps=2000")  # shadowed by presets.smoke.restorer.train.steps
    monkeypatch.setenv("DVC_EXP_NAME", "exp-test")
    with pytest.raises(ConfigError, match="restorer.train.steps: 2000"):
        write_resolved(path, tmp_path / "resolved")
    assert path.read_bytes() == kept != committed


def test_a_refused_user_edit_outside_dvc_exp_is_reported_not_undone(tmp_path, monkeypatch):
    path = project_params(tmp_path, preset="smoke")
    dvc_override(path, "restorer.train.steps=2000")
    edited = path.read_bytes()
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    with pytest.raises(ConfigError, match="restorer.train.steps: 2000"):
        write_resolved(path, tmp_path / "resolved")
    assert path.read_bytes() == edited


def test_snakemake_dry_run_refuses_the_edit_a_real_run_refuses(tmp_path):
    env = smoke_project(tmp_path, exclude=("tests/", "benchmarks/", "docs/"))
    dvc_override(tmp_path / "params.yaml", "restorer.train.steps=2000")  # shadowed under the smoke preset
    done = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "--cores", "1"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0, done.stdout[-2000:]
    assert "presets.smoke.restorer.train.steps" in done.stdout + done.stderr


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


# --- MLflow: what `mlflow ui` needs to compare runs -------------------------------------------------


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """A fresh project store at its default place (<root>/mlflow.db), the root a git repository."""
    from gendeg.pipeline import tracking

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "params.yaml")
    git(tmp_path, "commit", "-qm", "params")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    monkeypatch.setenv("GENDEG_PROJECT_ROOT", str(tmp_path))
    monkeypatch.setattr(tracking, "_GIT", None)
    return tmp_path


def client_for(root):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def fake_restorer_and_evaluation(tracking, job: str, psnr: float):
    import numpy as np

    with tracking.job_run("train_restorer", f"train_restorer:{job}") as run:
        run.set_tags(tracking.restorer_tags(job, {"arch": "nafnet", "train_set": job.split("-")[1]}))
        run.log_image(np.zeros((4, 4, 3)), "train_samples.png")
        restorer = run.run_id
    with tracking.job_run("evaluate", f"evaluate:{job}") as run:
        run.set_tags(tracking.restorer_tags(job, {"arch": "nafnet", "train_set": job.split("-")[1]}))
        run.log_metrics({"ood.mean_psnr": psnr, "ood.mean_ssim": 0.5, "ood.haze.psnr": 1.0, "ood.mean_psnr_gain": 1.0})
        evaluation = run.run_id
    return restorer, evaluation


def test_mlflow_opens_on_the_comparison(store, monkeypatch):
    """Model-training experiment, short distinct names, headline metrics sorted first,
    the parent's description and GenDS gain, labelled grids."""
    import numpy as np

    from gendeg.pipeline import tracking

    parent = tracking.start_parent("snakemake (default)", tags={"gendeg.orchestrator": "snakemake"})
    monkeypatch.setenv(tracking.PARENT_ENV, parent)
    ids = {job: fake_restorer_and_evaluation(tracking, job, psnr)
           for job, psnr in (("nafnet-existing", 20.0), ("nafnet-gends", 21.5))}
    with tracking.job_run("report", "report") as run:
        run.log_image(np.full((8, 24, 3), 0.5), "samples.png", columns=["input", "restored", "target"], rows=["ORD"])
        tracking.summarise_parent(run, "| restorer | psnr |", {"nafnet": 1.5})
        report = run.run_id
    client = client_for(store)
    experiment = client.get_experiment_by_name("gendeg")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(experiment.tags["mlflow.sharedViewState.gendeg"])  # what make mlflow-ui opens
    assert view["selectedColumns"][0] == "metrics.`headline.ood_psnr`"
    names = {job: client.get_run(restorer).info.run_name for job, (restorer, _) in ids.items()}
    assert names == {"nafnet-existing": "nafnet · existing", "nafnet-gends": "nafnet · gends"}
    assert client.get_run(ids["nafnet-gends"][1]).info.run_name == "nafnet · gends · eval"
    gends = client.get_run(ids["nafnet-gends"][0]).data.metrics
    assert sorted(gends)[:3] == ["headline.ood_psnr", "headline.psnr_gain_over_existing", "headline.psnr_gain_over_input"]
    assert gends["headline.ood_psnr"] == 21.5 and gends["headline.psnr_gain_over_existing"] == 1.5
    top = client.get_run(parent)
    assert top.data.tags["mlflow.note.content"] == "| restorer | psnr |"
    assert top.data.metrics["headline.gends_gain.nafnet"] == 1.5
    from PIL import Image

    local = client.download_artifacts(report, "samples.png", str(store))
    labelled = np.asarray(Image.open(local).convert("L"))
    assert labelled.shape[0] > 8 and labelled.shape[1] > 24 and labelled.min() < 64  # bands with dark text


def test_parent_params_git_commit_and_linked_evaluation(store, monkeypatch):
    from gendeg.pipeline import tracking

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=store, capture_output=True, text=True).stdout.strip()
    parent = tracking.start_parent("snakemake (default)", tags={"gendeg.orchestrator": "snakemake"})
    monkeypatch.setenv(tracking.PARENT_ENV, parent)
    ids = {job: fake_restorer_and_evaluation(tracking, job, psnr)
           for job, psnr in (("nafnet-existing", 20.0), ("nafnet-gends", 21.5))}
    tracking.end_parent(parent, success=True)

    client = client_for(store)
    top = client.get_run(parent)
    assert top.data.params["restorer.train.steps"] == "600" and top.data.params["preset"] == "default"
    assert top.data.metrics == {"ood.mean_psnr.nafnet-existing": 20.0, "ood.mean_psnr.nafnet-gends": 21.5}
    for job, (restorer, evaluation) in ids.items():
        trained, scored = client.get_run(restorer), client.get_run(evaluation)
        for run in (top, trained, scored):
            assert run.data.tags["mlflow.source.git.commit"] == commit
        assert scored.data.tags["gendeg.restorer_run_id"] == restorer
        assert scored.data.tags["gendeg.restorer_run_link"] == "same parent"
        assert trained.data.tags["gendeg.evaluate_run_id"] == evaluation
        assert trained.data.tags["gendeg.training_set"] == scored.data.tags["gendeg.training_set"] == job.split("-")[1]
        assert trained.data.metrics["ood.mean_psnr"] == top.data.metrics[f"ood.mean_psnr.{job}"]
        assert "ood.haze.psnr" not in trained.data.metrics  # only the headline metrics are copied
    # same-named images across jobs: what MLflow's compare view pairs up
    names = [{a.path for a in client.list_artifacts(r)} for r, _ in ids.values()]
    assert names[0] == names[1] == {"train_samples.png"}


def test_dvc_exp_runs_get_one_parent_named_after_the_experiment(store, monkeypatch):
    from gendeg.pipeline import tracking

    monkeypatch.setenv("DVC_EXP_NAME", "tuned-steps")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0123456789abcdef")
    for name in ("prepare", "train_gendeg"):
        with tracking.job_run(name, name):
            pass
    client = client_for(store)
    runs = client.search_runs([tracking.init_store()])
    parents = [r for r in runs if r.data.tags.get("gendeg.orchestrator") == "dvc exp"]
    assert len(parents) == 1 and parents[0].info.run_name == "dvc exp tuned-steps"
    assert parents[0].info.status == "FINISHED" and parents[0].data.tags["gendeg.dvc_exp"] == "tuned-steps"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.info.run_name for r in children) == ["prepare", "train_gendeg"]
    assert all(r.data.tags["gendeg.dvc_exp"] == "tuned-steps" for r in children)


def test_a_moved_project_finds_its_images(store, tmp_path_factory, monkeypatch):
    import shutil

    import numpy as np

    from gendeg.pipeline import tracking

    with tracking.job_run("report", "report") as run:
        run.log_image(np.ones((4, 4, 3)), "samples.png")
        run_id = run.run_id
    moved = tmp_path_factory.mktemp("moved") / "project"
    shutil.copytree(store, moved)
    shutil.rmtree(store / "mlruns")  # the old place is gone
    monkeypatch.setenv("GENDEG_PROJECT_ROOT", str(moved))
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # mlflow.set_tracking_uri exported the old store's URI
    tracking.init_store()
    client = client_for(moved)
    uri = client.get_run(run_id).info.artifact_uri
    assert uri.startswith((moved / "mlruns").as_uri() + "/")
    local = client.download_artifacts(run_id, "samples.png", str(tmp_path_factory.mktemp("dl")))
    assert Path(local).is_file()


# --- DVC: the headline metrics table and the plots, rendered offline ----------------------------------


def _fake_job_metrics(psnr: float) -> dict:
    row = {"psnr": psnr, "ssim": 0.5, "psnr_gain": 1.0, "input_psnr": 10.0}
    return {"ood": {"per_set": {"ood-haze": row, "ood-rain": {**row, "psnr": psnr + 1}},
                    "per_degradation": {"haze": row, "rain": {**row, "psnr": psnr + 1}}}}


def test_dvc_shows_headline_metrics_and_overlaid_plots_offline(tmp_path):
    import shutil

    from gendeg.pipeline.dvc_views import made_on, offline_template, vega_bundles, write_dvc_views

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    git(tmp_path, "init", "-q")
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, env=env, check=True)
    for name in ("dvc.yaml", "params.yaml", ".dvc/plots/restorers_bars.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    jobs = [{"job": f"nafnet-{s}", "arch": "nafnet", "train_set": s} for s in ("existing", "gends")]
    summary = {"mean_ood_psnr": {"nafnet-existing": 20.0, "nafnet-gends": 21.25}, "gain_db": {"nafnet": 1.25},
               "in_distribution_psnr": {"nafnet-existing": 25.0, "nafnet-gends": 24.5}, "scaling_mean_ood_psnr": {}}
    write_dvc_views(summary, jobs, {"nafnet-existing": _fake_job_metrics(20.0), "nafnet-gends": _fake_job_metrics(21.0)},
                    tmp_path / "reports")

    def dvc_json(*args):
        done = subprocess.run(["dvc", *args, "--json"], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    shown = dvc_json("metrics", "show")
    assert shown[""]["data"]["reports/metrics.json"]["data"] == {
        "ood_psnr": {"nafnet-existing": 20.0, "nafnet-gends": 21.25}, "gain_db": {"nafnet": 1.25},
        "id_psnr": {"nafnet-existing": 25.0, "nafnet-gends": 24.5}, "made_on": made_on()}
    assert "torch CPU capability" in made_on()  # the baseline says which CPU made it
    plots = dvc_json("plots", "show")["data"]
    specs = {name: entries[0]["content"] for name, entries in plots.items()}
    assert set(specs) == {"reports/plots/ood_per_set.csv", "reports/plots/ood_per_degradation.csv"}
    for spec in specs.values():  # an axis that shows sub-dB gaps: not stacked from 0 dB
        assert spec["encoding"]["x"]["scale"] == {"zero": False} and spec["encoding"]["x"]["stack"] is None
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the specs were checked, not rendered")
    (tmp_path / "specs.json").write_text(json.dumps(specs))
    done = subprocess.run(["node", str(ROOT / "tests" / "render_vega.js"), str(vega_bundles()[0].parents[1]),
                           str(tmp_path / "specs.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    svgs = json.loads(done.stdout)
    # one bar per (restorer, set): both restorers in the same chart, the numeric field on the numeric axis
    labels = {name: re.findall(r'aria-label="([^"]*)"', svg) for name, svg in svgs.items()}
    for job, psnr in (("nafnet-existing", 20), ("nafnet-gends", 21), ("(unrestored input)", 10)):
        assert any(f"axis not from 0): {psnr}; dataset: ood-haze; restorer: {job};" in label
                   for label in labels["reports/plots/ood_per_set.csv"]), labels["reports/plots/ood_per_set.csv"][:12]
        assert any(f"axis not from 0): {psnr + (job[0] != '(')}; degradation: rain; restorer: {job};" in label
                   for label in labels["reports/plots/ood_per_degradation.csv"])
    page = offline_template()
    assert "{plot_divs}" in page and "{scripts}" not in page and "<script src=" not in page


# --- accelerate launch on CPU: N processes, or a clear error ----------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, smoke_params):
    from conftest import stage_workspace

    with stage_workspace(tmp_path_factory.mktemp("launch")) as root:
        yield root, smoke_params


@pytest.fixture(scope="module")
def restorer_job(workdir, prepared):
    """A 6-step restorer job as the CLI runs it (the torchrun test in test_stages.py does the same)."""
    from gendeg.pipeline.config import stage_config
    from gendeg.stages.select_pairs import select_pairs

    _, params = workdir
    pairs = Path("data/training_sets/existing.csv")
    select_pairs("existing", prepared, pairs)
    config = stage_config(params, "train_restorer")
    config["restorer"]["train"].update(steps=6, checkpoint_every=3)
    Path("resolved_params").mkdir(exist_ok=True)
    Path("resolved_params/launch.json").write_text(json.dumps(config))
    return ["-m", "gendeg.cli", "--threads", "1", "--log-file", "logs/launch.log", "--benchmark", "logs/launch.tsv",
            "train-restorer", "--config", "resolved_params/launch.json", "--arch", "nafnet", "--train-set", "existing",
            "--pairs", str(pairs), "--job", "accelerate-test"]


def test_accelerate_launch_multi_gpu_runs_two_cpu_processes(workdir, restorer_job):
    import mlflow

    accelerate = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                  "--main_process_port", "29523"]
    done = subprocess.run(accelerate + restorer_job + ["--out", "models/acc", "--checkpoints", "checkpoints/acc"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    assert Path("logs/launch.log.rank1").exists(), "no second process"
    runs = mlflow.MlflowClient().search_runs([mlflow.get_experiment_by_name("gendeg").experiment_id],
                                             "attributes.run_name = 'accelerate · test'")
    assert len(runs) == 1, f"{len(runs)} MLflow runs for one job"
    subprocess.run([sys.executable] + restorer_job + ["--out", "models/one", "--checkpoints", "checkpoints/one"],
                   check=True, capture_output=True)
    assert Path("models/acc/model.safetensors").read_bytes() != Path("models/one/model.safetensors").read_bytes()


def test_accelerate_launch_cpu_with_several_processes_is_refused(workdir, restorer_job):
    accelerate = [str(Path(sys.executable).parent / "accelerate"), "launch", "--cpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                  "--main_process_port", "29524"]
    done = subprocess.run(accelerate + restorer_job + ["--out", "models/cpu", "--checkpoints", "checkpoints/cpu"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "started ONE process" in done.stdout + done.stderr and "--multi_gpu" in done.stdout + done.stderr
    assert not Path("models/cpu").exists()


@pytest.mark.parametrize(("environ", "refused"), [
    ({"ACCELERATE_USE_CPU": "True", "MASTER_PORT": "29500"}, True),  # accelerate launch --cpu --num_processes 2
    ({"ACCELERATE_USE_CPU": "True"}, False),  # accelerate launch --cpu (one process asked for)
    ({"ACCELERATE_USE_CPU": "True", "MASTER_PORT": "29500", "PMI_SIZE": "2"}, False),  # --mpirun_hostfile
    ({"MASTER_PORT": "29500", "RANK": "0", "WORLD_SIZE": "2"}, False),  # torchrun / --multi_gpu
])
def test_check_launch(environ, refused):
    from gendeg.runtime.distributed import LaunchError, check_launch

    if refused:
        with pytest.raises(LaunchError):
            check_launch(environ)
    else:
        check_launch(environ)


# --- progress of running jobs in the terminal ----------------------------------------------------------


def test_a_logged_job_reports_status_lines_to_the_terminal(monkeypatch, tmp_path):
    import time

    from gendeg.runtime import progress

    read, write = os.pipe()
    monkeypatch.setenv("GENDEG_STATUS_EVERY", "0.05")
    monkeypatch.setattr(progress, "_console", write)
    log = (tmp_path / "job.log").open("w")
    for _ in progress.progress(range(20), desc="train restorer (nafnet-gends)", mininterval=0, file=log):
        time.sleep(0.02)
    os.close(write)
    lines = os.fdopen(read).read().splitlines()
    assert len(lines) >= 3, lines
    assert all("train restorer (nafnet-gends): " in line for line in lines)
    assert re.search(r"\d+/20 \d+% [\d.]+ it/s ETA \d+:\d\d:\d\d$", lines[0]), lines[0]
    assert lines[-1].endswith("done, 20 in 0:00:00")
    log.close()
    assert "20/20" in (tmp_path / "job.log").read_text()  # the log keeps the bar


def test_status_lines_follow_the_status_interval_not_the_log_interval(monkeypatch, tmp_path):
    """A job shorter than the log's 20 s refresh still reports when GENDEG_STATUS_EVERY is shorter."""
    import time

    from gendeg.runtime import progress

    read, write = os.pipe()
    monkeypatch.setenv("GENDEG_STATUS_EVERY", "0.05")
    monkeypatch.setattr(progress, "_console", write)
    with (tmp_path / "job.log").open("w") as log:
        for _ in progress.progress(range(10), desc="synthesize haze", file=log):  # tqdm's own mininterval
            time.sleep(0.03)
    os.close(write)
    lines = os.fdopen(read).read().splitlines()
    assert any(re.search(r"\d+/10 \d+% .* ETA ", line) for line in lines), lines


def test_no_status_lines_without_a_log(monkeypatch):
    from gendeg.runtime import progress

    monkeypatch.setattr(progress, "_console", None)
    bar = progress.progress(range(3), desc="x")
    assert not bar._report
    list(bar)


def test_a_short_job_reports_its_eta_before_it_ends(monkeypatch, tmp_path):
    """The first status line (with an ETA) comes FIRST_STATUS_AFTER seconds in, not
    after the 20 s interval, so every training and synthesis job says when it will end."""
    import time

    from gendeg.runtime import progress

    read, write = os.pipe()
    monkeypatch.delenv("GENDEG_STATUS_EVERY", raising=False)  # the default 20 s
    monkeypatch.setattr(progress, "FIRST_STATUS_AFTER", 0.1)
    monkeypatch.setattr(progress, "_console", write)
    with (tmp_path / "job.log").open("w") as log:
        for _ in progress.progress(range(10), desc="train restorer (nafnet-gends)", file=log):
            time.sleep(0.03)
    os.close(write)
    lines = os.fdopen(read).read().splitlines()
    assert re.search(r"\d/10 \d+% [\d.]+ it/s ETA \d+:\d\d:\d\d$", lines[0]), lines
    assert lines[-1].endswith("done, 10 in 0:00:00") and len(lines) == 2, lines


def test_a_restorer_job_that_fails_its_input_checks_is_named_with_its_architecture(tmp_path):
    """The FAILED run of `gendeg train-restorer` without --job was `train_restorer:gends`."""
    import mlflow

    from gendeg.pipeline import tracking

    gendeg = Path(sys.executable).parent / "gendeg"
    done = subprocess.run([str(gendeg), "--log", "logs/t.log", "train-restorer", "--config", "missing.json", "--arch",
                           "nafnet", "--train-set", "gends", "--pairs", "p.csv", "--out", "models/r"], cwd=tmp_path,
                          capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode != 0
    client = mlflow.MlflowClient(tracking.tracking_uri())
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`gendeg.stage` = 'train_restorer' and "
                              "attributes.status = 'FAILED'", order_by=["attributes.start_time DESC"], max_results=1)
    assert runs and runs[0].info.run_name == "nafnet · gends"
    assert "missing.json" in runs[0].data.tags["gendeg.error"]
