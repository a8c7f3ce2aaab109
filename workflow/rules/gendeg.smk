# synthesis.shards: one synthesize job per degradation and shard (DVC's matrix expands the same list).
SHARDS = RESOLVED["synthesis"]["shards"]


rule train_gendeg:
    """Train the degradation-synthesis diffusion model on the existing pairs."""
    conda:
        "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
    input:
        config=resolved("train_gendeg"),
        code=stage_code("train_gendeg"),
        prepared="data/prepared",
    output:
        report(
            directory("models/gendeg"),
            patterns=["{name}.png"],
            caption="../report/preview.rst",
            category="GenDeg",
        ),
    log:
        "logs/train_gendeg.log",
    benchmark:
        "logs/benchmarks/train_gendeg.tsv"
    threads: job_threads("train_gendeg")
    resources:
        gpu=GPU,
    params:
        gendeg=gendeg_command(data_parallel=True),  # N GPUs from the profile: N processes
    # First off the mark after prepare: GenDeg -> synthesis -> GenDS restorer is the longest
    # chain, and jobs that need only the existing pairs can run beside synthesis instead.
    priority: 10
    shell:
        "{params.gendeg} {log} --benchmark logs/benchmarks/train_gendeg.tsv"
        " train-gendeg --config {input.config} --prepared {input.prepared}"
        " --out {output} --checkpoints checkpoints/train_gendeg"


rule train_structure_correction:
    """The paper's S: a NAFNet over [clean, generated], trained on frozen-GenDeg outputs of real pairs."""
    conda:
        "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
    input:
        config=resolved("train_structure_correction"),
        code=stage_code("train_structure_correction"),
        prepared="data/prepared",
        gendeg="models/gendeg",
    output:
        directory("models/structure_correction"),
    log:
        "logs/train_structure_correction.log",
    benchmark:
        "logs/benchmarks/train_structure_correction.tsv"
    threads: job_threads("train_structure_correction")
    resources:
        gpu=GPU,
    params:
        gendeg=gendeg_command(),
    shell:
        "{params.gendeg} {log} --benchmark logs/benchmarks/train_structure_correction.tsv"
        " train-structure-correction --config {input.config} --prepared {input.prepared} --gendeg {input.gendeg}"
        " --out {output} --checkpoints checkpoints/train_structure_correction"


rule synthesize:
    """Degrade the clean images of the other degradations' datasets with GenDeg (one shard of them)."""
    conda:
        "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
    input:
        config=resolved("synthesize"),
        code=stage_code("synthesize"),
        prepared="data/prepared",
        model="models/gendeg",
        structure_correction="models/structure_correction",
    output:
        directory("data/synthetic/{degradation}/shard-{shard}"),
    log:
        "logs/synthesize/{degradation}/shard-{shard}.log",
    benchmark:
        "logs/benchmarks/synthesize/{degradation}/shard-{shard}.tsv"
    wildcard_constraints:
        shard="|".join(map(str, SHARDS)),
    threads: job_threads("synthesize")
    resources:
        gpu=GPU,
    params:
        gendeg=gendeg_command(),
    shell:
        "{params.gendeg} {log}"
        " --benchmark logs/benchmarks/synthesize/{wildcards.degradation}/shard-{wildcards.shard}.tsv"
        " synthesize --config {input.config} --prepared {input.prepared}"
        " --model {input.model} --structure-correction {input.structure_correction}"
        " --degradation {wildcards.degradation} --shard {wildcards.shard} --out {output}"
        " --work checkpoints/synthesize/{wildcards.degradation}/shard-{wildcards.shard}"


rule merge:
    """GenDS = existing pairs + generated pairs that pass the intensity filter."""
    conda:
        "../../envs/gendeg.yaml"  # used only with --sdm conda (docs/snakemake-lint.md)
    input:
        config=resolved("merge"),
        code=stage_code("merge"),
        prepared="data/prepared",
        synthetic=expand("data/synthetic/{degradation}/shard-{shard}", degradation=DEGRADATIONS, shard=SHARDS),
    output:
        directory("data/gends"),
    log:
        "logs/merge.log",
    benchmark:
        "logs/benchmarks/merge.tsv"
    threads: job_threads("merge")
    shell:
        "gendeg --log {log} --benchmark logs/benchmarks/merge.tsv"
        " merge --config {input.config} --prepared {input.prepared}"
        " --synthetic-root data/synthetic --out {output}"
