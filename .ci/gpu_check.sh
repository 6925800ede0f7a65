#!/usr/bin/env bash
# seisoku on a CUDA machine, in one pass that fits a short time budget:
#   1. install seisoku: the wheels in WHEEL_DIR when given (seisoku built elsewhere with
#      SEISOKU_CUDA=ON, plus scipy-openblas32), else build it here with the CUDA kernels;
#   2. every CUDA test: each CUDA kernel against its CPU twin, CuPy paths of every API;
#   3. the main job on the GPU (seisoku train --device cuda);
#   4. the GPU benchmarks (each checks its result, then times ours and the peer);
#   5. the whole test suite, with the time that is left.
#
#   .ci/gpu_check.sh [OUTDIR]        (default $OUT, else /tmp/seisoku-gpu)
#
# Environment: WHEEL_DIR (see 1), DEADLINE_S (seconds for the whole script, default 540),
# SEISOKU_CUDA_ARCHITECTURES (for a build here, default 90), PYTHON (default python3).
# Logs go to OUTDIR; the last lines printed are a summary of every step's exit status, and
# the script exits with 1 when a step failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/seisoku-gpu}}
mkdir -p "$out"
py=${PYTHON:-python3}
deadline=${DEADLINE_S:-540}
site=/tmp/seisoku-site
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
summary=()
failed=0

left() { echo $((deadline - SECONDS)); }

# step NAME CAP_S LOG CMD...: runs CMD under a timeout of min(CAP_S, time left - 20 s),
# logs to OUTDIR/LOG and prints its last lines.
step() {
    local name=$1 cap=$2 log=$3
    shift 3
    local t
    t=$(left)
    t=$((t - 20 < cap ? t - 20 : cap))
    if ((t < 10)); then
        summary+=("$name: skipped (no time left)")
        return
    fi
    echo "=== $name (limit ${t} s)"
    local t0=$SECONDS
    timeout "$t" "$@" >>"$out/$log" 2>&1
    local rc=$?
    tail -n 25 "$out/$log"
    summary+=("$name: exit $rc in $((SECONDS - t0)) s")
    ((rc == 0)) || failed=1
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nvcc --version | tail -n 1
"$py" -c "import sys, numpy, cupy; print(sys.version.split()[0], 'numpy', numpy.__version__, 'cupy', cupy.__version__)"

mkdir -p "$site"
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
installed=0
if [[ -n ${WHEEL_DIR:-} ]]; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" "$WHEEL_DIR"/*.whl \
        && "$py" -c "import seisoku, sys; sys.exit(0 if seisoku.cuda.is_available() else 1)" \
        && installed=1
    summary+=("install from $WHEEL_DIR: $([[ $installed == 1 ]] && echo ok || echo failed)")
fi
if [[ $installed == 0 ]]; then
    # The build links the scipy-openblas32 package, which must be importable.
    for w in "${WHEEL_DIR:-.whl}"/scipy_openblas32-*.whl; do
        [[ -f $w ]] && "$py" -m pip install -q --no-index --no-deps --upgrade --target "$site" "$w"
    done
    step build 300 build.log env SEISOKU_CUDA=ON \
        SEISOKU_CUDA_ARCHITECTURES="${SEISOKU_CUDA_ARCHITECTURES:-90}" \
        CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "$py" -m pip install --no-build-isolation --no-deps --no-index --upgrade \
        --target "$site" -Cbuild-dir=/tmp/seisoku-build .
fi
"$py" -c "import sys; from seisoku.cli import main; sys.exit(main(['info']))"
"$py" -c "import sys, seisoku; sys.exit(0 if seisoku.cuda.is_available() else 'no CUDA device')" \
    || { printf '%s\n' "${summary[@]}"; exit 1; }
grep -m 1 "model name" /proc/cpuinfo

# Workers share the GPU; each gets a few CPU threads.
export OMP_NUM_THREADS=2
pytest_args=(-q -p no:cacheprovider -p no:benchmark)
"$py" -c "import xdist" 2>/dev/null && pytest_args+=(-n 8)
"$py" -c "import pytest_timeout" 2>/dev/null && pytest_args+=(--timeout 300)
step "CUDA tests" 240 tests_cuda.log "$py" -m pytest "${pytest_args[@]}" -k "cuda or gpu or cupy"
unset OMP_NUM_THREADS

if [[ -z ${SKIP_BENCH:-} ]]; then
    step "seisoku train --device cuda" 90 train.log \
        "$py" -c "import sys; from seisoku.cli import main; sys.exit(main(sys.argv[1:]))" \
        train --device cuda --no-progress
    for b in random gemm optim augment; do
        step "bench_$b --device cuda" 90 bench.log "$py" "bench/bench_$b.py" --device cuda
    done
fi

export OMP_NUM_THREADS=2
step "all tests" 300 tests_all.log "$py" -m pytest "${pytest_args[@]}"

echo "=== summary (${SECONDS} s)"
printf '%s\n' "${summary[@]}"
exit $failed
