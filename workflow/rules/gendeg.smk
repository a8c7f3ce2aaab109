rule train_gendeg:
    """Train the degradation-synthesis diffusion model on the existing pairs."""
    input:
        config=resolved("train_gendeg"),
        code=stage_code("train_gendeg"),
        prepared="data/prepared",
    output:
        directory("models/gendeg"),
    log:
        "logs/train_gendeg.log",
    benchmark:
        "logs/benchmarks/train_gendeg.tsv"
    threads: workflow.cores
    shell:
        "gendeg --threads {threads} --log {log} --benchmark logs/benchmarks/train_gendeg.tsv"
        " train-gendeg --config {input.config} --prepared {input.prepared}"
        " --out {output} --checkpoints checkpoints/train_gendeg"


rule synthesize:
    """Degrade the clean images of the other degradations' datasets with GenDeg."""
    input:
        config=resolved("synthesize"),
        code=stage_code("synthesize"),
        prepared="data/prepared",
        model="models/gendeg",
    output:
        directory("data/synthetic/{degradation}"),
    log:
        "logs/synthesize/{degradation}.log",
    benchmark:
        "logs/benchmarks/synthesize/{degradation}.tsv"
    threads: 1
    shell:
        "gendeg --threads {threads} --log {log} --benchmark logs/benchmarks/synthesize/{wildcards.degradation}.tsv"
        " synthesize --config {input.config} --prepared {input.prepared}"
        " --model {input.model} --degradation {wildcards.degradation} --out {output}"
        " --work checkpoints/synthesize/{wildcards.degradation}"


rule merge:
    """GenDS = existing pairs + generated pairs that pass the intensity filter."""
    input:
        config=resolved("merge"),
        code=stage_code("merge"),
        prepared="data/prepared",
        synthetic=expand("data/synthetic/{degradation}", degradation=DEGRADATIONS),
    output:
        directory("data/gends"),
    log:
        "logs/merge.log",
    benchmark:
        "logs/benchmarks/merge.tsv"
    threads: 1
    shell:
        "gendeg --threads {threads} --log {log} --benchmark logs/benchmarks/merge.tsv"
        " merge --config {input.config} --prepared {input.prepared}"
        " --synthetic-root data/synthetic --out {output}"
