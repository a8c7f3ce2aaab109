rule train_classifier:
    """The frozen degradation classifier whose features KID / FID use (training split only)."""
    conda:
        "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
    input:
        config=resolved("train_classifier"),
        code=stage_code("train_classifier"),
        prepared="data/prepared",
    output:
        directory("models/classifier"),
    log:
        "logs/train_classifier.log",
    benchmark:
        "logs/benchmarks/train_classifier.tsv"
    threads: job_threads("train_classifier")
    resources:
        gpu=GPU,
    shell:
        "gendeg --log {log} --benchmark logs/benchmarks/train_classifier.tsv"
        " train-classifier --config {input.config} --prepared {input.prepared} --out {output}"


rule select_pairs:
    """One training set's pairs, with image hashes, at a path every restorer job can name."""
    conda:
        "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
    input:
        code=stage_code("select_pairs"),
        data=training_data,
    output:
        "data/training_sets/{train_set}.csv",
    log:
        "logs/select_pairs/{train_set}.log",
    benchmark:
        "logs/benchmarks/select_pairs/{train_set}.tsv"
    threads: job_threads("select_pairs")
    shell:
        "gendeg --log {log} --benchmark logs/benchmarks/select_pairs/{wildcards.train_set}.tsv"
        " select-pairs --train-set {wildcards.train_set} --data {input.data} --out {output}"
        " --work checkpoints/select_pairs/{wildcards.train_set}"


rule train_restorer:
    """One architecture, the common step budget and data pipeline, trained on one training set."""
    conda:
        "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
    input:
        config=resolved("train_restorer"),
        code=stage_code("train_restorer"),
        pairs="data/training_sets/{train_set}.csv",
    output:
        directory("models/restorer/{arch}/{train_set}"),
    log:
        "logs/train_restorer/{arch}/{train_set}.log",
    benchmark:
        "logs/benchmarks/train_restorer/{arch}/{train_set}.tsv"
    threads: job_threads("train_restorer")
    resources:
        gpu=GPU,
    shell:
        "gendeg --log {log}"
        " --benchmark logs/benchmarks/train_restorer/{wildcards.arch}/{wildcards.train_set}.tsv"
        " train-restorer --config {input.config} --arch {wildcards.arch} --train-set {wildcards.train_set}"
        " --pairs {input.pairs} --job {wildcards.arch}-{wildcards.train_set}"
        " --out {output} --checkpoints checkpoints/train_restorer/{wildcards.arch}/{wildcards.train_set}"


rule evaluate:
    """PSNR / SSIM and KID / FID / SWD on every OOD set and on the in-distribution test split."""
    conda:
        "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
    input:
        config=resolved("evaluate"),
        code=stage_code("evaluate"),
        prepared="data/prepared",
        classifier="models/classifier",
        model="models/restorer/{arch}/{train_set}",
    output:
        metrics="metrics/{arch}/{train_set}.json",
        per_set="metrics/{arch}/{train_set}_per_set.csv",
    log:
        "logs/evaluate/{arch}/{train_set}.log",
    benchmark:
        "logs/benchmarks/evaluate/{arch}/{train_set}.tsv"
    threads: job_threads("evaluate")
    resources:
        gpu=GPU,
    shell:
        "gendeg --log {log}"
        " --benchmark logs/benchmarks/evaluate/{wildcards.arch}/{wildcards.train_set}.tsv"
        " evaluate --config {input.config} --job {wildcards.arch}-{wildcards.train_set}"
        " --model {input.model} --classifier {input.classifier} --prepared {input.prepared}"
        " --out-json {output.metrics} --out-csv {output.per_set}"


# Data-scaling curve (scaling_counts: in params.yaml; none by default).
rule select_pairs_scaling:
    """Existing pairs + the first N generated pairs of each degradation."""
    conda:
        "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
    input:
        code=stage_code("select_pairs"),
        data="data/gends",
    output:
        "data/training_sets/scaling/{generated}.csv",
    log:
        "logs/select_pairs/scaling/{generated}.log",
    benchmark:
        "logs/benchmarks/select_pairs/scaling/{generated}.tsv"
    threads: job_threads("select_pairs")
    shell:
        "gendeg --log {log} --benchmark logs/benchmarks/select_pairs/scaling/{wildcards.generated}.tsv"
        " select-pairs --train-set gends --data {input.data} --generated-per-degradation {wildcards.generated}"
        " --out {output} --work checkpoints/select_pairs/scaling/{wildcards.generated}"


rule train_restorer_scaling:
    """The first architecture trained on one point of the scaling curve."""
    conda:
        "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
    input:
        config=resolved("train_restorer"),
        code=stage_code("train_restorer"),
        pairs="data/training_sets/scaling/{generated}.csv",
    output:
        directory("models/restorer_scaling/{generated}"),
    log:
        "logs/train_restorer/scaling/{generated}.log",
    benchmark:
        "logs/benchmarks/train_restorer/scaling/{generated}.tsv"
    params:
        arch=SCALING_ARCH,
    threads: job_threads("train_restorer")
    resources:
        gpu=GPU,
    shell:
        "gendeg --log {log} --benchmark logs/benchmarks/train_restorer/scaling/{wildcards.generated}.tsv"
        " train-restorer --config {input.config} --arch {params.arch} --train-set gends"
        " --pairs {input.pairs} --job scaling-{wildcards.generated}"
        " --out {output} --checkpoints checkpoints/train_restorer/scaling/{wildcards.generated}"


rule evaluate_scaling:
    """The same evaluation for one point of the scaling curve."""
    conda:
        "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
    input:
        config=resolved("evaluate"),
        code=stage_code("evaluate"),
        prepared="data/prepared",
        classifier="models/classifier",
        model="models/restorer_scaling/{generated}",
    output:
        metrics="metrics/scaling/{generated}.json",
        per_set="metrics/scaling/{generated}_per_set.csv",
    log:
        "logs/evaluate/scaling/{generated}.log",
    benchmark:
        "logs/benchmarks/evaluate/scaling/{generated}.tsv"
    threads: job_threads("evaluate")
    resources:
        gpu=GPU,
    shell:
        "gendeg --log {log} --benchmark logs/benchmarks/evaluate/scaling/{wildcards.generated}.tsv"
        " evaluate --config {input.config} --job scaling-{wildcards.generated}"
        " --model {input.model} --classifier {input.classifier} --prepared {input.prepared}"
        " --out-json {output.metrics} --out-csv {output.per_set}"
