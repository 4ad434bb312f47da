#!/usr/bin/env bash
# The long-context LM comparison (the paper's Table 2, scaled down to one CPU thread): every attention kind
# trained with the same model, data, tokenizer, batches and budget, then streamed over held-out books.
#
#   OMP_NUM_THREADS=1 bash runs/lm_table.sh > runs/out/lm_table.log 2>&1     # ~40 min on one shared CPU thread
#
# Writes runs/out/lm/<run>/ (checkpoints, metrics.jsonl), runs/out/lm/<run>-ppl.json (perplexity by position,
# memory-reset ablation), runs/out/lm/<run>-footprint.json (memory by formula and measured), steps.jsonl (every
# command and its wall time), copies the per-run metrics to runs/logs/lm/ and writes docs/results/lm.md.
# A finished training run is kept and skipped when the script runs again (an unfinished one starts over), so
# `rm -rf runs/out/lm` for a clean run. Scale knobs below (environment variables) apply to every kind alike.
#
# Data: the King James Bible split into its 66 books (`--data-split auto` sees the verse prefixes); the
# validation books are the 5% (3 books) whose names hash lowest, the same for every run. Byte tokenizer.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-/work/shared/corpora/kjv.txt}
LAYERS=${LAYERS:-2}            # the "mini" model of runs/EXPERIMENTS.md: 2 layers, hidden 128,
HIDDEN=${HIDDEN:-128}          # 4 heads of 32 (no grouped-query attention), SwiGLU 384: ~0.5M parameters
HEAD_DIM=${HEAD_DIM:-32}
FFN=${FFN:-384}
SEGMENT=${SEGMENT:-128}        # N
SEQ=${SEQ:-1024}               # tokens per training sequence: 8 segments, full BPTT (no truncation)
BATCH=${BATCH:-8}
STEPS=${STEPS:-240}            # 240 x 8 x 1024 = 1.97M training tokens for every kind
LR=${LR:-2e-3}
WARMUP=${WARMUP:-24}
EVAL_TOKENS=${EVAL_TOKENS:-32K}   # tokens read of each validation book (the streams carry the state throughout)
FIRST_BUCKET=${FIRST_BUCKET:-1K}  # position buckets 0-1K, 1K-4K, 4K-16K, 16K-64K (= 16K-32K here)
RUNS=${RUNS:-"full local xl memorizing infini-linear infini-delta"}
OUT=${OUT:-runs/out/lm}
LOGS=${LOGS:-runs/logs/lm}
DOC=${DOC:-docs/results/lm.md}

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export INFINI_ATTENTION_CACHE=$OUT/cache  # the tokenized corpus of this run
mkdir -p "$OUT" "$LOGS"
python - "$OUT/env.json" <<'PY'
import json, os, platform, sys, time, torch
load = os.getloadavg()
print(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "torch": torch.__version__,
                  "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                  "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "loadavg_start": load}),
      file=open(sys.argv[1], "w"))
PY

step() {  # step NAME COMMAND...: run, echo, and record the exact command and its wall time
  local name=$1; shift
  local cmd; cmd=$(printf '%q ' "$@")
  echo "=== $name: $cmd"
  local t0 t1; t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  python - "$name" "$t0" "$t1" "${cmd% }" >> "$OUT/steps.jsonl" <<'PY'
import json, os, sys
print(json.dumps({"name": sys.argv[1], "seconds": round(float(sys.argv[3]) - float(sys.argv[2]), 1),
                  "command": sys.argv[4], "loadavg": os.getloadavg()}))
PY
}

model_args() {  # the ModelConfig of a run: the same for every kind but the attention
  local args=(--preset small --model "num_layers=$LAYERS" --model "hidden_size=$HIDDEN" --model "head_dim=$HEAD_DIM"
              --model "ffn_size=$FFN" --model "segment_len=$SEGMENT")
  case $1 in
    full|local|xl|memorizing) args+=(--model "attention=$1") ;;
    infini-linear) args+=(--model attention=infini --model rule=linear) ;;
    infini-delta) args+=(--model attention=infini --model rule=delta) ;;
    *) echo "unknown run $1" >&2; exit 2 ;;
  esac
  printf '%s\n' "${args[@]}"
}

finished() {  # the run's checkpoint holds the last step
  [ -f "$OUT/$1/checkpoint/train_state.json" ] && grep -q "\"step\": $STEPS," "$OUT/$1/checkpoint/train_state.json"
}

for run in $RUNS; do
  mapfile -t margs < <(model_args "$run")
  if finished "$run"; then
    echo "=== train-$run: done, kept"
  else
    rm -rf "${OUT:?}/$run"
    step "train-$run" infini train --task lm --data "$DATA" --tokenizer byte "${margs[@]}" --seq-len "$SEQ" \
      --batch-size "$BATCH" --steps "$STEPS" --lr "$LR" --warmup-steps "$WARMUP" --eval-every 0 \
      --save-every "$STEPS" --seed 0 --no-progress --out "$OUT/$run"
  fi
  cp "$OUT/$run/metrics.jsonl" "$LOGS/$run.jsonl"
  cp "$OUT/$run/train_config.json" "$LOGS/$run.train_config.json"

  # `full` is read only as far as it was trained (its RoPE positions and its KV cache end there): the first SEQ
  # tokens of each book, i.e. the first position bucket. Kinds without a memory to empty skip the ablation
  # (it would be the same run); memorizing and infini run it.
  case $run in
    full) eval_args=(--max-tokens "$SEQ" --no-ablation) ;;
    local|xl) eval_args=(--max-tokens "$EVAL_TOKENS" --no-ablation) ;;
    *) eval_args=(--max-tokens "$EVAL_TOKENS") ;;
  esac
  if [ ! "$OUT/$run-ppl.json" -nt "$OUT/$run/checkpoint/model.safetensors" ]; then
    step "eval-$run" infini eval ppl --checkpoint "$OUT/$run/checkpoint" --data "$DATA" --docs val \
      "${eval_args[@]}" --first-bucket "$FIRST_BUCKET" --no-progress --out "$OUT/$run-ppl"
  fi
  if [ ! "$OUT/$run-footprint.json" -nt "$OUT/$run/checkpoint/model.safetensors" ]; then
    step "footprint-$run" python runs/lm_table.py footprint --checkpoint "$OUT/$run/checkpoint" \
      --length "$EVAL_TOKENS" --out "$OUT/$run-footprint.json"
  fi
  cp "$OUT/$run-ppl.json" "$OUT/$run-footprint.json" "$LOGS/"
done

cp "$OUT/steps.jsonl" "$OUT/env.json" "$LOGS/"
python runs/lm_table.py report --out "$OUT" --runs $RUNS --doc "$DOC"
