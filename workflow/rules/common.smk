# Helpers shared by the rules: resolved parameters, wildcards, MLflow parent run, DVC sync.
import os
import re
from pathlib import Path

from gendeg.pipeline import orchestration
from gendeg.pipeline.config import ConfigError, load_params, write_resolved
from gendeg.pipeline.preset_shadow import shadow_error
from gendeg.pipeline import answer, tracking
from snakemake.common import RULEFUNC_CONTEXT_MARKER

from gendeg.pipeline.stage_table import AXES, STAGES, axis_values, fill, needed_files, param_at, render

os.environ.setdefault("GENDEG_PROJECT_ROOT", str(Path(workflow.basedir).resolve()))

# Each stage reads resolved_params/<stage>.json, rewritten only when its content changes:
# Snakemake's mtime check then re-runs exactly the stages whose parameters changed.  Only an
# invocation that runs jobs writes them, holding the project lock (DVC's repository lock) for
# its whole life: a dry run writes nothing, and no second snakemake or `dvc repro` can change
# a running pipeline's inputs (docs/orchestration.md).
# What this invocation does comes from Snakemake's own parse of its command line ("run",
# "touch", or "inspect": dry run, --summary, --list, ...), never from matching spellings.
MODE = orchestration.snakemake_mode(workflow)
RUNS_JOBS = MODE != "inspect"
try:
    RESOLVED = load_params("params.yaml")
    # A dry run refuses what a real run refuses: an edit the active preset would override.
    if refused := shadow_error("params.yaml"):
        raise ConfigError(refused)
    # Setups that would fail a job hours in fail here (the component checks import torch: only
    # when jobs will run).
    orchestration.preflight(RESOLVED, components=MODE == "run")
    if MODE == "run":
        orchestration.require_gendeg_command()  # before any job: Snakemake deletes a failed job's outputs
    # An output that is no longer what the job that built it left (a file deleted or edited by hand)
    # is rebuilt, as `dvc repro` rebuilds it from its hashes (gendeg.pipeline.built).  Before the
    # lock: it asks `dvc status`.
    CHANGED_OUTPUTS = orchestration.force_changed_outputs(".", forget_restored=RUNS_JOBS) if workflow.is_main_process else []
    if RUNS_JOBS:
        orchestration.hold_project_lock(".")
        write_resolved("params.yaml", "resolved_params")
    CHANGED_STAGES = orchestration.changed_stages(RESOLVED, "resolved_params")
except (ConfigError, orchestration.PipelineBusy) as error:
    raise WorkflowError(str(error))

if CHANGED_OUTPUTS:
    logger.warning("changed since the job that built them, so rebuilt: " + ", ".join(CHANGED_OUTPUTS))

# Each axis of the stage table matches only the values params.yaml gives it (gendeg.pipeline.stage_table.AXES).
wildcard_constraints:
    **{axis: "|".join(map(re.escape, axis_values(RESOLVED, axis))) or "(?!)" for axis in AXES},


# An invocation that runs no job (dry run, --summary, --report, ...) writes nothing, yet must
# show what a real run would do.  For each resolved config params.yaml (or the user's data)
# changes, a stand-in rule makes that config older than what changed it, so its jobs and
# everything downstream are listed.
if CHANGED_STAGES and not RUNS_JOBS:
    logger.info("params.yaml or data.user's files change resolved_params/{" + ",".join(CHANGED_STAGES) + "}.json; "
                "a run that runs jobs rewrites them (listed as resolve_params jobs; nothing is written now)")

    rule resolve_params:
        """Stand-in (only in runs that run no job): params.yaml changes this resolved config."""
        conda:
            "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
        input:
            lambda wildcards: orchestration.standin_inputs(RESOLVED, wildcards.stage),
        output:
            "resolved_params/{stage}.json",
        log:
            "logs/resolve_params/{stage}.log",  # never written: the stand-in only shows in dry runs
        wildcard_constraints:
            stage="|".join(CHANGED_STAGES),
        shell:
            "gendeg resolve-params --params params.yaml --out resolved_params"


