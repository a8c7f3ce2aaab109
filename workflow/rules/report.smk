rule report:
    """OOD table (architecture x training set), distances, ID vs OOD, per-degradation and scaling plots, samples."""
    conda:
        "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
    input:
        config=resolved("report"),
        code=stage_code("report"),
        prepared="data/prepared",
        metrics=expand("metrics/{job}.json", job=RESTORER_JOBS),
        scaling=expand("metrics/scaling/{n}.json", n=SCALING_COUNTS),
        models=expand("models/restorer/{job}", job=RESTORER_JOBS),
    output:
        report(
            directory("reports"),
            patterns=["{name}.png"],
            caption="../report/results.rst",
            category="Results",
            labels={"figure": "{name}"},
        ),
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmarks/report.tsv"
    threads: job_threads("report")
    shell:
        "gendeg --log {log} --benchmark logs/benchmarks/report.tsv"
        " report --config {input.config} --metrics-dir metrics"
        " --models-dir models/restorer --prepared {input.prepared} --out {output}"
