rule prepare:
    """Existing paired datasets (built-in or yours), clean pool, test and OOD sets, intensity statistics."""
    conda:
        "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
    input:
        config=resolved("prepare"),
        code=stage_code("prepare"),
        user_data=resolved("user_data"),
    output:
        directory("data/prepared"),
    log:
        "logs/prepare.log",
    benchmark:
        "logs/benchmarks/prepare.tsv"
    threads: job_threads("prepare")
    shell:
        "gendeg --log {log} --benchmark logs/benchmarks/prepare.tsv"
        " prepare --config {input.config} --out {output} --work checkpoints/prepare"
