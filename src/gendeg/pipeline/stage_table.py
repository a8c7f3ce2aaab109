"""The pipeline's stages, each declared once: Snakemake's rules, dvc.yaml and the `gendeg` CLI are made from this table.

A `Command` is one stage function as the CLI calls it: its arguments (paths it reads, paths it
writes, work folders, values) and the params.yaml sections of its resolved config.  A `Stage` is
one node of the DAG: a command, the axes it is expanded over (one job per degradation and shard,
per architecture and training set, ...) and the value of every argument as a path template.

- `workflow/rules/stages.smk` makes one Snakemake rule per `Stage` in a loop;
- `python -m gendeg.pipeline.dvc_yaml write` writes dvc.yaml from it (`check` fails when the
  committed file is stale: tests/unit/test_stage_table.py runs it);
- `gendeg.cli` builds one subcommand per `Command`.

Templates use `{axis}` for a job's axis value, `{axis.value}` for what params.yaml maps a
dictionary axis's key to (a training set's data folder) and `{=key[0]}` for a params.yaml
value fixed for the whole DAG (the scaling curve's architecture).  Imports nothing heavy:
every Snakemake invocation, and every cluster job, reads this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Axis -> the params.yaml key its values come from (a list, or a mapping whose keys are the values).
AXES: dict[str, str] = {"degradation": "degradations", "shard": "synthesis.shards", "arch": "architectures",
                        "train_set": "training_sets", "generated": "scaling_counts", "seed": "seeds"}
# Axes whose params.yaml value is a mapping: `{axis.value}` is what it maps the job's key to.
MAPPING_AXES = ("train_set",)
# Value an axis takes in a command's --help example.
EXAMPLE_VALUES: dict[str, str] = {"degradation": "haze", "shard": "0", "arch": "nafnet", "train_set": "gends",
                                  "generated": "10", "seed": "0"}

PATH_ROLES = ("in", "out", "outdir", "work")
CHECKPOINTS_HELP = "resumable checkpoints (not an output): a killed job resumes from the latest; removed when it ends"


@dataclass(frozen=True)
class Arg:
    """One option of a command.  role: 'in' a path read (a dependency), 'out' a file and 'outdir' a
    folder written (an output), 'work' a folder that is neither, 'value' anything else."""

    flag: str
    param: str | None  # the stage function's keyword (None: label only, not passed)
    help: str
    role: str = "value"
    type: type = str
    required: bool = True
    choices: tuple[str, ...] = ()
    default: object = None

    @property
    def name(self) -> str:
        """Its name as a Snakemake input/output and an argparse destination."""
        return self.flag.removeprefix("--").replace("-", "_")


@dataclass(frozen=True)
class Command:
    """One stage function as `gendeg <name>` calls it."""

    name: str
    function: str  # "module:function"
    help: str
    description: str
    args: tuple[Arg, ...]
    sections: tuple[str, ...] | None = None  # params.yaml sections of resolved_params/<config>.json; None: no --config
    threads_param: str | None = None  # a command without a config takes its workers from `gendeg --threads`

    @property
    def config(self) -> str:
        """Its resolved config's name (resolved_params/<config>.json), also its MLflow stage name."""
        return self.name.replace("-", "_")

    @property
    def code(self) -> str:
        return "src/" + self.function.split(":")[0].replace(".", "/") + ".py"

    def arg(self, name: str) -> Arg:
        return next(a for a in self.args if a.name == name)


