rule train_restorer:
    """The same restorer, budget and data pipeline, trained on one training set."""
    input:
        config=resolved("train_restorer"),
        code=stage_code("train_restorer"),
        prepared="data/prepared",
        data=training_data,
    output:
        directory("models/restorer/{train_set}"),
    log:
        "logs/train_restorer/{train_set}.log",
    benchmark:
        "logs/benchmarks/train_restorer/{train_set}.tsv"
    threads: 1
    shell:
        "gendeg --threads {threads} --log {log} --benchmark logs/benchmarks/train_restorer/{wildcards.train_set}.tsv"
        " train-restorer --config {input.config} --train-set {wildcards.train_set}"
        " --data {input.data} --out {output} --checkpoints checkpoints/train_restorer/{wildcards.train_set}"
        ""


rule evaluate:
    """PSNR / SSIM on every OOD set and on the in-distribution test split."""
    input:
        config=resolved("evaluate"),
        code=stage_code("evaluate"),
        prepared="data/prepared",
        model="models/restorer/{train_set}",
    output:
        metrics="metrics/{train_set}.json",
        per_set="metrics/{train_set}_per_set.csv",
    log:
        "logs/evaluate/{train_set}.log",
    benchmark:
        "logs/benchmarks/evaluate/{train_set}.tsv"
    threads: 1
    shell:
        "gendeg --threads {threads} --log {log} --benchmark logs/benchmarks/evaluate/{wildcards.train_set}.tsv"
        " evaluate --config {input.config} --train-set {wildcards.train_set}"
        " --model {input.model} --prepared {input.prepared} --out-json {output.metrics}"
        " --out-csv {output.per_set}"
