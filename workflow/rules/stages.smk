# One rule per stage of the stage table (src/gendeg/pipeline/stage_table.py), the table dvc.yaml is
# written from too: add or change a stage there, not here.  The rule parts come from common.smk.


for _stage in STAGES:

    rule:
        name:
            _stage.name
        conda:
            "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
        input:
            **rule_inputs(_stage),
        output:
            **rule_outputs(_stage),
        log:
            snakemake_template(f"logs/{_stage.stem}.log"),
        benchmark:
            snakemake_template(f"logs/benchmarks/{_stage.stem}.tsv")
        threads: job_threads(_stage.command.config)
        resources:
            **({"gpu": GPU} if _stage.gpu else {}),
        params:
            gendeg=gendeg_command(data_parallel=_stage.data_parallel),
        priority: _stage.priority
        shell:
            stage_shell(locals(), _stage)

    workflow.get_rule(_stage.name).docstring = _stage.doc  # `snakemake --list-rules` shows it