@dataclass(frozen=True)
class Stage:
    """One DAG node: a command over its axes, each argument's value a template."""

    name: str
    command: Command
    doc: str
    stem: str  # logs/<stem>.log and logs/benchmarks/<stem>.tsv
    values: dict[str, str]  # Arg.name -> template
    axes: tuple[str, ...] = ()
    # 'in' Arg.name -> the (stage, output) pairs whose every job's file Snakemake waits for (a folder holding them)
    needs: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    extra_inputs: dict[str, str] = field(default_factory=dict)  # dependencies that are no argument
    dvc_only_deps: tuple[tuple[str, str], ...] = ()  # (path, why): DVC alone needs them
    gpu: bool = False  # runs a network: declares the `gpu` resource
    data_parallel: bool = False  # N GPUs -> N processes under `accelerate launch`
    priority: int = 0
    report: dict | None = None  # Snakemake report() of its output folder (caption relative to workflow/report)
    dvc_outs: dict[str, dict] = field(default_factory=dict)  # output Arg.name -> DVC out options
    comment: str = ""  # above the stage in dvc.yaml

    def __post_init__(self):
        unknown = set(self.axes) - set(AXES)
        missing = [a.name for a in self.command.args if a.required and a.name not in self.values]
        extra = set(self.values) - {a.name for a in self.command.args}
        if unknown or missing or extra:
            raise ValueError(f"stage {self.name}: unknown axes {sorted(unknown)}, arguments without a value "
                             f"{missing}, values of no argument {sorted(extra)}")

    def bound(self) -> list[tuple[Arg, str]]:
        """The command's arguments this stage gives, in the command's order."""
        return [(a, self.values[a.name]) for a in self.command.args if a.name in self.values]

    def inputs(self) -> dict[str, str]:
        """Dependencies by name: the resolved config, the stage's code, argument paths, extra inputs."""
        deps = {"config": f"resolved_params/{self.command.config}.json"} if self.command.sections is not None else {}
        deps["code"] = self.command.code
        deps.update(self.extra_inputs)
        deps.update({a.name: v for a, v in self.bound() if a.role == "in"})
        return deps

    def outputs(self) -> dict[str, str]:
        return {a.name: v for a, v in self.bound() if a.role in ("out", "outdir")}

    def arguments(self) -> str:
        """The command line after `gendeg --log ... --benchmark ...`, as a template."""
        config = f" --config resolved_params/{self.command.config}.json" if self.command.sections is not None else ""
        return self.command.name + config + "".join(f" {a.flag} {v}" for a, v in self.bound())


def _axis_param(resolved: dict, axis: str):
    value = resolved
    for key in AXES[axis].split("."):
        value = value[key]
    return value


def axis_values(resolved: dict, axis: str) -> list[str]:
    """An axis's values under params.yaml (a mapping's keys)."""
    return [str(v) for v in _axis_param(resolved, axis)]


def param_at(resolved: dict, expression: str):
    """`architectures[0]` or `synthesis.shards` in the resolved params."""
    value = resolved
    for part in re.findall(r"[^.\[\]]+", expression):
        value = value[int(part)] if part.isdigit() else value[part]
    return value


_FIELD = re.compile(r"\{(=?)([^{}]+)\}")


def render(template: str, wildcard, lookup, constant) -> str:
    """Replace each `{axis}`, `{axis.value}` and `{=key}` through the three given functions."""

    def one(match: re.Match) -> str:
        if match.group(1):
            return constant(match.group(2))
        name, _, attribute = match.group(2).partition(".")
        return lookup(name) if attribute == "value" else wildcard(name)

    return _FIELD.sub(one, template)


def fill(template: str, resolved: dict, values: dict[str, str]) -> str:
    """A template with every field filled in for one job (`values`: axis -> value)."""
    return render(template, lambda axis: str(values[axis]),
                  lambda axis: str(_axis_param(resolved, axis)[values[axis]]),
                  lambda key: str(param_at(resolved, key)))


def job_names(stage: Stage, resolved: dict) -> dict[str, dict[str, str]]:
    """DVC's job names of a stage (`stage@v1-v2`), each with its axis values, in expansion order."""
    import itertools

    if not stage.axes:
        return {stage.name: {}}
    combos = itertools.product(*(axis_values(resolved, axis) for axis in stage.axes))
    return {f"{stage.name}@{'-'.join(combo)}": dict(zip(stage.axes, combo)) for combo in combos}


# ---------------------------------------------------------------------------------------------- commands

PREPARED_IN = "output of `gendeg prepare` (data/prepared)"

