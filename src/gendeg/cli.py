"""`gendeg <stage> ...`: the one entry point Snakemake rules and DVC stages call.

Each subcommand reads its resolved stage config (resolved_params/<stage>.json), takes its
input and output paths as arguments, and calls one stage function.  Nothing else.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback
from contextlib import nullcontext
from pathlib import Path

from gendeg.data.ingest import IngestError
from gendeg.data.manifest import ManifestError
from gendeg.intensity.stats import IntensityStatsError
from gendeg.pipeline.built import forget, record
from gendeg.pipeline.config import ConfigError, read_stage_config, write_resolved
from gendeg.pipeline.orchestration import PipelineBusy, job_lock
from gendeg.restorers.common import RestorerConfigError
from gendeg.runtime.distributed import is_main_process, process_index
from gendeg.runtime.progress import set_console


def _set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def _job_threads(args) -> int | None:
    """The job's torch threads: `threads` of its resolved config (params.yaml `threads:`), so a
    result's thread count is a recorded parameter and the same under Snakemake and DVC.
    --threads serves commands without a config and may not contradict one."""
    config = getattr(args, "config", None)
    if config is None or not Path(config).exists():
        return args.threads
    configured = read_stage_config(config).get("threads")
    if configured is None:
        return args.threads
    if args.threads is not None and args.threads != configured:
        raise ConfigError(f"--threads {args.threads} contradicts threads: {configured} in {config}; "
                          f"set the thread count in params.yaml (threads:), where both orchestrators read it")
    return configured


def cmd_resolve_params(args) -> None:
    from gendeg.pipeline.config import load_params
    from gendeg.pipeline.orchestration import preflight

    preflight(load_params(args.params), str(args.params))  # DVC's first stage: fail before any work
    for path in write_resolved(args.params, args.out):
        print(f"updated {path}")


def cmd_prepare(args) -> None:
    from gendeg.stages.prepare import prepare

    prepare(read_stage_config(args.config), args.out, args.work)


def cmd_train_gendeg(args) -> None:
    from gendeg.stages.train_gendeg import train_gendeg

    train_gendeg(read_stage_config(args.config), args.prepared, args.out, args.checkpoints)


def cmd_train_structure_correction(args) -> None:
    from gendeg.stages.train_structure_correction import train_structure_correction

    train_structure_correction(read_stage_config(args.config), args.prepared, args.gendeg, args.out, args.checkpoints)


def cmd_synthesize(args) -> None:
    from gendeg.stages.synthesize import synthesize

    synthesize(read_stage_config(args.config), args.prepared, args.model, args.degradation, args.out, args.work,
               structure_correction_dir=args.structure_correction, shard=args.shard)


def cmd_merge(args) -> None:
    from gendeg.stages.merge import merge

    config = read_stage_config(args.config)
    root = args.synthetic_root
    merge(config, args.prepared, [root / d / f"shard-{k}" for d in config["degradations"]
                                  for k in config["synthesis"]["shards"]], args.out)


def cmd_train_classifier(args) -> None:
    from gendeg.stages.train_classifier import train_classifier

    train_classifier(read_stage_config(args.config), args.prepared, args.out)


def cmd_select_pairs(args) -> None:
    from gendeg.stages.select_pairs import select_pairs

    select_pairs(args.train_set, args.data, args.out, args.generated_per_degradation, args.work, args.threads)


def cmd_train_restorer(args) -> None:
    from gendeg.stages.train_restorer import train_restorer

    train_restorer(read_stage_config(args.config), args.arch, args.train_set, args.pairs, args.out, args.checkpoints,
                   name=args.job)


def cmd_evaluate(args) -> None:
    from gendeg.stages.evaluate import evaluate

    evaluate(read_stage_config(args.config), args.job, args.model, args.classifier, args.prepared, args.out_json,
             args.out_csv)


def cmd_report(args) -> None:
    from gendeg.stages.report import report, restorer_jobs

    config = read_stage_config(args.config)
    jobs = restorer_jobs(config, args.metrics_dir, args.models_dir)
    scaling = {n: args.metrics_dir / "scaling" / f"{n}.json" for n in config["scaling_counts"]}
    report(config, jobs, scaling, args.prepared, args.out)


def cmd_comparison(args) -> None:
    from gendeg.pipeline.config import COMPARISONS, set_comparison

    changed = set_comparison(args.params, args.name)
    wanted = COMPARISONS[args.name]
    print(f"{args.params}: " + (", ".join(f"{k} = {wanted[k]}" for k in changed) if changed else "already set") +
          f" ({args.name} comparison)")


def cmd_tracking(args) -> None:
    from gendeg.pipeline import tracking

    from gendeg.pipeline.orchestration import create_store

    print(f"MLflow store {tracking.tracking_uri()}, experiment id {create_store()}")


def cmd_track(args) -> int:
    """Run a command (e.g. `dvc repro`) under one parent MLflow run, as Snakemake's onstart does."""
    from gendeg.pipeline import tracking

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise SystemExit("usage: gendeg track -- COMMAND ...")
    if Path("params.yaml").exists() and Path("dvc.yaml").exists():
        # `dvc repro` re-runs resolve_params only when params.yaml changes; refreshing here (under
        # the project lock) also lets it see changed user data files (resolved_params/user_data.json).
        from gendeg.pipeline.orchestration import hold_project_lock, release_project_lock

        hold_project_lock(".")
        try:
            write_resolved("params.yaml", "resolved_params")
        finally:
            release_project_lock()
    from gendeg.pipeline.orchestration import create_store, reap_dead_runs

    create_store()
    reaped = reap_dead_runs()
    if reaped:
        print(f"MLflow: marked {len(reaped)} run(s) of killed invocations KILLED")
    run_id = tracking.start_parent(" ".join(command))
    code = subprocess.call(command, env={**os.environ, tracking.PARENT_ENV: run_id})
    tracking.end_parent(run_id, success=code == 0)
    if code == 0:
        from gendeg.pipeline.answer import final_lines

        print("\n".join(final_lines(".")))  # the run's answer, last (gendeg.pipeline.answer)
    return code


