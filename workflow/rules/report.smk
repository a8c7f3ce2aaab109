rule report:
    """OOD table (existing vs GenDS), per-set plot, qualitative grid."""
    input:
        config=resolved("report"),
        code=stage_code("report"),
        prepared="data/prepared",
        metrics=expand("metrics/{train_set}.json", train_set=TRAINING_SETS),
        models=expand("models/restorer/{train_set}", train_set=TRAINING_SETS),
    output:
        report(
            directory("reports"),
            patterns=["{name}.png"],
            caption="../report/ood_psnr.rst",
            category="Results",
        ),
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmarks/report.tsv"
    threads: 1
    shell:
        "gendeg --threads {threads} --log {log} --benchmark logs/benchmarks/report.tsv"
        " report --config {input.config} --metrics-dir metrics"
        " --models-dir models/restorer --prepared {input.prepared} --out {output}"
