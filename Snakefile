# GenDeg: prepare -> train GenDeg -> synthesize (per degradation) -> merge
#         -> train restorers (per training set) -> evaluate OOD -> report
#
#   snakemake --cores all                      # the whole pipeline, preset from params.yaml
#   snakemake --profile profiles/slurm         # the same on a SLURM cluster
#
# Every rule calls the `gendeg` CLI and nothing else.  The rules and dvc.yaml are both made from one
# stage table, src/gendeg/pipeline/stage_table.py.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "params.yaml"


report: "workflow/report/workflow.rst"


validate(config, "workflow/schemas/params.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/stages.smk"


rule all:
    input:
        "reports",
    default_target: True