CHECKPOINTS_HELP = "resumable checkpoints (not an output): a killed job resumes from the latest; removed when it ends"
# Per subcommand: what it is for beyond its one-line help, and the command the pipeline runs.
STAGE_HELP = {
    "resolve-params": ("Applies the preset selected by `preset:` to params.yaml, validates every key, and writes one\n"
                       "JSON file per stage with exactly the parameters that stage reads.",
                       "gendeg resolve-params --params params.yaml --out resolved_params"),
    "prepare": ("The built-in data (no download) or your folders under data.user: existing degraded/clean\n"
                "pairs, the clean pool GenDeg degrades, the test split and the OOD sets.",
                "gendeg --log logs/prepare.log prepare --config resolved_params/prepare.json --out data/prepared "
                "--work checkpoints/prepare"),
    "train-gendeg": ("Trains the conditional diffusion model that degrades a clean image given a degradation\n"
                     "and its intensity (mu, sigma).",
                     "gendeg --log logs/train_gendeg.log train-gendeg --config resolved_params/train_gendeg.json "
                     "--prepared data/prepared --out models/gendeg --checkpoints checkpoints/train_gendeg"),
    "train-structure-correction": ("Trains S, which puts back the scene structure GenDeg's output lost; a gate\n"
                                   "decides whether synthesis applies it.",
                                   "gendeg train-structure-correction --config resolved_params/train_structure_correction.json "
                                   "--prepared data/prepared --gendeg models/gendeg --out models/structure_correction"),
    "synthesize": ("Degrades clean images with the trained GenDeg for one degradation (one shard of the\n"
                   "synthesis.shards list); resumes from --work after a kill.",
                   "gendeg synthesize --config resolved_params/synthesize.json --prepared data/prepared "
                   "--model models/gendeg --structure-correction models/structure_correction --degradation haze "
                   "--shard 0 --out data/synthetic/haze/shard-0 --work checkpoints/synthesize/haze/shard-0"),
    "merge": ("Joins the existing pairs with the generated ones that pass the intensity filter (merge.filter).",
              "gendeg merge --config resolved_params/merge.json --prepared data/prepared "
              "--synthetic-root data/synthetic --out data/gends"),
    "train-classifier": ("Its features are the space KID and FID are measured in; trained on the training split only.",
                         "gendeg train-classifier --config resolved_params/train_classifier.json --prepared data/prepared "
                         "--out models/classifier"),
    "select-pairs": ("Lists the pairs one restorer trains on, with a hash of every image (DVC and Snakemake see\n"
                     "a changed image as a changed input).",
                     "gendeg select-pairs --train-set gends --data data/gends --out data/training_sets/gends.csv "
                     "--work checkpoints/select_pairs/gends"),
    "train-restorer": ("Every architecture trains with the same step budget on each training set, so the\n"
                       "training sets compare fairly.",
                       "gendeg train-restorer --config resolved_params/train_restorer.json --arch nafnet --train-set gends "
                       "--pairs data/training_sets/gends.csv --job nafnet-gends --out models/restorer/nafnet/gends "
                       "--checkpoints checkpoints/train_restorer/nafnet/gends"),
    "evaluate": ("Scores a restorer on the held-out OOD sets and the in-distribution test split, beside the\n"
                 "unrestored input; its MLflow run is linked to the restorer's training run.",
                 "gendeg evaluate --config resolved_params/evaluate.json --job nafnet-gends "
                 "--model models/restorer/nafnet/gends --classifier models/classifier --prepared data/prepared "
                 "--out-json metrics/nafnet/gends.json --out-csv metrics/nafnet/gends_per_set.csv"),
    "report": ("Writes reports/report.md (headline, tables, plots, samples) and the files `dvc metrics` and\n"
               "`dvc plots` read.",
               "gendeg report --config resolved_params/report.json --metrics-dir metrics --models-dir models/restorer "
               "--prepared data/prepared --out reports"),
    "comparison": ("Rewrites three keys of params.yaml (architectures, training_sets, scaling_counts).",
                   "gendeg comparison full"),
    "tracking": ("Snakemake and `gendeg track` call it before jobs start in parallel (a fresh SQLite store\n"
                 "must be created by one process).", "gendeg tracking init"),
    "track": ("One MLflow parent run holds the runs of every job the command starts; prints the\n"
              "headline when the command succeeds.", "gendeg track -- dvc repro"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gendeg", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of a command without --config (a stage reads `threads` from its config)")
    # --log-file: the spelling to use under `accelerate launch` / torchrun, whose own --log_dir
    # option makes a bare --log ambiguous to their argument parsers.
    parser.add_argument("--log", "--log-file", dest="log", type=Path, default=None,
                        help="write stdout and stderr to this file")
    parser.add_argument("--benchmark", type=Path, default=None, help="write wall time and peak memory here (TSV)")
    sub = parser.add_subparsers(dest="command_name", required=True)

    def stage(name: str, func, help_text: str) -> argparse.ArgumentParser:
        description, example = STAGE_HELP[name]
        p = sub.add_parser(name, help=help_text, description=f"{help_text[0].upper()}{help_text[1:]}.\n\n{description}",
                           epilog=f"example (as the pipeline runs it):\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        if name not in ("resolve-params", "tracking", "track", "select-pairs", "comparison"):
            p.add_argument("--config", type=Path, required=True,
                           help="the stage's resolved parameters, resolved_params/<stage>.json (gendeg resolve-params)")
        return p

    p = stage("resolve-params", cmd_resolve_params, "apply the preset and write resolved_params/<stage>.json")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="the parameter file (default: params.yaml)")
    p.add_argument("--out", type=Path, default=Path("resolved_params"),
                   help="folder for <stage>.json (default: resolved_params); a file is rewritten only when it changes")

    p = stage("prepare", cmd_prepare, "build or ingest the existing pairs, clean pool, test and OOD sets")
    p.add_argument("--out", type=Path, required=True, help="output folder: train/test/ood manifests and images")
    p.add_argument("--work", type=Path, default=None,
                   help="work folder (not an output): measured (mu, sigma) kept for a re-run or a resumed killed run")

    p = stage("train-gendeg", cmd_train_gendeg, "train the degradation-synthesis diffusion model")
    p.add_argument("--prepared", type=Path, required=True, help="output of `gendeg prepare` (data/prepared)")
    p.add_argument("--out", type=Path, required=True, help="output folder of the trained model (models/gendeg)")
    p.add_argument("--checkpoints", type=Path, default=None, help=CHECKPOINTS_HELP)

    p = stage("train-structure-correction", cmd_train_structure_correction,
              "train the structure-correction network S on frozen-GenDeg outputs of real pairs")
    p.add_argument("--prepared", type=Path, required=True, help="output of `gendeg prepare` (data/prepared)")
    p.add_argument("--gendeg", type=Path, required=True, help="trained GenDeg folder (frozen)")
    p.add_argument("--out", type=Path, required=True, help="output folder of S and its gate decision (models/structure_correction)")
    p.add_argument("--checkpoints", type=Path, default=None, help=CHECKPOINTS_HELP)

    p = stage("synthesize", cmd_synthesize, "generate degraded images for one degradation")
    p.add_argument("--prepared", type=Path, required=True, help="output of `gendeg prepare`: its clean pool is degraded")
    p.add_argument("--model", type=Path, required=True, help="trained GenDeg folder (models/gendeg)")
    p.add_argument("--structure-correction", type=Path, default=None, help="S folder (applied where it is enabled)")
    p.add_argument("--degradation", required=True, help="one of `degradations:` in params.yaml, e.g. haze")
    p.add_argument("--shard", type=int, default=0, help="which of synthesis.shards this job generates")
    p.add_argument("--out", type=Path, required=True, help="output folder: images and manifest of this shard")
    p.add_argument("--work", type=Path, required=True, help="resumable work folder (not an output)")

    p = stage("merge", cmd_merge, "existing + filtered generated pairs = GenDS")
    p.add_argument("--prepared", type=Path, required=True, help="output of `gendeg prepare` (the existing pairs)")
    p.add_argument("--synthetic-root", type=Path, required=True,
                   help="folder holding <degradation>/shard-<k>/, one synthesis output per degradation and shard")
    p.add_argument("--out", type=Path, required=True, help="output folder of GenDS (data/gends)")

    p = stage("train-classifier", cmd_train_classifier, "train the frozen degradation classifier whose features KID / FID use (training split only)")
    p.add_argument("--prepared", type=Path, required=True, help="output of `gendeg prepare` (data/prepared)")
    p.add_argument("--out", type=Path, required=True, help="output folder of the classifier (models/classifier)")

    p = stage("select-pairs", cmd_select_pairs, "the pairs of one training set, with image hashes")
    p.add_argument("--train-set", required=True, choices=["existing", "gends", "gendeg", "oracle"],
                   help="the training set (params.yaml training_sets:)")
    p.add_argument("--data", type=Path, required=True, help="the set's data folder (data/prepared or data/gends)")
    p.add_argument("--generated-per-degradation", type=int, default=None,
                   help="keep only the first N generated pairs of each degradation (scaling curve)")
    p.add_argument("--out", type=Path, required=True, help="output pair list (data/training_sets/<set>.csv)")
    p.add_argument("--work", type=Path, default=None,
                   help="work folder (not an output; one per job): image hashes kept for a re-run or a resumed "
                        "killed run; files are hashed on `gendeg --threads N` threads (default: usable cores + 4)")

    p = stage("train-restorer", cmd_train_restorer, "train an all-in-one restorer on one training set")
    p.add_argument("--arch", required=True, help="an architecture with settings under restorer.model")
    p.add_argument("--train-set", required=True, help="the training set's name, recorded with the model (e.g. gends)")
    p.add_argument("--pairs", type=Path, required=True, help="data/training_sets/<set>.csv (stage select_pairs)")
    p.add_argument("--job", default=None, help="job label for logs and MLflow (default <arch>-<set>)")
    p.add_argument("--out", type=Path, required=True, help="output folder of the restorer (models/restorer/<arch>/<set>)")
    p.add_argument("--checkpoints", type=Path, default=None, help=CHECKPOINTS_HELP)

    p = stage("evaluate", cmd_evaluate, "PSNR/SSIM and KID/FID/SWD of a restorer on the OOD and in-distribution sets")
    p.add_argument("--job", required=True, help="label of the restorer job, e.g. nafnet-gends")
    p.add_argument("--model", type=Path, required=True, help="the restorer folder (stage train_restorer)")
    p.add_argument("--classifier", type=Path, required=True, help="feature network folder (stage train_classifier)")
    p.add_argument("--prepared", type=Path, required=True, help="output of `gendeg prepare`: its test and OOD sets are scored")
    p.add_argument("--out-json", type=Path, required=True, help="output summary (metrics/<arch>/<set>.json)")
    p.add_argument("--out-csv", type=Path, required=True, help="output per-set table (metrics/<arch>/<set>_per_set.csv)")

    p = stage("report", cmd_report, "tables, plots and sample grids")
    p.add_argument("--metrics-dir", type=Path, required=True, help="holds <arch>/<training set>.json and scaling/<n>.json")
    p.add_argument("--models-dir", type=Path, required=True, help="holds <arch>/<training set>/ restorer folders")
    p.add_argument("--prepared", type=Path, required=True, help="output of `gendeg prepare` (the sample grid's images)")
    p.add_argument("--out", type=Path, required=True, help="output folder: report.md, plots, metrics.json (reports)")

    p = stage("comparison", cmd_comparison,
              "set architectures / training_sets / scaling_counts in params.yaml for the default or full comparison")
    p.add_argument("name", choices=["default", "full"], help="default: one architecture, two training sets; "
                   "full: the paper's three architectures, four training sets and the scaling curve")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="the parameter file to edit (default: params.yaml)")

    p = stage("tracking", cmd_tracking, "create the MLflow store and experiment (before parallel jobs start)")
    p.add_argument("action", choices=["init"], help="init: create the store, or point a moved project's artifact paths here")

    p = stage("track", cmd_track, "run a command under one MLflow parent run: gendeg track -- dvc repro")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command to run after `--`, e.g. dvc repro")
    return parser


