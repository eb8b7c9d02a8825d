#!/bin/bash
# Issue #49's GPU checks in one call of about 8 minutes on one H100/H200 (benchmarks/gpu_driver.py, most important
# first, each result appended to OUT_DIR/gpu.jsonl as soon as it exists): a. tiny ELECTRA vs masked LM at equal
# FLOPs, side by side, packed into OUT_DIR/budget_runs.tgz; b. ELECTRA-Small throughput, best settings and every
# speed variant; c. Base (512) and Large throughput and largest micro-batch; d. finetuning examples/s against
# transformers, Small in 1, 2, 4 processes at once, and the 10-seed GLUE estimate; e. torchrun 2 processes (gloo)
# == 1 process.
#
#   bash benchmarks/gpu.sh OUT_DIR DATA_DIR [BUDGET_SECONDS]   # DATA_DIR: e.g. .gpu/prose128_v8k (BENCHMARKS.md)
#   bash benchmarks/gpu.sh OUT_DIR --dry-run                   # the same on the CPU with tiny sizes
#
# Runs from a checkout without installing (PYTHONPATH=src). Whether each compile mode trains like eager is a
# separate check: python3 benchmarks/compile_check.py --modes default reduce-overhead.
set -u
cd "$(dirname "$0")/.."
out=${1:-gpu_results}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
if [ "${2:-}" = --dry-run ]; then
    exec python3 benchmarks/gpu_driver.py --out "$out" --dry-run
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$out/machine.txt" 2>&1
budget=${3:-488}
timeout $((${budget%.*} + 20)) python3 benchmarks/gpu_driver.py --out "$out" --data "$2" --budget "$budget" 2>"$out/errors.txt"
