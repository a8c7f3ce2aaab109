"""Shared fixtures: an isolated MLflow store, one torch thread, the smoke configuration."""

from __future__ import annotations

import os
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
