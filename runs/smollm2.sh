#!/usr/bin/env bash
# SmolLM2-135M -> Infini-attention: conversion check, Genesis perplexity (memory on/reset) before and after a short
# continual pre-training, passkey zero-shot and after a short fine-tune, streaming RAM/time vs the original.
# Writes runs/out/smollm2/ (models, checkpoints, results/*.json, steps.jsonl) and docs/results/smollm2.md.
#
#   OMP_NUM_THREADS=1 bash runs/smollm2.sh > runs/out/smollm2.log 2>&1     # ~35-60 min on one shared CPU thread
#
# The defaults are scaled down for one CPU thread. On a GPU, the same script with larger settings, e.g. a 1B model:
#   SOURCE=path/to/Llama-3.2-1B DEVICE=auto BF16=0 SEGMENT_LEN=2048 PPL_TOKENS=1000000 LM_STEPS=1000 LM_SEQ=8192 \
#   PK_STEPS=400 PK_SEQ=5120 PK_LENGTHS="32768 131072" PK_LONG=1048576 PK_LONG_DEPTHS="0 0.5 1" PK_KEYS=10 \
#   ORIG_TOKENS=32768 bash runs/smollm2.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SOURCE=${SOURCE:-gguf:default}        # gguf:default (SmolLM2-135M-Instruct) or a transformers Llama/Qwen2/Mistral folder
DEVICE=${DEVICE:-auto}
BF16=${BF16:-1}                       # bf16 autocast (2x faster on this CPU); the memory stays float32
SEGMENT_LEN=${SEGMENT_LEN:-256}
RULE=${RULE:-delta}
PPL_TOKENS=${PPL_TOKENS:-16384}       # tokens of Genesis read for perplexity (the book has ~52K)
LM_STEPS=${LM_STEPS:-16}              # continual pre-training steps
LM_SEQ=${LM_SEQ:-1024}                # tokens per training sequence (LM_SEQ / SEGMENT_LEN segments)
PK_STEPS=${PK_STEPS:-12}              # passkey fine-tuning steps
PK_SEQ=${PK_SEQ:-1024}                # longest passkey training prompt (shortest: half of it)
PK_LENGTHS=${PK_LENGTHS:-"2048 8192"}   # passkey lengths, each at start/middle/end depth
PK_ORIG_LENGTHS=${PK_ORIG_LENGTHS:-2048}  # the original model on the same prompts: can it answer at all?
PK_LONG=${PK_LONG:-32768}             # a longer passkey length, fine-tuned model only, at depths PK_LONG_DEPTHS
PK_LONG_DEPTHS=${PK_LONG_DEPTHS:-0.5}
PK_KEYS=${PK_KEYS:-1}                 # keys per (length, depth) cell
STREAM_TOKENS=${STREAM_TOKENS:-131072}
ORIG_TOKENS=${ORIG_TOKENS:-8192}      # the original model's growing KV cache, up to this many tokens
SKIP=${SKIP:-}                        # steps to skip because an earlier invocation did them, e.g. "prepare ppl-before"
OUT=${OUT:-runs/out/smollm2}
DOC=${DOC:-docs/results/smollm2.md}

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export INFINI_ATTENTION_CACHE=$OUT/cache  # tokenized corpora of this run
mkdir -p "$OUT"
if [ -z "$SKIP" ]; then
  : > "$OUT/steps.jsonl"  # a fresh run; with SKIP the skipped steps keep their records
  printf '{"date": "%s"}\n' "$(date -u +%Y-%m-%dT%H:%MZ)" > "$OUT/env.json"
else
  printf '{"date": "%s", "skipped_in_last_invocation": "%s"}\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$SKIP" \
    > "$OUT/env.json"
fi
bf16=$([ "$BF16" = 1 ] && echo --bf16 || echo --no-bf16)
train_bf16=$([ "$BF16" = 1 ] && echo --bf16 || echo --no-bf16)

