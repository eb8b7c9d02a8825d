#!/bin/bash
# The GPU checks of BENCHMARKS.md "GPU", in one go (about 5 minutes on an H200):
#   ELECTRA-Small training throughput at 128 x 128 in bf16 -- --compile reduce-overhead (whole forward, then the
#   two encoders only), --compile, and reduce-overhead at batch 256 -- then whether each compile mode trains like
#   eager (benchmarks/compile_check.py).
#
#   bash benchmarks/gpu.sh [OUT_DIR]          # results: OUT_DIR/bench.jsonl, OUT_DIR/compile_check.txt
#
# Runs from a checkout without installing (PYTHONPATH=src); every line of bench.jsonl is preceded by its command.
set -u
cd "$(dirname "$0")/.."
out=${1:-gpu_results}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" | tee "$out/machine.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$out/machine.txt" 2>&1

bench() {
    echo "# electra bench $*" >>"$out/bench.jsonl"
    timeout 300 python3 -m electra bench --json "$@" 2>>"$out/errors.txt" | tail -1 | tee -a "$out/bench.jsonl"
}
small=(--preset small --seq-len 128 --precision bf16 --steps 60)
bench "${small[@]}" --batch 128 --compile reduce-overhead
bench "${small[@]}" --batch 128 --compile reduce-overhead --compile-scope parts
bench "${small[@]}" --batch 128 --compile
bench "${small[@]}" --batch 256 --compile reduce-overhead
timeout 600 python3 benchmarks/compile_check.py --modes default reduce-overhead 2>>"$out/errors.txt" |
    tee "$out/compile_check.txt"
