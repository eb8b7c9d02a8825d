#!/bin/bash
# ELECTRA vs masked LM at equal compute on one GPU, for a fixed wall-clock budget (issue #12's GPU comparison).
#
# usage: bash benchmarks/gpu_budget_compare.sh DATA OUT [SECONDS]
#   DATA     prepared pretraining data (`electra prepare`), e.g. prose.txt with its own 8k vocabulary
#   OUT      where the run directories and the packed results go
#   SECONDS  wall-clock budget for this call of the script (default 585)
#
# TRAIN_SECONDS=S plans each run for S seconds of pretraining instead of filling SECONDS; where S is longer than one
# call allows (issue #12 asks for at least 10 minutes per model, and a device call is limited to 10 minutes), the runs
# are cut at the end of the call, having saved a checkpoint about every 30 seconds, and a second call with RESUME=1
# (the same DATA and OUT, on the same machine) continues each exactly from its checkpoint (`electra pretrain
# --resume`) and packs them:
#   TRAIN_SECONDS=630 bash benchmarks/gpu_budget_compare.sh DATA OUT 590   # calibrate, start, cut at 590 s
#   RESUME=1 bash benchmarks/gpu_budget_compare.sh DATA OUT 240            # finish and pack
#
# Three pretraining runs share the GPU side by side (the `tiny` model is too small to fill an H200 alone):
# ELECTRA with pretraining seeds 0 and 1, and a masked LM given the same FLOPs (ELECTRA's steps times the ratio of
# the two objectives' FLOPs per sequence from `electra.flops`: 1.408 for `tiny` with an 8k vocabulary). Recipes, each
# objective's best found on the CPU (docs/pretraining.md, "Counted words, trained layers"), at batch 128, warm-up
# 10 %, bf16, eager: ELECTRA `tiny`'s own (the word table started from the data's co-occurrence counts and frozen
# there, the official Adam epsilon 1e-6, lr 5e-4); the masked LM its output bias at the word frequencies and the
# table trained from the same start at epsilon 1e-2, lr 1e-3, the top direction of its movement undone at delivery
# (MLM_FLAGS="..." replaces these flags, e.g. MLM_FLAGS="--output-bias-init prior" for `tiny`'s recipe). A short
# calibration with all three `electra bench` runs at once measures the sequences/s each gets under that sharing, and
# the step counts are set from it so that the runs end inside the budget with their learning-rate schedules
# complete. Every run also has a hard timeout and saves checkpoints, so a slow machine leaves a usable (if undecayed)
# checkpoint rather than nothing. Each run is packed into OUT/NAME.tgz (model weights at the end and at 50 %, config,
# metrics, TensorBoard; no optimizer state) for finetuning elsewhere with `electra finetune --model NAME`. Where the
# environment variable OUT is set (on the device machine: the folder whose files come back; not the OUT argument),
# the packs are copied there as well, after either call, so a cut first call already returns usable runs.
set -u
data=$1 out=$2 budget=${3:-585}
start=$SECONDS
mkdir -p "$out"
py=${PYTHON:-python3}
batch=${BATCH:-128} calib=${CALIB_STEPS:-300}  # smaller values only for a dry run on a CPU
names=(electra_s0 electra_s1 mlm_s0)
pack() {  # model weights (final and 50 %), configs, metrics, logs
    for name in "${names[@]}"; do
        [ -d "$out/$name" ] || continue
        half=$($py -c "import json,sys; print(json.load(open(sys.argv[1])).get('50%', ''))" \
            "$out/$name/checkpoints/index.json" 2>/dev/null)
        tar czf "$out/$name.tgz" --exclude=optimizer.pt --exclude=rng_state.pt -C "$out" "$name.log" \
            "$name/config.json" "$name/metrics.jsonl" "$name/tb" "$name/checkpoints/index.json" \
            "$name/checkpoints/latest" ${half:+"$name/checkpoints/$half"}
    done
    ls -la "$out"
    # on the device machine, what is written under $OUT comes back: the packs (after a cut first call, the cut runs)
    if [ -n "${OUT:-}" ]; then cp "$out"/*.tgz "$OUT"/ && echo "copied the packs to $OUT"; fi
    echo "done in $((SECONDS - start)) s"
}
if [ "${RESUME:-0}" = 1 ]; then  # second call: continue every run exactly from its last checkpoint
    left=$((budget - 20))
    for name in "${names[@]}"; do
        (timeout $left $py -m electra pretrain --resume --out "$out/$name" --no-progress >>"$out/$name.log" 2>&1
            echo "$name: exit $? after $((SECONDS - start)) s") &
    done
    wait
    pack
    exit 0
fi

common=(--preset tiny --data "$data" --batch-size $batch --learning-rate 5e-4 --adam-epsilon 1e-6 --precision bf16
    --log-every 100 --no-progress)

# 1. calibration: the three runs' shapes (the data's vocabulary size), side by side
read -r vocab ratio < <($py - "$data/meta.json" <<'EOF'
import json, sys
from electra.config import preset
from electra.flops import train_flops_per_sequence
vocab = json.load(open(sys.argv[1]))["vocab_size"]
electra, mlm = (train_flops_per_sequence(preset("tiny", vocab_size=vocab, objective=o)) for o in ("electra", "mlm"))
print(vocab, electra / mlm)
EOF
)
[ -n "$vocab" ] || { echo "cannot read $data/meta.json" >&2; exit 2; }
i=0
for obj in electra electra mlm; do
    i=$((i + 1))
    $py -m electra bench --preset tiny --batch $batch --seq-len 128 --precision bf16 --steps $calib --warmup 20 \
        --vocab-size $vocab --objective $obj --json >"$out/bench_${obj}_$i.json" 2>>"$out/bench.err" &
done
wait
read -r e_steps m_steps save < <($py - "$out" $((budget - (SECONDS - start))) $batch $ratio ${TRAIN_SECONDS:-} <<'EOF'
import glob, json, sys
out, left, batch, ratio = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
e = min(json.load(open(f))["seqs_per_s"] for f in glob.glob(f"{out}/bench_electra_*.json"))
m = min(json.load(open(f))["seqs_per_s"] for f in glob.glob(f"{out}/bench_mlm_*.json"))
planned = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
train = planned or (left - 60) * 0.85  # 60 s: start-up, evaluations, packing; 15 % margin
steps = int(min(e * train, m * train / ratio) / batch)
print(steps, round(ratio * steps), max(1, int(30 * e / batch)) if planned else 0)  # with a plan: save every ~30 s
print(f"calibration: electra {e:.0f}, mlm {m:.0f} seq/s (the slowest of each); {left:.0f} s left -> {steps} steps",
      file=sys.stderr)
EOF
)
[ -n "$e_steps" ] || { echo "calibration failed: see $out/bench.err" >&2; exit 2; }
echo "steps: electra $e_steps, mlm $m_steps ($((SECONDS - start)) s elapsed)"

# 2. the three runs, side by side, each killed before the budget ends at the latest
left=$((budget - (SECONDS - start) - 20))
run() {  # name steps extra...
    local name=$1 steps=$2
    shift 2
    local every=$((steps / 4))
    timeout $left $py -m electra pretrain "${common[@]}" --max-steps "$steps" --warmup-steps $((steps / 10)) \
        --eval-every $every --save-every $((save > 0 ? save : every)) --out "$out/$name" "$@" >"$out/$name.log" 2>&1
    echo "$name: exit $? after $((SECONDS - start)) s"
}
run electra_s0 "$e_steps" --seed 0 &
run electra_s1 "$e_steps" --seed 1 &
mlm_flags=${MLM_FLAGS:---output-bias-init prior --freeze-word-embeddings false --adam-epsilon 1e-2 --learning-rate 1e-3
    --remove-top-word-direction true}
# shellcheck disable=SC2086  # MLM_FLAGS is a list of options
run mlm_s0 "$m_steps" --seed 0 --objective mlm $mlm_flags &
wait

# 3. pack (with TRAIN_SECONDS longer than this call, the runs were cut: finish them with RESUME=1)
pack
