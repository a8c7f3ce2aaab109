"""Headless-Chromium screenshots of what a user looks at: the DVC plots page and MLflow's compare view.

    python benchmarks/screenshots.py --project <finished run> --out docs/img

In the project folder of a finished `snakemake` run it renders `python -m gendeg.pipeline.dvc_views
show` (the offline plots page) and, through `mlflow server` on the run's `mlflow.db`, the compare
view of the last invocation's restorer runs, their run list, the parent run (the headline as
its description) and a restorer's labelled sample grid; each PNG is checked not to be blank.  Needs Debian's
`chromium` (`apt-get install chromium`).  `user_journeys.py --screenshots DIR` uses the same
functions on its smoke clone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    raise SystemExit("screenshots need headless Chromium: apt-get install chromium")


def take(url: str, out: Path, size: tuple[int, int]) -> int:
    """Save what Chromium renders at `url`; the number of distinct colours, >64 or an error (a blank page)."""
    from PIL import Image

    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=30000", f"--screenshot={out}", url],
                   check=True, capture_output=True, timeout=300)
    colours = Image.open(out).convert("RGB").getcolors(maxcolors=1 << 16)
    count = len(colours) if colours is not None else 1 << 16
    if count <= 64:
        raise RuntimeError(f"{out}: the page at {url} rendered blank ({count} colours)")
    return count


def compare_url(base: str, run_ids: list[str], experiment_id: str) -> str:
    """MLflow's compare view of these runs (the UI's own hash route)."""
    return (f"{base}/#/compare-runs?runs={json.dumps(run_ids, separators=(',', ':'))}"
            f"&experiments={json.dumps([experiment_id])}")


@contextlib.contextmanager
def mlflow_server(project: Path, port: int, env: dict | None = None):
    """`mlflow server` on the project's store; yields its base URL once it answers."""
    server = subprocess.Popen([str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{project}/mlflow.db",
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], cwd=project,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):  # ~30 s to start on 2 busy cores
            try:
                urllib.request.urlopen(f"{base}/health", timeout=5).read()
                break
            except OSError:
                time.sleep(1)
        else:
            raise RuntimeError("mlflow server did not answer")
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def api(base: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def experiment(base: str) -> dict:
    """The project's MLflow experiment (`gendeg`)."""
    return api(base, "/api/2.0/mlflow/experiments/get-by-name?" + urllib.parse.urlencode(
        {"experiment_name": "gendeg"}))["experiment"]


def search(base: str, experiment_id: str, filter_string: str) -> list[dict]:
    """Runs of the experiment matching an MLflow filter string, as the UI's search box takes it."""
    return api(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id], "filter": filter_string,
                                                      "max_results": 500}).get("runs", [])


def runs_url(base: str, experiment_id: str) -> str:
    """The experiment's run list as `make mlflow-ui` opens it (MLflow 3's "Model training" view, the
    shared view gendeg.pipeline.tracking.RUNS_VIEW: restorer runs, headline metrics as columns)."""
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey=gendeg&workflowType=machine_learning"


def run_url(base: str, experiment_id: str, run_id: str, artifact: str | None = None) -> str:
    """One run's page: its overview (description, metrics), or one of its artifacts."""
    return (f"{base}/#/experiments/{experiment_id}/runs/{run_id}" + (f"/artifacts/{artifact}" if artifact else "")
            + "?workflowType=machine_learning")


def mlflow_views(base: str, out: Path) -> dict[str, int]:
    """What a user opens after `make mlflow-ui`: the restorer runs, their comparison, the parent run
    (its description is the headline table), the report's labelled sample grid.  PNG name -> colours."""
    eid, runs = restorer_runs(base)
    parent = search(base, eid, f"attributes.run_id = '{runs[0]}'")[0]["data"]["tags"]
    parent_id = next(t["value"] for t in parent if t["key"] == "mlflow.parentRunId")
    report = search(base, eid, f"tags.`gendeg.stage` = 'report' and tags.`mlflow.parentRunId` = '{parent_id}'")
    views = {"mlflow_runs.png": (runs_url(base, eid), (1600, 900)),
             "mlflow_compare.png": (compare_url(base, runs, eid), (1400, 2050)),
             "mlflow_parent.png": (run_url(base, eid, parent_id), (1400, 1100))}
    if report:
        views["mlflow_samples.png"] = (run_url(base, eid, report[0]["info"]["run_id"], "samples.png"), (1400, 1300))
    return {name: take(url, out / name, size) for name, (url, size) in views.items()}


def restorer_runs(base: str) -> tuple[str, list[str]]:
    """The experiment id and the restorer runs of the last `snakemake` invocation."""
    eid = experiment(base)["experiment_id"]
    parents = search(base, eid, "tags.`gendeg.orchestrator` = 'snakemake'")
    if not parents:
        raise RuntimeError("no snakemake parent run in this project's mlflow.db")
    parent = max(parents, key=lambda r: r["info"]["start_time"])["info"]["run_id"]
    runs = search(base, eid, f"tags.`gendeg.stage` = 'train_restorer' and tags.`mlflow.parentRunId` = '{parent}'")
    return eid, sorted(r["info"]["run_id"] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, required=True, help="a project folder after `snakemake`")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--port", type=int, default=5078)
    args = parser.parse_args()
    chromium()
    project, out = args.project.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "plots"
        shown = subprocess.run([str(BIN / "python"), "-m", "gendeg.pipeline.dvc_views", "show", "-o", str(page)],
                               cwd=project, capture_output=True, text=True,
                               env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})  # dvc from this environment
        if shown.returncode != 0:
            raise SystemExit(f"dvc_views show failed in {project}:\n{shown.stdout}{shown.stderr}")
        print("dvc_plots.png", take((page / "index.html").as_uri(), out / "dvc_plots.png", (1400, 1000)), "colours")
    with mlflow_server(project, args.port) as base:
        for name, colours in mlflow_views(base, out).items():
            print(name, colours, "colours")


if __name__ == "__main__":
    main()