PREPARE = Command(
    "prepare", "gendeg.stages.prepare:prepare",
    "build or ingest the existing pairs, clean pool, test and OOD sets",
    "The built-in data (no download) or your folders under data.user: existing degraded/clean\n"
    "pairs, the clean pool GenDeg degrades, the test split and the OOD sets.",
    (Arg("--out", "out_dir", "output folder: train/test/ood manifests and images", "outdir"),
     Arg("--work", "work_dir", "work folder (not an output): measured (mu, sigma) kept for a re-run or a resumed "
         "killed run", "work", required=False)),
    sections=("seed", "degradations", "data"))

TRAIN_GENDEG = Command(
    "train-gendeg", "gendeg.stages.train_gendeg:train_gendeg",
    "train the degradation-synthesis diffusion model",
    "Trains the conditional diffusion model that degrades a clean image given a degradation\n"
    "and its intensity (mu, sigma).",
    (Arg("--prepared", "prepared_dir", PREPARED_IN, "in"),
     Arg("--out", "out_dir", "output folder of the trained model (models/gendeg)", "outdir"),
     Arg("--checkpoints", "checkpoint_dir", CHECKPOINTS_HELP, "work", required=False)),
    sections=("seed", "degradations", "gendeg"))

TRAIN_STRUCTURE_CORRECTION = Command(
    "train-structure-correction", "gendeg.stages.train_structure_correction:train_structure_correction",
    "train the structure-correction network S on frozen-GenDeg outputs of real pairs",
    "Trains S, which puts back the scene structure GenDeg's output lost; a gate\n"
    "decides whether synthesis applies it.",
    (Arg("--prepared", "prepared_dir", PREPARED_IN, "in"),
     Arg("--gendeg", "gendeg_dir", "trained GenDeg folder (frozen)", "in"),
     Arg("--out", "out_dir", "output folder of S and its gate decision (models/structure_correction)", "outdir"),
     Arg("--checkpoints", "checkpoint_dir", CHECKPOINTS_HELP, "work", required=False)),
    sections=("seed", "degradations", "structure_correction"))

SYNTHESIZE = Command(
    "synthesize", "gendeg.stages.synthesize:synthesize",
    "generate degraded images for one degradation",
    "Degrades clean images with the trained GenDeg for one degradation (one shard of the\n"
    "synthesis.shards list); resumes from --work after a kill.",
    (Arg("--prepared", "prepared_dir", "output of `gendeg prepare`: its clean pool is degraded", "in"),
     Arg("--model", "model_dir", "trained GenDeg folder (models/gendeg)", "in"),
     Arg("--structure-correction", "structure_correction_dir", "S folder (applied where it is enabled)", "in",
         required=False),
     Arg("--degradation", "degradation", "one of `degradations:` in params.yaml, e.g. haze"),
     Arg("--shard", "shard", "which of synthesis.shards this job generates", type=int, required=False, default=0),
     Arg("--out", "out_dir", "output folder: images and manifest of this shard", "outdir"),
     Arg("--work", "work_dir", "resumable work folder (not an output)", "work")),
    sections=("seed", "degradations", "synthesis"))

MERGE = Command(
    "merge", "gendeg.stages.merge:merge_shards",
    "existing + filtered generated pairs = GenDS",
    "Joins the existing pairs with the generated ones that pass the intensity filter (merge.filter).",
    (Arg("--prepared", "prepared_dir", "output of `gendeg prepare` (the existing pairs)", "in"),
     Arg("--synthetic-root", "synthetic_root",
         "folder holding <degradation>/shard-<k>/, one synthesis output per degradation and shard", "in"),
     Arg("--out", "out_dir", "output folder of GenDS (data/gends)", "outdir")),
    sections=("degradations", "synthesis", "merge"))  # synthesis.shards: which folders hold the generated pairs

TRAIN_CLASSIFIER = Command(
    "train-classifier", "gendeg.stages.train_classifier:train_classifier",
    "train the frozen degradation classifier whose features KID / FID use (training split only)",
    "Its features are the space KID and FID are measured in; trained on the training split only.",
    (Arg("--prepared", "prepared_dir", PREPARED_IN, "in"),
     Arg("--out", "out_dir", "output folder of the classifier (models/classifier)", "outdir")),
    sections=("seed", "degradations", "classifier"))

