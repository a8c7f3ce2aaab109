"""Shared fixtures: an isolated MLflow store, one torch thread, the smoke configuration."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def isolated_tracking(tmp_path_factory):
    """Tests never write to the project's mlflow.db."""
    root = tmp_path_factory.mktemp("tracking")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["GENDEG_PROJECT_ROOT"] = str(root)
    os.environ.pop("GENDEG_PARENT_RUN_ID", None)
    yield root


@pytest.fixture(scope="session")
def smoke_params() -> dict:
    """params.yaml with the smoke preset applied (what the stages would read)."""
    import yaml

    from gendeg.config import resolve

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["preset"] = "smoke"
    return resolve(params)


@contextmanager
def stage_workspace(root: Path):
    """Run in `root` as the orchestrators do: stages write paths relative to the project root."""
    (root / "reference").symlink_to(ROOT / "reference")
    previous = os.getcwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(previous)


def tree_digest(folder: Path) -> dict[str, str]:
    """File name -> SHA-256 of every file under `folder`: 'same bytes' made checkable."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# The two fixtures below run inside the requesting module's own `workdir` fixture
# (a stage_workspace with the smoke parameters): smoke data and a smoke GenDeg, made once per module.
@pytest.fixture(scope="module")
def prepared(workdir):
    from gendeg.config import stage_config
    from gendeg.stages.prepare import prepare

    _, params = workdir
    prepare(stage_config(params, "prepare"), Path("data/prepared"))
    return Path("data/prepared")


@pytest.fixture(scope="module")
def gendeg_model(workdir, prepared):
    from gendeg.config import stage_config
    from gendeg.stages.train_gendeg import train_gendeg

    _, params = workdir
    train_gendeg(stage_config(params, "train_gendeg"), prepared, Path("models/gendeg"), Path("checkpoints/g"))
    return Path("models/gendeg")
