#!/usr/bin/env bash
# The one prepared GPU check (issue 21): on a GPU machine without network, with torch, timm and CuPy
# preinstalled, it installs the project from wheels carried in .whl/ and, within about 8 minutes, runs the
# CUDA parity tests, `spikesweep doctor`, the neuron benchmark on CUDA (every backend, spikingjelly's
# among them), a Spikingformer-4-384 train step on CIFAR-shaped input vs a spikingjelly-eager build, the
# throughput of K=1,2,4 packed jobs sharing the GPU, and a 1-GPU DDP smoke run. CSVs, logs and summary.md go
# to DIR (default $OUT, else bench/gpu).
#
#   scripts/gpu_check.sh [DIR]              on the GPU machine
#   scripts/gpu_check.sh --rehearse [DIR]   on a CPU: the same steps, CUDA ones skipped, small shapes (CI)
#
# Every step runs even if one before it failed; the exit status is the number of failed steps (0: all
# passed). Each step has its own time limit, so the whole check ends within its budget.
set -u
REHEARSE=0
if [ "${1:-}" = "--rehearse" ]; then REHEARSE=1; shift; fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(mkdir -p "${1:-${OUT:-$REPO/bench/gpu}}" && cd "${1:-${OUT:-$REPO/bench/gpu}}" && pwd)
PY=${PYTHON:-python3}
cd "$REPO" || exit 99
export PYTHONPATH="$REPO/src:$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WANDB_MODE=offline
# Verdicts and compiled loops of this check stay with its results, not in the machine's home.
export SPIKESWEEP_USER_CACHE="${SPIKESWEEP_USER_CACHE:-$DIR/.user-cache}"
LOG="$DIR/log.txt"
SUMMARY="$DIR/summary.md"
: >"$LOG"
FAILED=0
START=$(date +%s)

{
    echo "# GPU check $(date -u +%Y-%m-%dT%H:%M:%SZ)$([ $REHEARSE = 1 ] && echo ' (rehearsal on CPU: CUDA steps skipped)')"
    echo
    echo "commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown); $("$PY" -c 'import torch; print("torch", torch.__version__, "| CUDA", torch.version.cuda, "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")' 2>&1)"
    echo
    echo "| step | result | seconds |"
    echo "|---|---|---|"
} >"$SUMMARY"

# step NAME LIMIT_S NEEDS_CUDA COMMAND...: runs COMMAND (output to the log), notes the result in the summary.
step() {
    local name=$1 limit=$2 cuda=$3
    shift 3
    if [ "$cuda" = 1 ] && [ $REHEARSE = 1 ]; then
        echo "| $name | skipped (rehearsal: needs CUDA) | - |" >>"$SUMMARY"
        return
    fi
    echo "=== $name: $*" | tee -a "$LOG"
    local t0=$(date +%s) rc
    timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    rc=$?
    local result="passed"
    if [ $rc = 124 ] || [ $rc = 137 ]; then result="FAILED: over its ${limit} s"; elif [ $rc != 0 ]; then result="FAILED (exit $rc)"; fi
    [ "$result" = passed ] || FAILED=$((FAILED + 1))
    echo "| $name | $result | $(($(date +%s) - t0)) |" >>"$SUMMARY"
    echo "=== $name: $result" | tee -a "$LOG"
}

install() {
    if ls .whl/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile .whl/*.whl || return 1
    fi
    # Editable install where the build backend is present; the PYTHONPATH above serves otherwise.
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . || echo "(editable install skipped: using PYTHONPATH)"
    "$PY" -c 'import spikesweep, spikingjelly, hydra; print("imports ok:", spikesweep.__file__)'
}

cli() { "$PY" -m spikesweep.cli "$@"; }

if [ $REHEARSE = 1 ]; then
    step "imports" 120 0 "$PY" -c 'import spikesweep, spikingjelly, hydra; print("imports ok:", spikesweep.__file__)'
    # The CUDA parity tests exist and are selected (they skip here).
    step "CUDA parity tests (collected)" 120 0 "$PY" -m pytest -q -p no:cacheprovider --collect-only \
        tests/spiking/test_backends.py -k "gpu or cupy"
    step "doctor" 120 0 env SPIKESWEEP_VERIFY_BACKENDS=1 "$PY" -m spikesweep.cli doctor \
        --backends torch,spikingjelly,cupy --shape 4,2,64 --repeats 1
    step "neuron benchmark (CPU, quick)" 240 0 "$PY" -m spikesweep.cli bench neuron --quick \
        --backends torch,spikingjelly --csv "$DIR/gpu-neuron.csv"
else
    step "install from .whl" 180 0 install
    step "CUDA parity tests" 240 1 "$PY" -m pytest -q -p no:cacheprovider -rs tests/spiking/test_backends.py \
        tests/spiking/test_cupy_kernels.py
    step "doctor" 240 1 env SPIKESWEEP_VERIFY_BACKENDS=1 "$PY" -m spikesweep.cli doctor
    step "neuron benchmark (CUDA, every backend)" 240 1 "$PY" -m spikesweep.cli bench neuron --device cuda \
        --csv "$DIR/gpu-neuron.csv"
fi
step "Spikingformer-4-384 train step vs spikingjelly eager" 240 1 "$PY" -m spikesweep.cli bench model \
    model=spikingformer_4_384 dataset=cifar10 trainer.device=cuda trainer.amp=off trainer.batch_size=64 --steps 10 --warmup 2 \
    --csv "$DIR/gpu-model.csv"
step "job packing: K=1,2,4 digits jobs sharing the GPU" 150 1 "$PY" -m spikesweep.cli bench packing \
    --jobs 1,2,4 trainer.device=cuda --csv "$DIR/gpu-packing.csv"
DDP_DIR=$(mktemp -d)
step "1-GPU DDP smoke" 240 1 bash -c "cd '$DDP_DIR' && '$PY' -m torch.distributed.run --standalone \
    --nproc_per_node=1 -m spikesweep.cli train trainer.device=cuda trainer.epochs=1 \
    trainer.max_steps_per_epoch=5 logger=none && grep -q '\"completed\"' outputs/train/*/summary.json"
rm -rf "$DDP_DIR"

# The doctor's table, the benchmark CSVs' location and the total, for whoever reads only the summary.
{
    echo
    echo "total $(($(date +%s) - START)) s; $FAILED step(s) failed; full output in log.txt"
    echo
    echo '```'
    sed -n '/^spikesweep doctor:/,/^===/p' "$LOG" | grep -v '^==='
    echo '```'
} >>"$SUMMARY"
cat "$SUMMARY"
exit $FAILED