SELECT_PAIRS = Command(
    "select-pairs", "gendeg.stages.select_pairs:select_pairs",
    "the pairs of one training set, with image hashes",
    "Lists the pairs one restorer trains on, with a hash of every image (DVC and Snakemake see\n"
    "a changed image as a changed input).",
    (Arg("--train-set", "train_set", "the training set (params.yaml training_sets:)",
         choices=("existing", "gends", "gendeg", "oracle")),
     Arg("--data", "data_dir", "the set's data folder (data/prepared or data/gends)", "in"),
     Arg("--generated-per-degradation", "generated_per_degradation",
         "keep only the first N generated pairs of each degradation (scaling curve)", type=int, required=False),
     Arg("--out", "out", "output pair list (data/training_sets/<set>.csv)", "out"),
     Arg("--work", "work_dir", "work folder (not an output; one per job): image hashes kept for a re-run or a "
         "resumed killed run; files are hashed on `gendeg --threads N` threads (default: usable cores + 4)",
         "work", required=False)),
    threads_param="workers")

TRAIN_RESTORER = Command(
    "train-restorer", "gendeg.stages.train_restorer:train_restorer",
    "train an all-in-one restorer on one training set",
    "Every architecture trains with the same step budget on each training set, so the\n"
    "training sets compare fairly.",
    (Arg("--arch", "arch", "an architecture with settings under restorer.model"),
     Arg("--train-set", "train_set", "the training set's name, recorded with the model (e.g. gends)"),
     Arg("--pairs", "pairs_csv", "data/training_sets/<set>.csv (stage select_pairs)", "in"),
     Arg("--job", "name", "job label for logs and MLflow (default <arch>-<set>)", required=False),
     Arg("--seed", "seed", "the restorer's seed (initial weights, batches; default: the config's seed)", type=int,
         required=False),
     Arg("--out", "out_dir", "output folder of the restorer (models/restorer/<arch>/<set>/seed-<seed>)", "outdir"),
     Arg("--checkpoints", "checkpoint_dir", CHECKPOINTS_HELP, "work", required=False)),
    sections=("seed", "degradations", "restorer"))

EVALUATE = Command(
    "evaluate", "gendeg.stages.evaluate:evaluate",
    "PSNR/SSIM and KID/FID/SWD of a restorer on the OOD and in-distribution sets",
    "Scores a restorer on the held-out OOD sets and the in-distribution test split, beside the\n"
    "unrestored input; its MLflow run is linked to the restorer's training run.",
    (Arg("--job", "job", "label of the restorer job, e.g. nafnet-gends"),
     Arg("--model", "model_dir", "the restorer folder (stage train_restorer)", "in"),
     Arg("--classifier", "classifier_dir", "feature network folder (stage train_classifier)", "in"),
     Arg("--prepared", "prepared_dir", "output of `gendeg prepare`: its test and OOD sets are scored", "in"),
     Arg("--out-json", "out_json", "output summary (metrics/<arch>/<set>/seed-<seed>.json)", "out"),
     Arg("--out-csv", "out_csv", "output per-set table (metrics/<arch>/<set>/seed-<seed>_per_set.csv)", "out")),
    sections=("seed", "evaluate"))

REPORT = Command(
    "report", "gendeg.stages.report:report_from_dirs",
    "tables, plots and sample grids",
    "Writes reports/report.md (headline, tables, plots, samples) and the files `dvc metrics` and\n"
    "`dvc plots` read.",
    (Arg("--metrics-dir", "metrics_dir", "holds <arch>/<training set>/seed-<seed>.json and scaling/<n>.json", "in"),
     Arg("--models-dir", "models_dir", "holds <arch>/<training set>/seed-<seed>/ restorer folders", "in"),
     Arg("--prepared", "prepared_dir", "output of `gendeg prepare` (the sample grid's images)", "in"),
     Arg("--out", "out_dir", "output folder: report.md, plots, metrics.json (reports)", "outdir")),
    sections=("seed", "architectures", "training_sets", "scaling_counts", "seeds", "report"))

