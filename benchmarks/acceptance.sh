#!/usr/bin/env bash
# The GPU acceptance checks, in steps that each end well inside ten minutes on one H100:
#
#   benchmarks/acceptance.sh STEP [OUT]      (from the repository root, in the GPU env)
#
#   doctor     nvidia-smi, `gpuetl doctor --backend gpu` (text + JSON)
#   tests      pytest -m gpu: every GPU == CPU parity test (JUnit XML + log)
#   kernels    EWM and as-of join benchmarks at 4,000 codes x 10 years, GPU
#   build      the default dataset build of 4,000 codes x 10 years, GPU: timings, rows, features, peak memory
#   graphs     all daily graphs of 4,000 codes x 10 years, GPU: edges only, + basic features, + cuGraph
#   cpu-build  the same build on the CPU (all cores), for the comparison
#   bench      `gpuetl bench --size small`: every stage on the GPU and the CPU (and Polars / pandas where
#              installed), outputs checked equal, results.json/.md/.png in OUT/bench-small
#
# build and cpu-build write the synthetic lake first where it is missing (~2 min): on a fresh machine run
# build first, then cpu-build on the same machine.
#
# Each step writes at most four files to OUT (default benchmarks/results/acceptance) and prints a summary.
# PYTHON picks the interpreter (default python3); STEP_TIMEOUT (seconds, default 540) bounds each command.
set -uo pipefail

step=${1:?usage: benchmarks/acceptance.sh doctor|tests|kernels|build|graphs|cpu-build|bench [OUT]}
out=${2:-benchmarks/results/acceptance}
py=${PYTHON:-python3}
limit=${STEP_TIMEOUT:-540}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
run() { timeout --kill-after=10 "$limit" "$@"; }

case "$step" in
  doctor)
    nvidia-smi > "$out/nvidia-smi.txt" 2>&1
    run "$py" -m gpuetl doctor --backend gpu --json > "$out/doctor.json"
    run "$py" -m gpuetl doctor --backend gpu
    ;;
  tests)
    # pyproject's --strict-config needs pytest-asyncio, and four test modules import TA-Lib at the top
    "$py" -c 'import pytest_asyncio, talib' || { echo "tests: needs the dev extra (pytest-asyncio, ta-lib)" >&2; exit 2; }
    run "$py" -m pytest -m gpu -q -rfEs -p no:cacheprovider --junitxml="$out/gpu-tests.xml" 2>&1 \
      | tee "$out/gpu-tests.log"
    ;;
  kernels)
    for suite in ewm asof; do
      run "$py" -m benchmarks.bench_"$suite" --backend gpu --out "$out/bench-$suite-gpu.json" || exit
    done
    ;;
  build|cpu-build)
    # the synthetic 4,000 x 10-year lake (written once, ~2 min), then one `gpuetl build` in a fresh process
    # for the per-stage seconds and peak memory; on the GPU also the benchmark's median of three warm builds
    lake=$(run "$py" -c 'from benchmarks.bench_build import SIZES, setup; print(setup(None, **SIZES["4000x10y"])["lake"])') || exit
    backend=gpu
    if [ "$step" = cpu-build ]; then
      backend=cpu
    else
      run "$py" -m benchmarks.bench_build --backend gpu --sizes 4000x10y --warmup 1 --repeat 3 \
        --out "$out/bench-build-gpu.json" || exit
    fi
    run "$py" -m gpuetl build --backend "$backend" --lake "$lake" --out "benchmarks/results/datasets/acceptance-$backend" \
      --overwrite --no-progress || exit
    cp "benchmarks/results/datasets/acceptance-$backend/metadata.json" "$out/build-$backend-metadata.json"
    "$py" - "$out/build-$backend-metadata.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
gib = lambda b: "-" if b is None else f"{b / 2**30:.2f} GiB"
print(f"{m['backend']}: {m['rows']:,} rows, {m['codes']:,} codes, {m['dates']:,} dates, {m['feature_count']} features, "
      f"peak memory host {gib(m['peak_host_bytes'])}, device {gib(m['peak_device_bytes'])}")
for stage, s in m["timings_s"].items():
    print(f"  {stage:32s} {s:8.3f} s")
print(f"  {'total':32s} {sum(m['timings_s'].values()):8.3f} s")
EOF
    ;;
  bench)
    run "$py" -m gpuetl bench --size small --out "$out/bench-small" --overwrite
    ;;
  graphs)
    run "$py" -m benchmarks.bench_graphs --backend gpu --sizes 4000x2450d-edges,4000x2450d,4000x2450d-dense \
      --warmup 0 --repeat 1 --out "$out/bench-graphs-gpu.json"
    ;;
  *)
    echo "unknown step: $step" >&2
    exit 2
    ;;
esac
