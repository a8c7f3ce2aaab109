# Helpers shared by the rules: resolved parameters, wildcards, MLflow parent run, DVC sync.
import os
import subprocess
from pathlib import Path

from gendeg import tracking
from gendeg.config import ConfigError, load_params, write_resolved

os.environ.setdefault("GENDEG_PROJECT_ROOT", str(Path(workflow.basedir).resolve()))

# Each stage reads resolved_params/<stage>.json, rewritten only when its content changes:
# Snakemake's mtime check then re-runs exactly the stages whose parameters changed.
try:
    RESOLVED = load_params("params.yaml")
    write_resolved("params.yaml", "resolved_params")
except ConfigError as error:
    raise WorkflowError(str(error))

DEGRADATIONS = RESOLVED["degradations"]
ARCHITECTURES = RESOLVED["architectures"]
TRAINING_SETS = list(RESOLVED["training_sets"])
SCALING_COUNTS = RESOLVED["scaling_counts"]
SCALING_ARCH = ARCHITECTURES[0]  # the data-scaling curve trains the first architecture

wildcard_constraints:
    degradation="|".join(DEGRADATIONS),
    arch="|".join(ARCHITECTURES),
    train_set="|".join(TRAINING_SETS),
    generated=r"\d+",


def resolved(stage):
    return f"resolved_params/{stage}.json"


def stage_code(stage):
    return f"src/gendeg/stages/{stage}.py"


def training_data(wildcards):
    """The stage output a training set's pairs come from (training_sets: in params.yaml)."""
    return f"data/{RESOLVED['training_sets'][wildcards.train_set]}"


RESTORER_JOBS = [f"{arch}/{train_set}" for arch in ARCHITECTURES for train_set in TRAINING_SETS]


onstart:
    # One parent MLflow run per invocation; the store exists before parallel jobs start.
    tracking.init_store()
    os.environ[tracking.PARENT_ENV] = tracking.start_parent(f"snakemake ({RESOLVED['preset']})",
                                                            tags={"gendeg.orchestrator": "snakemake"})


onsuccess:
    tracking.end_parent(os.environ[tracking.PARENT_ENV], success=True)
    # Bring dvc.lock up to date with what Snakemake just built, without recomputing.
    if Path(".dvc").is_dir() and Path("reports").exists():
        done = subprocess.run(["dvc", "commit", "--force", "--quiet"], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"WARNING: `dvc commit` failed; dvc.lock is not in sync:\n{done.stderr}")


onerror:
    if tracking.PARENT_ENV in os.environ:
        tracking.end_parent(os.environ[tracking.PARENT_ENV], success=False)
