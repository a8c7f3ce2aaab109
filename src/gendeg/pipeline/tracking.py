"""MLflow tracking: one parent run per pipeline invocation, one child run per job.

The store is SQLite at an absolute path (default: <project root>/mlflow.db) with artifacts in
<project root>/mlruns.  A fresh SQLite store crashes when two jobs create it at once, so the
orchestrator calls `init_store` (and `start_parent`) before parallel jobs start; each job
finds its parent through the GENDEG_PARENT_RUN_ID environment variable.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from gendeg.runtime.distributed import check_launch, is_main_process

EXPERIMENT = "gendeg"
PARENT_ENV = "GENDEG_PARENT_RUN_ID"
_RETRIES = 8
# Metrics of an evaluate run copied onto its restorer run and (per job) onto the parent, so that
# restorer runs compare on what matters and the parent shows the invocation's summary.
LINKED_METRICS = ("ood.mean_psnr", "ood.mean_ssim", "ood.mean_psnr_gain", "ood.mean_kid", "ood.mean_fid",
                  "ood.mean_swd", "id.psnr", "id.ssim")
PARENT_METRIC = "ood.mean_psnr"
# MLflow's UI lists metric keys alphabetically; these aliases, first in every list, are what a restorer
# run is compared on: OOD PSNR, its gain over the unrestored input, and (GenDS runs) the gain over the
# same architecture trained on the existing pairs only.
HEADLINE_ALIASES = {"ood.mean_psnr": "headline.ood_psnr", "ood.mean_psnr_gain": "headline.psnr_gain_over_input"}
GENDS_GAIN = "headline.psnr_gain_over_existing"
# MLflow 3 files an experiment by this tag: "custom_model_development" opens its "Model training" view
# (runs, metrics, compare) instead of the GenAI screens (traces, judges, prompts).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
# The run list `make mlflow-ui` opens (#/experiments/<id>/runs?viewStateShareKey=gendeg): MLflow's
# shared-view mechanism (an experiment tag `mlflow.sharedViewState.<key>` holding the view as JSON)
# shows the restorer runs, one group per job, with the headline metrics as columns.
VIEW_KEY = "gendeg"
RUNS_VIEW = json.dumps({
    "searchFilter": "tags.`gendeg.stage` = 'train_restorer'", "orderByKey": "attributes.start_time", "orderByAsc": False,
    "selectedColumns": ["metrics.`headline.ood_psnr`", "metrics.`headline.psnr_gain_over_input`",
                        "metrics.`headline.psnr_gain_over_existing`"],
    "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": "gendeg.job"}]}})


def project_root() -> Path:
    return Path(os.environ.get("GENDEG_PROJECT_ROOT", Path.cwd())).resolve()


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return uri if uri else f"sqlite:///{project_root() / 'mlflow.db'}"


def _mlflow():
    # Imported lazily: MLflow costs seconds to import and most helpers never need it.
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def _retry(call, *args, **kwargs):
    """SQLite allows one writer; parallel jobs can meet 'database is locked'.  Retry, then raise."""
    for attempt in range(_RETRIES):
        try:
            return call(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - only lock errors are retried
            if "locked" not in str(error).lower() or attempt == _RETRIES - 1:
                raise
            time.sleep(0.25 * 2**attempt)


def init_store() -> str:
    """Create the store and the experiment (idempotent); return the experiment id."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    artifacts = (project_root() / "mlruns").as_uri()
    if experiment is not None:
        if experiment.artifact_location != artifacts:
            relocate_artifacts(experiment.artifact_location, artifacts)
        for key, value in _experiment_tags().items():  # a store made before these tags
            if experiment.tags.get(key) != value:
                _retry(client.set_experiment_tag, experiment.experiment_id, key, value)
        return experiment.experiment_id
    return client.create_experiment(EXPERIMENT, artifact_location=artifacts, tags=_experiment_tags())


def _experiment_tags() -> dict[str, str]:
    return {EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1], f"mlflow.sharedViewState.{VIEW_KEY}": RUNS_VIEW}


