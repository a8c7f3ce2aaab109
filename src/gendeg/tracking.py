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

from gendeg.distributed import is_main_process

EXPERIMENT = "gendeg"
PARENT_ENV = "GENDEG_PARENT_RUN_ID"
_RETRIES = 8


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
    if experiment is not None:
        return experiment.experiment_id
    artifacts = (project_root() / "mlruns").as_uri()
    return client.create_experiment(EXPERIMENT, artifact_location=artifacts)


def start_parent(name: str, tags: dict | None = None) -> str:
    """Open the parent run of a pipeline invocation and return its id."""
    mlflow = _mlflow()
    experiment_id = init_store()
    run = _retry(mlflow.MlflowClient().create_run, experiment_id, run_name=name, tags=tags or {})
    return run.info.run_id


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

    def log_image(self, image: np.ndarray, name: str) -> None:
        _retry(self._client.log_image, self.run_id, np.clip(image, 0, 1), artifact_file=name)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        _retry(self._client.log_artifact, self.run_id, str(path), folder)

    def set_tags(self, tags: dict) -> None:
        for key, value in tags.items():
            _retry(self._client.set_tag, self.run_id, key, str(value))


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
    if not is_main_process():
        yield SilentRun()
        return
    mlflow = _mlflow()
    experiment_id = init_store()
    parent = os.environ.get(PARENT_ENV)
    tags = {"gendeg.stage": stage}
    if parent:
        tags["mlflow.parentRunId"] = parent
    client = mlflow.MlflowClient()
    run = _retry(client.create_run, experiment_id, run_name=name, tags=tags)
    job = JobRun(mlflow, run.info.run_id)
    if config is not None:
        job.log_params(config)
    try:
        yield job
    except BaseException:
        _retry(client.set_terminated, job.run_id, "FAILED")
        raise
    _retry(client.set_terminated, job.run_id, "FINISHED")
