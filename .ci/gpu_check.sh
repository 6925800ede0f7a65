#!/usr/bin/env bash
# Device check (not part of CI): build seisoku with CUDA on a GPU machine, run the CUDA
# variants of the test suite and the GPU benchmarks. Expects OpenBLAS wheels in .whl/.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
start=$(date +%s)
SEISOKU_CUDA=ON SEISOKU_CUDA_ARCHITECTURES=90 python3 -m pip install -q --no-build-isolation --no-deps \
  --target /tmp/site . > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
python3 -m seisoku.cli info
python3 -m pytest tests/python -q -x -k "cuda" -p no:cacheprovider 2>&1 | tail -15
for b in bench_gemm bench_random bench_optim bench_augment; do
  timeout 120 python3 bench/$b.py --device cuda --quick 2>&1 | tail -25
done