def _redirect_to_log(path: Path) -> int:
    """Send this process's stdout and stderr (Python and native) to `path`; return the old stderr.

    Both orchestrators call the same command with the same --log, so logs/ looks the same
    after `snakemake` and after `dvc repro`.  The other processes of a multi-process job
    (`gendeg.runtime.distributed`) log beside it, to <log>.rank<N>.
    """
    if not is_main_process():
        path = path.with_name(f"{path.name}.rank{process_index()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    console = os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    return console


def _write_benchmark(path: Path, seconds: float) -> None:
    """A Snakemake-style benchmark TSV, also when the job runs under DVC.

    Snakemake counts a job's benchmark file among its outputs; a job re-run by `dvc repro`
    must refresh it too, or Snakemake would think the job out of date.
    """
    import resource

    from gendeg.runtime.atomic import write_text

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    usage = resource.getrusage(resource.RUSAGE_SELF)
    clock = f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{seconds % 60:06.3f}"
    write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{seconds:.4f}\t{clock}\t{rss_mb:.2f}\t{usage.ru_utime + usage.ru_stime:.2f}\n", path)


# Subcommand -> MLflow stage name, for the commands a pipeline job runs.
_JOB_STAGES = {"prepare": "prepare", "train-gendeg": "train_gendeg", "train-structure-correction": "train_structure_correction",
               "synthesize": "synthesize", "merge": "merge", "train-classifier": "train_classifier",
               "select-pairs": "select_pairs", "train-restorer": "train_restorer", "evaluate": "evaluate",
               "report": "report"}


def _job_outputs(args) -> list[Path]:
    """The outputs a pipeline job writes (its DVC stage's `outs:`): --out, or evaluate's --out-json and --out-csv."""
    if args.command_name not in _JOB_STAGES:
        return []
    return [path for path in (getattr(args, "out", None), getattr(args, "out_json", None),
                              getattr(args, "out_csv", None)) if path is not None]


def _open_store() -> None:
    """The MLflow store, created under a lock, and predecessors' dead runs marked KILLED
    (gendeg.pipeline.orchestration.open_store_for_job); the job's own run says if MLflow is unusable."""
    from gendeg.pipeline.orchestration import open_store_for_job

    try:
        reaped = open_store_for_job()
    except Exception as error:  # noqa: BLE001 - the job opens its run later and fails there, with MLflow's reason
        print(f"MLflow: could not prepare the store before the job: {error}", file=sys.stderr)
        return
    if reaped:
        print(f"MLflow: marked {len(reaped)} run(s) whose process was gone KILLED")


def _record_failure(args) -> None:
    """Every job that started ends with an MLflow run: one that failed before opening its own gets a FAILED one."""
    from gendeg.pipeline import tracking
    from gendeg.pipeline.orchestration import record_failed_job

    if tracking.OPENED:
        return
    stage = _JOB_STAGES[args.command_name]
    restorer = "-".join(filter(None, (getattr(args, "arch", None), getattr(args, "train_set", None))))
    label = getattr(args, "job", None) or getattr(args, "degradation", None) or restorer or None
    reason = ""
    if args.log and args.log.exists():
        reason = "".join(args.log.read_text(errors="replace").splitlines(keepends=True)[-25:])
    try:  # named as the job's own run would be (`nafnet · gends`), architecture included
        record_failed_job(stage, tracking.display_name(stage, f"{stage}:{label}") if label else stage,
                          reason or "failed before its run opened")
    except Exception as error:  # noqa: BLE001 - the job's own failure is what the exit status reports
        print(f"gendeg {args.command_name}: could not record the failure in MLflow: {error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = _redirect_to_log(args.log) if args.log else None
    set_console(console)  # running bars report one line at a time to the terminal (gendeg.runtime.progress)
    started = time.perf_counter()
    try:
        _set_threads(_job_threads(args))
        # One writer per output: a second copy of a job (beside an orphan of a killed
        # orchestrator, or a second `dvc repro`) fails here instead of racing the first.
        out = getattr(args, "out", None) or getattr(args, "out_json", None)
        with job_lock(out) if out is not None and is_main_process() else nullcontext():
            built = _job_outputs(args) if is_main_process() else []
            forget(built)  # a job that fails or is killed leaves no record of its outputs
            if args.command_name in _JOB_STAGES and is_main_process():
                _open_store()
            started_ns = time.time_ns()
            code = args.func(args) or 0
            if code == 0 and built:  # what this job built, for dvc.lock (gendeg.pipeline.built)
                record(built, started_ns, sys.argv if argv is None else ["gendeg", *argv])
    except (ConfigError, ManifestError, IngestError, IntensityStatsError, RestorerConfigError, PipelineBusy) as error:
        print(f"gendeg {args.command_name}: {error}", file=sys.stderr)
        code = 2
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    if code != 0 and is_main_process() and args.command_name in _JOB_STAGES:
        _record_failure(args)
    if code == 0 and args.benchmark and is_main_process():
        _write_benchmark(args.benchmark, time.perf_counter() - started)
    if console is not None and code != 0:
        tail = "".join(args.log.read_text(errors="replace").splitlines(keepends=True)[-25:])
        os.write(console, f"gendeg {args.command_name} failed; log {args.log} ends with:\n{tail}".encode())
    return code


if __name__ == "__main__":
    sys.exit(main())