def relocate_artifacts(old: str, new: str) -> int:
    """Point the store's artifact URIs at this project's mlruns/ after the project moved; return runs changed.

    Why: MLflow's SQLite store records absolute artifact URIs (a relative location is made
    absolute at experiment creation, mlflow.utils.uri.resolve_uri_if_local) and has no API to
    change them, so a copied or moved project would lose every image.  Only the project's
    own store (sqlite:///<root>/mlflow.db) with an old location ending in /mlruns is rewritten.
    """
    uri = tracking_uri()
    default = f"sqlite:///{project_root() / 'mlflow.db'}"
    if uri != default or not old.startswith("file://") or not old.rstrip("/").endswith("/mlruns"):
        return 0
    import sqlite3

    with sqlite3.connect(project_root() / "mlflow.db", timeout=30) as db:
        db.execute("UPDATE experiments SET artifact_location = ? WHERE artifact_location = ?", (new, old))
        changed = db.execute("UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                             "WHERE substr(artifact_uri, 1, ?) = ?", (new, len(old) + 1, len(old) + 1, old + "/")).rowcount
    print(f"MLflow: artifact locations moved from {old} to {new} ({changed} runs)")
    return changed


_GIT: dict | None = None


# Tracked files the pipeline itself rewrites (DVC's lock, the committed report): a job that is
# rewriting them does not make the project's code or parameters differ from the commit.
PIPELINE_WRITES = ("dvc.lock", "reports")


def git_tags() -> dict:
    """The commit the project's files are at (MLflow's own `mlflow.source.git.commit` tag) and whether
    tracked files other than PIPELINE_WRITES differ from it; {} outside a git repository."""
    global _GIT
    if _GIT is None:
        import subprocess

        root = project_root()
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=30)
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                    *[f":(exclude){path}" for path in PIPELINE_WRITES]], cwd=root,
                                   capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            commit = None
        if commit is None or commit.returncode != 0:
            _GIT = {}
        else:
            _GIT = {"mlflow.source.git.commit": commit.stdout.strip(), "gendeg.git_commit": commit.stdout.strip()[:12],
                    "gendeg.git_dirty": str(bool(dirty.stdout.strip())).lower()}
    return dict(_GIT)


def _dvc_exp_tags() -> dict:
    """Under `dvc exp run` DVC gives every stage the experiment's name and baseline commit."""
    name = os.environ.get("DVC_EXP_NAME")
    if not name:
        return {}
    return {"gendeg.dvc_exp": name, "gendeg.dvc_exp_baseline": os.environ.get("DVC_EXP_BASELINE_REV", "")[:12]}


# Run ids this process opened (job_run): a job that fails before opening one still gets a FAILED
# run from the CLI (gendeg.pipeline.orchestration.record_failed_job).
OPENED: list[str] = []


def owner_tags() -> dict:
    """Which process owns a run: a later invocation marks RUNNING runs whose process is gone as
    KILLED (gendeg.pipeline.orchestration.reap_dead_runs)."""
    import socket

    return {"gendeg.pid": str(os.getpid()), "gendeg.host": socket.gethostname()}


def start_parent(name: str, tags: dict | None = None) -> str:
    """Open the parent run of a pipeline invocation, with the resolved parameters, and return its id."""
    mlflow = _mlflow()
    experiment_id = init_store()
    client = mlflow.MlflowClient()
    run = _retry(client.create_run, experiment_id, run_name=name,
                 tags={**git_tags(), **_dvc_exp_tags(), **owner_tags(), **(tags or {})})
    _log_parent_params(run.info.run_id)
    return run.info.run_id


def _log_parent_params(run_id: str) -> None:
    """The parent carries the preset-resolved params.yaml, so runs compare on it without opening children."""
    from gendeg.pipeline.config import ConfigError, load_params

    try:
        resolved = load_params(project_root() / "params.yaml")
    except ConfigError:
        return  # the first job fails on the same error, naming the key
    JobRun(_mlflow(), run_id).log_params({k: v for k, v in resolved.items() if k != "presets"})


def _dvc_exp_parent(client, experiment_id: str) -> str | None:
    """The parent of the current `dvc exp run` (created by its first job; DVC runs stages one at a time)."""
    tags = _dvc_exp_tags()
    if not tags:
        return None
    name = tags["gendeg.dvc_exp"].replace("'", "")
    found = _retry(client.search_runs, [experiment_id],
                   filter_string=f"tags.`gendeg.dvc_exp` = '{name}' and tags.`gendeg.orchestrator` = 'dvc exp'",
                   max_results=1)
    if found:
        return found[0].info.run_id
    return start_parent(f"dvc exp {name}", tags={"gendeg.orchestrator": "dvc exp"})


def end_parent(run_id: str, success: bool) -> None:
    _retry(_mlflow().MlflowClient().set_terminated, run_id, "FINISHED" if success else "FAILED")


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, tuple)) else value


def flatten_params(config: dict) -> dict:
    out: dict = {}
    _flatten("", config, out)
    return out


