"""Shared fixtures: an isolated MLflow store, one torch thread, the smoke configuration; the `pipeline` marker."""

from __future__ import annotations

import hashlib
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from helpers.project_copy import commit_all, copy_worktree, select_preset

ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(1)
PIPELINE_TESTS = Path(__file__).resolve().parent / "pipeline"


def pytest_collection_modifyitems(items):
    """tests/pipeline/ (stages end to end, pipelines, launchers) is marked `pipeline`: `pytest tests/unit`
    or `pytest -m "not pipeline"` is the fast subset."""
    for item in items:
        if PIPELINE_TESTS in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.pipeline)


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

    from gendeg.pipeline.config import resolve

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
    from gendeg.pipeline.config import stage_config
    from gendeg.stages.prepare import prepare

    _, params = workdir
    prepare(stage_config(params, "prepare"), Path("data/prepared"))
    return Path("data/prepared")


@pytest.fixture(scope="module")
def gendeg_model(workdir, prepared):
    from gendeg.pipeline.config import stage_config
    from gendeg.stages.train_gendeg import train_gendeg

    _, params = workdir
    train_gendeg(stage_config(params, "train_gendeg"), prepared, Path("models/gendeg"), Path("checkpoints/g"))
    return Path("models/gendeg")


def torchvision_import_error() -> str | None:
    """Why torchvision (the `perceptual` extra) cannot be used here, or None when it can."""
    try:
        import torchvision  # noqa: F401
    except Exception as error:  # noqa: BLE001 - a torchvision built for another torch raises RuntimeError
        return f"{type(error).__name__}: {error}"
    return None


TORCHVISION_ERROR = torchvision_import_error()
needs_torchvision = pytest.mark.skipif(
    TORCHVISION_ERROR is not None,
    reason=f"the perceptual extra needs a torchvision that imports beside torch {torch.__version__} "
           f"(README: 'Optional: LPIPS and Inception FID'); here: {TORCHVISION_ERROR}")


@pytest.fixture(scope="session")
def random_torch_home(tmp_path_factory) -> Path:
    """A torch_home holding randomly initialised AlexNet and Inception-v3 checkpoints under
    torchvision's own file names: the loading path of real ImageNet weights, without a download."""
    import torchvision

    from gendeg.measure.perceptual import checkpoint_files

    root = tmp_path_factory.mktemp("torch_home")
    files = checkpoint_files(root)
    files["alexnet"].parent.mkdir(parents=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save(torchvision.models.alexnet().state_dict(), files["alexnet"])
        inception = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
        # Untrained BatchNorm statistics make every image's features vanish to ~1e-7; one
        # train-mode pass with a cumulative average gives them the scale of real inputs.
        for module in inception.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None
        with torch.no_grad():
            inception.train()(torch.rand(6, 3, 299, 299))
        torch.save(inception.state_dict(), files["inception_v3"])
    return root



def smoke_project(root: Path, exclude: tuple[str, ...] = ()) -> dict:
    """Copy the project's files (tracked and untracked-but-not-ignored, minus `exclude` prefixes) into
    `root`, select the smoke preset, commit it as a fresh git repository; returns the environment
    to run its tools in (this interpreter's bin first, no inherited MLflow store)."""
    copy_worktree(root, exclude)
    select_preset(root, "smoke")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GENDEG_PROJECT_ROOT")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "test"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "test@example.org"
    commit_all(root, "project", "test")
    return env
