#!/usr/bin/env bash
# Every GPU measurement of docs/gpu.md in one command, for a session lent an H100 / H200 (docs/gpu.md).
#
#   device run:  GENDEG_COMMIT=<git rev-parse HEAD> bash benchmarks/gpu_session.sh      carry: [".whl"]
#
# At most 9 minutes (250 + 130 + 150 s limits); every step has its own time limit and every result file is written
# as it goes, so a step cut short keeps what it measured.  Writes into $OUT (the device tool's
# folder that comes back; benchmarks/results without it):
#   gpu_mfu.json            training levers (FLOPs, MFU, batch plan) and sampling at 512 px, no compile
#   gpu_mfu_compiled.json   the same model with torch.compile: training
#   gpu_mfu_compiled_sampling.json                                   and sampling
#   gpu_session.log, gpu_session_nvidia_smi.txt
# The GPU image lacks diffusers: .whl holds its wheel and importlib_metadata's (docs/gpu.md: how to fill it).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
LOG="$OUT/gpu_session.log"
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c "import diffusers" 2>/dev/null; then
    ls .whl/diffusers-*.whl >/dev/null 2>&1 || { echo "gpu_session: no diffusers and no .whl/diffusers-*.whl (docs/gpu.md)" >&2; exit 2; }
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1

{ date -u; nvidia-smi; } > "$OUT/gpu_session_nvidia_smi.txt" 2>&1
SD=${GENDEG_SD_DIR:-/tmp/gendeg_random_sd15}
# GPU_MFU_ARGS: extra arguments for every step (a CPU check of this script: docs/gpu.md)
read -r -a EXTRA <<< "${GPU_MFU_ARGS:-}"
step() {  # step <seconds> <name> <args...>: one benchmark process under its own limit
    local limit=$1 name=$2; shift 2
    echo "== $name ($(date -u +%T), limit ${limit}s)" | tee -a "$LOG"
    timeout "$limit" "$PYTHON" benchmarks/gpu_mfu.py --random-sd-dir "$SD" "${EXTRA[@]}" "$@" >> "$LOG" 2>&1
    echo "== $name: exit $? ($(date -u +%T))" | tee -a "$LOG"
}
step 250 "levers without compile" --compile no --out "$OUT/gpu_mfu.json"
step 130 "compiled training" --compile only --sections train --out "$OUT/gpu_mfu_compiled.json"
step 150 "compiled sampling" --compile only --sections sample --out "$OUT/gpu_mfu_compiled_sampling.json"
grep -E "^(==|vae_|cached|preset|planned|fp32|bf16)" "$LOG" | cut -c1-400
