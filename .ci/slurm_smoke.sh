#!/usr/bin/env bash
# The smoke pipeline on a real (single-node) SLURM cluster, through the shipped profile plus the
# site override file: profiles/slurm + profiles/slurm-site.  Run by .ci/run after the tests;
# needs root (it starts munge and SLURM's daemons) and the project's .venv (make install).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash .ci/slurm_cluster.sh

work=$(mktemp -d /tmp/gendeg-slurm-XXXXXX)
trap 'rm -rf "$work"' EXIT
git clone -q "$root" "$work/project"
cd "$work/project"
sed -i 's/^preset: [a-z]*/preset: smoke/' params.yaml
git -c user.name=ci -c user.email=ci@example.org commit -qam "smoke preset"
export PATH="$root/.venv/bin:$PATH" PYTHONPATH="$work/project/src" OMP_NUM_THREADS=1
unset MLFLOW_TRACKING_URI GENDEG_PROJECT_ROOT

start=$(date +%s)
snakemake --profile profiles/slurm --workflow-profile profiles/slurm-site
echo "slurm_smoke: the pipeline ran through SLURM in $(( $(date +%s) - start )) s"
test -s reports/report.md
snakemake -n --cores 1 | grep -q "Nothing to be done" || { echo "slurm_smoke: snakemake -n still has work" >&2; exit 1; }
dvc status | grep -q "up to date" || { echo "slurm_smoke: dvc status not clean" >&2; dvc status >&2; exit 1; }
echo "slurm_smoke: passed"
