"""The pipeline as both orchestrators see it: params.yaml loaded, validated and resolved per
stage (`config`, `preset_shadow`), the hooks Snakemake and the CLI share (`orchestration`), the
MLflow runs of every job (`tracking`) and the views `dvc metrics` / `dvc plots` read
(`dvc_views`).  It sits above the components whose settings it resolves."""