def display_name(stage: str, name: str) -> str:
    """The run name MLflow's run list shows (it cuts names at about 20 characters): a restorer's
    training run `train_restorer:nafnet-gends@1` is `nafnet · gends · s1` (seed 1), its evaluation
    `nafnet · gends · s1 · eval`; other jobs keep `name`."""
    _, _, job = name.partition(":")
    if stage not in ("train_restorer", "evaluate") or not job:
        return name
    job, _, seed = job.partition("@")
    arch, _, train_set = job.partition("-")
    short = f"{arch} · {train_set}" if train_set else job
    short = f"{short} · s{seed}" if seed else short
    return short if stage == "train_restorer" else f"{short} · eval"


def restorer_tags(job: str, identity: dict) -> dict:
    """One spelling of a restorer's tags for its training and evaluate runs (filter on `gendeg.training_set`)."""
    names = {"train_set": "training_set"}
    return {"gendeg.job": job, **{f"gendeg.{names.get(k, k)}": v for k, v in identity.items()}}


class JobRun:
    """A child run: params, metric curves, images and files of one pipeline job."""

    def __init__(self, mlflow, run_id: str):
        self._mlflow = mlflow
        self._client = mlflow.MlflowClient()
        self.run_id = run_id

    def log_params(self, config: dict) -> None:
        from mlflow.entities import Param

        params = [Param(k, str(v)[:6000]) for k, v in sorted(flatten_params(config).items())]
        for start in range(0, len(params), 100):
            _retry(self._client.log_batch, self.run_id, params=params[start : start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        batch = [Metric(k, float(v), stamp, step or 0) for k, v in metrics.items() if np.isfinite(v)]
        if batch:
            _retry(self._client.log_batch, self.run_id, metrics=batch)

    def log_image(self, image: np.ndarray, name: str, columns: list[str] | None = None,
                  rows: list[str] | None = None) -> None:
        """Log an image; a grid gets its column and row names drawn beside it (only the MLflow copy:
        files the pipeline writes keep their bytes)."""
        image = np.clip(image, 0, 1)
        if columns or rows:
            image = labelled(image, columns or [], rows or [])
        _retry(self._client.log_image, self.run_id, image, artifact_file=name)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        _retry(self._client.log_artifact, self.run_id, str(path), folder)

    def set_tags(self, tags: dict) -> None:
        for key, value in tags.items():
            _retry(self._client.set_tag, self.run_id, key, str(value))


def labelled(image: np.ndarray, columns: list[str], rows: list[str]) -> np.ndarray:
    """`image` (H x W x 3 in [0, 1], a grid of equal cells) with a band naming each column above and
    each row at the left: in MLflow a grid says which image is the input, the restored one and the target."""
    from PIL import Image, ImageDraw, ImageFont

    grid = Image.fromarray((image * 255).round().astype(np.uint8))
    cell = grid.width / max(len(columns), 1)
    if cell < 128:  # small cells (the smoke preset's 32 px) are enlarged so that a label fits above each
        grid = grid.resize((grid.width * int(np.ceil(128 / cell)), grid.height * int(np.ceil(128 / cell))), Image.NEAREST)
    width, height = grid.size
    font = ImageFont.load_default(size=14)
    top = 24 if columns else 0
    left = (max(int(font.getlength(r)) for r in rows) + 10) if rows else 0
    canvas = Image.new("RGB", (width + left, height + top), "white")
    canvas.paste(grid, (left, top))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(columns):
        centre = left + (i + 0.5) * width / len(columns)
        draw.text((centre, top / 2), text, fill="black", font=font, anchor="mm")
    for i, text in enumerate(rows):
        draw.text((left - 4, top + (i + 0.5) * height / len(rows)), text, fill="black", font=font, anchor="rm")
    return np.asarray(canvas).astype(np.float32) / 255


def summarise_parent(run: "JobRun | SilentRun", markdown: str, gains: dict[str, float]) -> None:
    """The invocation's parent run shows its answer: `markdown` as its description (MLflow's
    `mlflow.note.content`), the GenDS gain per architecture as metrics; each GenDS restorer run of the
    same parent gets its own gain (GENDS_GAIN).  Nothing without a parent."""
    if run.run_id is None:
        return
    client = _mlflow().MlflowClient()
    own = _retry(client.get_run, run.run_id)
    parent = own.data.tags.get("mlflow.parentRunId")
    if not parent:
        return
    JobRun(_mlflow(), parent).set_tags({"mlflow.note.content": markdown})
    JobRun(_mlflow(), parent).log_metrics({f"headline.gends_gain.{arch}": gain for arch, gain in gains.items()})
    for arch, gain in gains.items():
        found = _retry(client.search_runs, [own.info.experiment_id],
                       filter_string=f"tags.`gendeg.stage` = 'train_restorer' and tags.`gendeg.job` = '{arch}-gends' "
                                     f"and tags.`mlflow.parentRunId` = '{parent}'", max_results=1000)
        for restorer in found:  # every seed's GenDS restorer
            JobRun(_mlflow(), restorer.info.run_id).log_metrics({GENDS_GAIN: gain})


class SilentRun:
    """What a non-main process of a multi-process job logs to: nothing (the main process has the run)."""

    run_id = None

    def __getattr__(self, name: str):
        if name.startswith(("log_", "set_")):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


@contextmanager
def job_run(stage: str, name: str, config: dict | None = None) -> Iterator[JobRun | SilentRun]:
    """Open a child run of the invocation's parent (or a top-level run when there is none)."""
    check_launch()  # every stage job passes here: a launcher that started too few processes stops it
    if not is_main_process():
        yield SilentRun()
        return
    mlflow = _mlflow()
    experiment_id = init_store()
    client = mlflow.MlflowClient()
    parent = os.environ.get(PARENT_ENV)
    own_parent = None  # the parent this process manages (`dvc exp run` without `gendeg track`)
    if not parent:
        parent = own_parent = _dvc_exp_parent(client, experiment_id)
    tags = {"gendeg.stage": stage, **git_tags(), **_dvc_exp_tags(), **owner_tags()}
    if parent:
        tags["mlflow.parentRunId"] = parent
    run = _retry(client.create_run, experiment_id, run_name=display_name(stage, name), tags=tags)
    OPENED.append(run.info.run_id)
    job = JobRun(mlflow, run.info.run_id)
    if config is not None:
        job.log_params(config)
    try:
        yield job
    except BaseException:
        _retry(client.set_terminated, job.run_id, "FAILED")
        if own_parent:
            _retry(client.set_terminated, own_parent, "FAILED")
        raise
    _retry(client.set_terminated, job.run_id, "FINISHED")
    if stage == "evaluate":
        link_evaluation(client, job.run_id, parent)
    if own_parent:  # finished as of its latest job (a later job of the same experiment updates it)
        _retry(client.set_terminated, own_parent, "FINISHED")


def link_evaluation(client, evaluate_run_id: str, parent: str | None) -> str | None:
    """Tie an evaluate run to the restorer run it scored; copy the headline metrics onto both that run and
    the parent (as `ood.mean_psnr.<job>`).  The restorer run is the one of the same job under the same
    parent, else the latest finished one of that job (tagged as such).  Returns its id, or None."""
    evaluated = client.get_run(evaluate_run_id)
    job = evaluated.data.tags.get("gendeg.job")
    if not job:
        return None
    metrics = {k: evaluated.data.metrics[k] for k in LINKED_METRICS if k in evaluated.data.metrics}
    if parent and PARENT_METRIC in metrics:
        JobRun(_mlflow(), parent).log_metrics({f"{PARENT_METRIC}.{job}": metrics[PARENT_METRIC]})
    query = f"tags.`gendeg.stage` = 'train_restorer' and tags.`gendeg.job` = '{job}' and attributes.status = 'FINISHED'"
    seed = evaluated.data.tags.get("gendeg.seed")
    if seed is not None:  # one restorer run per seed of the job
        query += f" and tags.`gendeg.seed` = '{seed}'"
    how = "same parent"
    found = []
    if parent:
        found = _retry(client.search_runs, [evaluated.info.experiment_id],
                       filter_string=f"{query} and tags.`mlflow.parentRunId` = '{parent}'", max_results=1)
    if not found:
        how = "latest finished run of the job"
        found = _retry(client.search_runs, [evaluated.info.experiment_id], filter_string=query,
                       order_by=["attributes.start_time DESC"], max_results=1)
    if not found:
        return None
    restorer = found[0].info.run_id
    JobRun(_mlflow(), evaluate_run_id).set_tags({"gendeg.restorer_run_id": restorer, "gendeg.restorer_run_link": how})
    linked = JobRun(_mlflow(), restorer)
    linked.set_tags({"gendeg.evaluate_run_id": evaluate_run_id})
    linked.log_metrics(metrics | {alias: metrics[key] for key, alias in HEADLINE_ALIASES.items() if key in metrics})
    return restorer