def job_threads(stage):
    """A job's cores for scheduling: its torch threads from params.yaml `threads:`, which the job
    reads from its resolved config itself (Snakemake scales `threads` down to --cores; results must not)."""
    return RESOLVED["threads"].get(stage, RESOLVED["threads"]["default"])


# GPUs are a resource: each rule that runs a network declares `gpu`, the cards its job uses.
# A cluster profile sets every GPU rule's count (set-resources; the SLURM executor turns it into
# --gpus), and a rule left out gets none.  A local run (--cores, without --jobs) gives each such
# job this machine's card, one job at a time (every job uses the first visible card), unless
# --resources gpu=N says otherwise; a machine without a GPU declares 0 and runs its jobs side by
# side as before.  Not in profiles/default: Snakemake also loads that profile beside
# `--profile profiles/slurm`, where the same cap would run a cluster's GPU jobs one at a time.
LOCAL_RUN = workflow.nodes is None


def visible_gpus():
    """CUDA devices this machine shows its jobs, counted without importing torch (every invocation
    parses this file): CUDA_VISIBLE_DEVICES where it is set, otherwise the NVIDIA driver's list."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d.strip() for d in visible.split(",")]
        return next((i for i, d in enumerate(ids) if not d or d.startswith("-")), len(ids))  # CUDA stops at -1
    driver = Path("/proc/driver/nvidia/gpus")
    return len(list(driver.iterdir())) if driver.is_dir() else 0


GPU = 1 if LOCAL_RUN and visible_gpus() else 0
if LOCAL_RUN and GPU and workflow.is_main_process and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", 1)


def gendeg_command(data_parallel=False):
    """The rule's `gendeg --log` for the GPUs its job is given (resources.gpu, from the profile).

    A data-parallel rule given N > 1 GPUs runs N processes under `accelerate launch`
    (gendeg.runtime.distributed; --log-file, which the launcher's own --log_dir would make
    ambiguous); any other rule's job uses one GPU, and a profile giving it more is an error
    rather than cards left idle."""

    def command(wildcards, resources):
        gpus = resources.get("gpu", 0)
        if gpus <= 1:
            return "gendeg --log"
        if not data_parallel:
            raise WorkflowError(f"gpu={gpus}: this rule's job uses one GPU; give it gpu=1 in the profile "
                                f"(synthesis spreads over GPUs through synthesis.shards)")
        return f"accelerate launch --multi_gpu --num_processes {gpus} -m gendeg.cli --log-file"

    return command


onstart:
    # One parent MLflow run per invocation; the store exists before parallel jobs start.
    if not workflow.touch:  # a touch builds nothing: no MLflow run, no dvc commit
        orchestration.create_store()  # under a lock: jobs of another tool may create it at once
        reaped = orchestration.reap_dead_runs()  # runs a killed invocation left RUNNING
        if reaped:
            logger.info(f"MLflow: marked {len(reaped)} run(s) of killed invocations KILLED")
        os.environ[tracking.PARENT_ENV] = tracking.start_parent(f"snakemake ({RESOLVED['preset']})",
                                                                tags={"gendeg.orchestrator": "snakemake"})


onsuccess:
    # Record in dvc.lock only the stages a job built from their current inputs, as the jobs' own
    # records say (gendeg.pipeline.built), never on Snakemake's word: an output changed outside a
    # job, or a partial target, is left for DVC to see as changed.  A failed commit fails the run.
    if workflow.touch:
        logger.info("--touch built nothing: dvc.lock is left as it is")
    elif Path(".dvc").is_dir():
        orchestration.release_project_lock()  # `dvc commit` takes the same lock
        try:
            committed, skipped = orchestration.commit_to_dvc(".")
        except Exception as error:  # DVC's own errors too: any failure leaves dvc.lock behind Snakemake
            logger.error(f"ERROR: {type(error).__name__}: {error}")
            tracking.end_parent(os.environ[tracking.PARENT_ENV], success=False)
            raise SystemExit(1)
        logger.info(f"dvc.lock: recorded {len(committed)} stages a job built from their current inputs"
                    + (f"; left {len(skipped)} for `dvc repro` / `snakemake`: {', '.join(skipped)}" if skipped else ""))
        damaged = {stage: why for stage, why in skipped.items() if why.endswith("after the job that built it")}
        if damaged:
            logger.warning("changed outside any job, not recorded (the next `snakemake` or `dvc repro` rebuilds it): "
                           + "; ".join(f"{stage}: {why}" for stage, why in damaged.items()))
    if tracking.PARENT_ENV in os.environ:
        tracking.end_parent(os.environ[tracking.PARENT_ENV], success=True)
    for line in answer.final_lines("."):  # every run ends with its answer (gendeg.pipeline.answer)
        logger.info(line)


onerror:
    if tracking.PARENT_ENV in os.environ:
        tracking.end_parent(os.environ[tracking.PARENT_ENV], success=False)


# The parts of each stage's rule (workflow/rules/stages.smk), from the stage table.
def snakemake_template(template):
    """A table template as a Snakemake path: `{axis}` stays a wildcard, `{=key}` is params.yaml's value."""
    return render(template, lambda axis: f"{{{axis}}}", None, lambda key: str(param_at(RESOLVED, key)))


