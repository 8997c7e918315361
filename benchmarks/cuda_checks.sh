#!/usr/bin/env bash
# The CUDA checks recorded in doc/benchmarks.md ("CUDA"), for a machine with
# a GPU, run from the repository root with the package importable:
#
#     bash benchmarks/cuda_checks.sh [RESULTS_DIR]
#
# 1. the CUDA tests (tests/test_cuda.py: solver and estimators on the device
#    against Clarabel, the CPU fit and a numpy forward pass);
# 2. benchmark c (bench_scale.py) on the device: letter and CASP, P = 512,
#    alpha = 1, 300 iterations, as on the CPU in section 7;
# 3. the solver grid's two largest programs on the device, squared loss, and
#    (2000, 50, 500) on the same machine's CPU for the ratio of one run.
# Each part has its own time limit so that one slow part leaves the others
# their turn; logs go to RESULTS_DIR (default cuda_results).
set -uo pipefail
out=${1:-cuda_results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
threads=${THREADS:-8}
{
    nvidia-smi -L
    python3 -c "import torch, sklearn, numpy, cvxpy; print('torch', torch.__version__, \
'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '-', \
'sklearn', sklearn.__version__, 'numpy', numpy.__version__, 'cvxpy', cvxpy.__version__)"
    nproc
} 2>&1 | tee "$out/env.log"

SECONDS=0
timeout "${PYTEST_LIMIT:-180}" python3 -m pytest -q -m gpu -p no:cacheprovider \
    ${PYTEST_ARGS:-} tests/test_cuda.py 2>&1 | tee "$out/pytest_gpu.log"
echo "pytest: ${SECONDS} s" | tee -a "$out/pytest_gpu.log"

SECONDS=0
timeout "${SCALE_LIMIT:-240}" python3 benchmarks/bench_scale.py --device cuda \
    --threads "$threads" --datasets letter16k casp --alphas 1 --max-iter 300 \
    --timeout 110 --mem-limit-gb 0 2>&1 | tee "$out/scale.log"
echo "bench_scale: ${SECONDS} s" | tee -a "$out/scale.log"

SECONDS=0
{
    timeout "${SOLVER_LIMIT:-70}" python3 benchmarks/bench_solvers.py --device cuda \
        --threads "$threads" --repeat 1 --losses squared --clarabel-max 1x1x1 \
        --sizes 2000x50x500,10000x50x1000
    timeout 30 python3 benchmarks/bench_solvers.py --device cpu \
        --threads "$threads" --repeat 1 --losses squared --clarabel-max 1x1x1 \
        --sizes 2000x50x500
} 2>&1 | tee "$out/solvers.log"
echo "bench_solvers: ${SECONDS} s" | tee -a "$out/solvers.log"