COMMANDS: tuple[Command, ...] = (PREPARE, TRAIN_GENDEG, TRAIN_STRUCTURE_CORRECTION, SYNTHESIZE, MERGE,
                                 TRAIN_CLASSIFIER, SELECT_PAIRS, TRAIN_RESTORER, EVALUATE, REPORT)

# ------------------------------------------------------------------------------------------------ stages

RESTORER = "{arch}/{train_set}/seed-{seed}"
SCALING = "scaling/{generated}"

STAGES: tuple[Stage, ...] = (
    Stage("prepare", PREPARE, "Existing paired datasets (built-in or yours), clean pool, test and OOD sets, "
          "intensity statistics.", "prepare",
          {"out": "data/prepared", "work": "checkpoints/prepare"},
          extra_inputs={"user_data": "resolved_params/user_data.json"},  # fingerprint of data.user's files
          dvc_only_deps=(("${data.user.folder}", "... which all lie under it: a bare `dvc repro` sees them change "
                                                 "too"),)),
    Stage("train_gendeg", TRAIN_GENDEG, "Train the degradation-synthesis diffusion model on the existing pairs.",
          "train_gendeg",
          {"prepared": "data/prepared", "out": "models/gendeg", "checkpoints": "checkpoints/train_gendeg"},
          gpu=True, data_parallel=True,
          # First off the mark after prepare: GenDeg -> synthesis -> GenDS restorer is the longest chain.
          priority=10,
          report={"patterns": ["{name}.png"], "caption": "preview.rst", "category": "GenDeg"}),
    Stage("train_structure_correction", TRAIN_STRUCTURE_CORRECTION,
          "The paper's S: a NAFNet over [clean, generated], trained on frozen-GenDeg outputs of real pairs.",
          "train_structure_correction",
          {"prepared": "data/prepared", "gendeg": "models/gendeg", "out": "models/structure_correction",
           "checkpoints": "checkpoints/train_structure_correction"}, gpu=True),
    Stage("synthesize", SYNTHESIZE, "Degrade the clean images of the other degradations' datasets with GenDeg "
          "(one shard of them).", "synthesize/{degradation}/shard-{shard}",
          {"prepared": "data/prepared", "model": "models/gendeg", "structure_correction": "models/structure_correction",
           "degradation": "{degradation}", "shard": "{shard}", "out": "data/synthetic/{degradation}/shard-{shard}",
           "work": "checkpoints/synthesize/{degradation}/shard-{shard}"},
          axes=("degradation", "shard"), gpu=True,
          comment="One job per degradation and shard (synthesis.shards, set at the top level of params.yaml)."),
    Stage("merge", MERGE, "GenDS = existing pairs + generated pairs that pass the intensity filter.", "merge",
          {"prepared": "data/prepared", "synthetic_root": "data/synthetic", "out": "data/gends"},
          needs={"synthetic_root": (("synthesize", "out"),)}),
    Stage("train_classifier", TRAIN_CLASSIFIER, "The frozen degradation classifier whose features KID / FID use "
          "(training split only).", "train_classifier",
          {"prepared": "data/prepared", "out": "models/classifier"}, gpu=True),
    Stage("select_pairs", SELECT_PAIRS, "One training set's pairs, with image hashes, at a path every restorer "
          "job can name.", "select_pairs/{train_set}",
          {"train_set": "{train_set}", "data": "data/{train_set.value}", "out": "data/training_sets/{train_set}.csv",
           "work": "checkpoints/select_pairs/{train_set}"}, axes=("train_set",),
          comment="Restorer jobs are a matrix over architectures x training sets; every set's pairs go to one "
                  "path pattern."),
    Stage("train_restorer", TRAIN_RESTORER, "One architecture, the common step budget and data pipeline, trained "
          "on one training set.", "train_restorer/" + RESTORER,
          {"arch": "{arch}", "train_set": "{train_set}", "pairs": "data/training_sets/{train_set}.csv",
           "job": "{arch}-{train_set}", "seed": "{seed}", "out": "models/restorer/" + RESTORER,
           "checkpoints": "checkpoints/train_restorer/" + RESTORER}, axes=("arch", "train_set", "seed"), gpu=True,
          comment="One job per architecture, training set and seed (seeds: in params.yaml)."),
    Stage("evaluate", EVALUATE, "PSNR / SSIM and KID / FID / SWD on every OOD set and on the in-distribution test "
          "split.", "evaluate/" + RESTORER,
          {"job": "{arch}-{train_set}", "model": "models/restorer/" + RESTORER, "classifier": "models/classifier",
           "prepared": "data/prepared", "out_json": f"metrics/{RESTORER}.json",
           "out_csv": f"metrics/{RESTORER}_per_set.csv"}, axes=("arch", "train_set", "seed"), gpu=True),
    Stage("select_pairs_scaling", SELECT_PAIRS, "Existing pairs + the first N generated pairs of each degradation.",
          "select_pairs/" + SCALING,
          {"train_set": "gends", "data": "data/gends", "generated_per_degradation": "{generated}",
           "out": f"data/training_sets/{SCALING}.csv", "work": "checkpoints/select_pairs/" + SCALING},
          axes=("generated",),
          comment="Data-scaling curve (scaling_counts: in params.yaml; none by default): the first architecture "
                  "on existing + the first N generated pairs per degradation."),
    Stage("train_restorer_scaling", TRAIN_RESTORER, "The first architecture trained on one point of the scaling "
          "curve.", "train_restorer/" + SCALING,
          {"arch": "{=architectures[0]}", "train_set": "gends", "pairs": f"data/training_sets/{SCALING}.csv",
           "job": "scaling-{generated}", "out": "models/restorer_scaling/{generated}",
           "checkpoints": "checkpoints/train_restorer/" + SCALING}, axes=("generated",), gpu=True),
    Stage("evaluate_scaling", EVALUATE, "The same evaluation for one point of the scaling curve.",
          "evaluate/" + SCALING,
          {"job": "scaling-{generated}", "model": "models/restorer_scaling/{generated}",
           "classifier": "models/classifier", "prepared": "data/prepared", "out_json": f"metrics/{SCALING}.json",
           "out_csv": f"metrics/{SCALING}_per_set.csv"}, axes=("generated",), gpu=True),
    Stage("report", REPORT, "OOD table (architecture x training set), distances, ID vs OOD, per-degradation and "
          "scaling plots, samples.", "report",
          {"metrics_dir": "metrics", "models_dir": "models/restorer", "prepared": "data/prepared", "out": "reports"},
          needs={"metrics_dir": (("evaluate", "out_json"), ("evaluate_scaling", "out_json")),
                 "models_dir": (("train_restorer", "out"),)},
          report={"patterns": ["{name}.png"], "caption": "results.rst", "category": "Results",
                  "labels": {"figure": "{name}"}},
          dvc_outs={"out": {"cache": False}},
          comment="reports/ is in git, not the cache: `dvc metrics diff` / `dvc exp show` / `dvc plots diff` "
                  "compare commits."),
)

STAGE_SECTIONS: dict[str, list[str]] = {c.config: list(c.sections) for c in COMMANDS if c.sections is not None}


def stage(name: str) -> Stage:
    return next(s for s in STAGES if s.name == name)


def command(name: str) -> Command:
    return next(c for c in COMMANDS if c.name == name)


def needed_files(needs: tuple[tuple[str, str], ...], resolved: dict) -> list[str]:
    """Every job's file of each (stage, output) named: what a stage reading their folder waits for."""
    return [fill(stage(name).outputs()[output], resolved, values) for name, output in needs
            for values in job_names(stage(name), resolved).values()]


def example(command_: Command) -> str:
    """The first stage using the command, as the pipeline runs one of its jobs (for --help)."""
    first = next(s for s in STAGES if s.command is command_)
    resolved = {"training_sets": {"gends": "gends", "existing": "prepared"}, "architectures": ["nafnet"]}
    return f"gendeg {fill(first.arguments(), resolved, EXAMPLE_VALUES)}"