def rule_inputs(stage):
    """Named inputs: paths with wildcards, a function where a path looks a key up (`{train_set.value}`),
    the list of every job's file where the argument is a folder of another stage's outputs."""
    inputs = {}
    for name, template in stage.inputs().items():
        if name in stage.needs:
            inputs[name] = needed_files(stage.needs[name], RESOLVED)
        elif ".value}" in template:
            inputs[name] = lambda wildcards, template=template: fill(template, RESOLVED, dict(wildcards))
        else:
            inputs[name] = snakemake_template(template)
    return inputs


def rule_outputs(stage):
    outputs = {}
    for arg, template in stage.bound():
        if arg.role == "outdir":
            path = directory(snakemake_template(template))
            if stage.report:
                path = report(path, **{**stage.report, "caption": f"../report/{stage.report['caption']}"})
            outputs[arg.name] = path
        elif arg.role == "out":
            outputs[arg.name] = snakemake_template(template)
    return outputs


def stage_shell(scope, stage):
    """A rule's shell command.  Snakemake evaluates a `shell:` expression twice: where the rule is
    defined (here the loop's current stage) and again in the job's run function, when the loop has
    long moved on; there its locals name the rule (`rule`), so the stage is looked up by that name."""
    if RULEFUNC_CONTEXT_MARKER in scope:
        stage = next(s for s in STAGES if s.name == scope["rule"])
    return rule_shell(stage)


def rule_shell(stage):
    """`gendeg --log ... --benchmark ... <command>`: inputs and outputs by name, the rest from the template."""

    def value(arg, template):
        if arg.role == "in" and arg.name not in stage.needs:
            return "{input.%s}" % arg.name
        if arg.role in ("out", "outdir"):
            return "{output.%s}" % arg.name
        return render(template, lambda axis: "{wildcards.%s}" % axis, None, lambda key: str(param_at(RESOLVED, key)))

    config = " --config {input.config}" if stage.command.sections is not None else ""
    benchmark = render(f"logs/benchmarks/{stage.stem}.tsv", lambda axis: "{wildcards.%s}" % axis, None, None)
    arguments = "".join(f" {arg.flag} {value(arg, template)}" for arg, template in stage.bound())
    return f"{{params.gendeg}} {{log}} --benchmark {benchmark} {stage.command.name}{config}{arguments}"