step() {  # step NAME COMMAND...: run, echo, and record the command and its wall time
  local name=$1; shift
  if [[ " $SKIP " == *" $name "* ]]; then echo "=== $name: skipped (SKIP)"; return; fi
  echo "=== $name: $*"
  local t0; t0=$(date +%s.%N)
  "$@"
  local t1; t1=$(date +%s.%N)
  python - "$name" "$(echo "$t1 - $t0" | bc)" "$*" >> "$OUT/steps.jsonl" <<'PY'
import json, sys
print(json.dumps({"name": sys.argv[1], "seconds": float(sys.argv[2]), "command": sys.argv[3]}))
PY
}

step prepare python runs/smollm2.py prepare --source "$SOURCE" --segment-len "$SEGMENT_LEN" --rule "$RULE" --out "$OUT"
step ppl-before python runs/smollm2.py ppl --model "$OUT/converted" --tokens "$PPL_TOKENS" --name before \
  --original "$OUT/original" --device "$DEVICE" $bf16 --out "$OUT"
[[ " $SKIP " == *" train-lm "* ]] || rm -rf "$OUT/lm"
[[ " $SKIP " == *" train-passkey "* ]] || rm -rf "$OUT/passkey"
step train-lm infini train --from-hf "$OUT/converted" --task lm --data "$OUT/kjv-train.txt" --data-split verse \
  --val-docs 0 --seq-len "$LM_SEQ" --batch-size 1 --steps "$LM_STEPS" --lr 1e-4 --gate-lr 0.1 --warmup-steps 2 \
  --eval-every 0 --save-every "$LM_STEPS" --device "$DEVICE" $train_bf16 --no-progress --out "$OUT/lm"
step ppl-after python runs/smollm2.py ppl --model "$OUT/lm/checkpoint" --tokens "$PPL_TOKENS" --name after \
  --device "$DEVICE" $bf16 --out "$OUT"
# eval/passkey.py autocasts on the CPU only: float32 on a GPU
pk_bf16=$([ "$BF16" = 1 ] && [ "$DEVICE" = cpu -o "$(python -c 'import torch; print(int(torch.cuda.is_available()))')" = 0 ] \
  && echo --bf16 || echo --no-bf16)
# shellcheck disable=SC2086
step passkey-original python runs/smollm2.py passkey --original --model "$OUT/original" --lengths $PK_ORIG_LENGTHS \
  --keys "$PK_KEYS" --name original --device "$DEVICE" $pk_bf16 --out "$OUT"
# shellcheck disable=SC2086
step passkey-zeroshot python runs/smollm2.py passkey --model "$OUT/lm/checkpoint" --lengths $PK_LENGTHS \
  --keys "$PK_KEYS" --name zeroshot --device "$DEVICE" $pk_bf16 --out "$OUT"
step train-passkey infini train --from-hf "$OUT/lm/checkpoint" --task passkey --seq-len "$PK_SEQ" \
  --min-len $((PK_SEQ / 2)) --batch-size 1 --steps "$PK_STEPS" --curriculum-steps "$PK_STEPS" --lr 1e-4 \
  --gate-lr 0.1 --warmup-steps 2 --eval-every 0 --save-every "$PK_STEPS" --device "$DEVICE" $train_bf16 \
  --no-progress --out "$OUT/passkey"
# shellcheck disable=SC2086
step passkey-finetuned python runs/smollm2.py passkey --model "$OUT/passkey/checkpoint" --lengths $PK_LENGTHS \
  --keys "$PK_KEYS" --name finetuned --device "$DEVICE" $pk_bf16 --out "$OUT"
# shellcheck disable=SC2086
step passkey-finetuned-long python runs/smollm2.py passkey --model "$OUT/passkey/checkpoint" --lengths $PK_LONG \
  --depths $PK_LONG_DEPTHS --keys "$PK_KEYS" --name finetuned-long --device "$DEVICE" $pk_bf16 --out "$OUT"
step stream-converted python runs/smollm2.py stream --model "$OUT/converted" --kind converted \
  --tokens "$STREAM_TOKENS" --device "$DEVICE" $bf16 --out "$OUT"
step stream-original python runs/smollm2.py stream --model "$OUT/original" --kind original \
  --tokens "$ORIG_TOKENS" --device "$DEVICE" $bf16 --out "$OUT"
python runs/smollm2.py report --out "$OUT" --doc "$DOC"
