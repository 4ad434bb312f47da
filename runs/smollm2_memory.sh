#!/usr/bin/env bash
# SmolLM2-135M's compressive memory taught to retrieve, stage by stage (issue 14; runs/EXPERIMENTS.md E29-E35):
# runs/smollm2_finetune.py (LoRA on q/k/v/o + gates + feature maps, the loss on the answer only), from the shipped
# transfer artifact (BASE=transfer) or the paper's layer (BASE=paper), on prompts that grow longer stage by stage.
#
#   bash runs/smollm2_memory.sh                        # every stage, CPU; an interrupted stage continues (--resume)
#   STAGES="short" bash runs/smollm2_memory.sh         # some stages (each starts from the previous one's adapter)
#   DEVICE=cuda bash runs/smollm2_memory.sh            # on a GPU (the stages are time-boxed: same minutes, more steps)
#
# Stages, as they ran in session 8:
#   format: prompts of 1-4K tokens, batch 32 (ran on an H200: 2.3 min, 26 steps; it taught the answer's format, not
#           retrieval: E29). On two CPU cores the same 26 steps take ~1.5 h.
#   short:  520-640 tokens (the needle 1-2 segments of 256 back), batch 8, 30 min on two cores (E30)
#   medium: 700-1600 tokens (up to 5 segments back), batch 8, 40 min (E32; stopped at 19 min; not in the default list)
#   speak:  from short: 520-1024 tokens with the prompt's language-model loss added (--lm-weight 1), so that the model
#           that learned to retrieve speaks again (the answer-only stages leave it answering every prompt with digits),
#           lr 5e-4, 30 min (E33)
#   replay: from speak: every third step replays the original model's own answers to chat prompts over long passages
#           (runs/tools/chat_replay.py, made once: ~14 min on one thread), so that long prompts are not all answered
#           with digits; lr 3e-4, 30 min (E35: shipped as assets/smollm2-memory, runs/tools/ship_adapter.py)
#   memory, long-replay, shift, doubled: E35's LoRA frozen, a memory LoRA on 1.5-4K-token prompts (E42-E45, sessions 12-14)
#   stretch: stretched memory writes (train/stretch.py): each prompt's filler-only segments written with one weight drawn
#           log-uniformly from [1, 16], so the memory sees up to ~64K tokens' dilution, 40 min (E46, session 15)
#   stretch32: the same up to 32x, 35 min (E47: shipped as assets/smollm2-memory)
# Needs the prose of runs/tools/build_prose.py in $PROSE (train.txt for training, heldout.txt for the evaluations).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-transfer}
DEVICE=${DEVICE:-cpu}
PROSE=${PROSE:-runs/out/prose}
OUT=${OUT:-runs/out/smollm2-memory-$BASE}
STAGES=${STAGES:-"format short speak replay memory long-replay shift doubled stretch stretch32 ship"}
REPLAY=${REPLAY:-runs/out/replay/chat.jsonl}
LONG_REPLAY=${LONG_REPLAY:-runs/out/replay/chat-long.jsonl}
SHIP_TO=${SHIP_TO:-$OUT/shipped}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$OUT"
COMMON=(--base "$BASE" --device "$DEVICE" --haystacks "$PROSE/train.txt" --eval-haystack "$PROSE/heldout.txt"
        --lr 1e-3 --print-every 5 --eval-formats passkey ruler)
prev=""
for stage in $STAGES; do
  case $stage in
    format) args=(--minutes 2.3 --batch-size 32 --seq-len 4096 --min-len 1024 --checkpointing segment
                  --formats passkey ruler paraphrase --local-start 0.3 --local-end 0.15 --curriculum-steps 100
                  --warmup-steps 5 --save-every 10 --eval-lengths 4000 --eval-depths 0.5 1 --eval-keys 4) ;;
    short)  args=(--minutes 30 --batch-size 8 --seq-len 640 --min-len 520 --formats passkey ruler
                  --local-start 0.1 --local-end 0.1 --curriculum-steps 1 --warmup-steps 3 --save-every 10
                  --eval-lengths 640 2000 --eval-depths 0 0.5 --eval-keys 4) ;;
    medium) args=(--minutes 40 --batch-size 8 --seq-len 1600 --min-len 700 --formats passkey ruler paraphrase
                  --local-start 0.1 --local-end 0.1 --curriculum-steps 1 --warmup-steps 3 --save-every 5
                  --eval-lengths 2000 --eval-depths 0 0.5 1 --eval-keys 4) ;;
    speak)  args=(--minutes 30 --lm-weight 1.0 --lr 5e-4 --batch-size 8 --seq-len 1024 --min-len 520 --formats passkey ruler
                  --local-start 0.1 --local-end 0.1 --curriculum-steps 1 --warmup-steps 3 --save-every 5
                  --eval-lengths 2000 --eval-depths 0 0.5 --eval-keys 4) ;;
    replay) [ -f "$REPLAY" ] || python runs/tools/chat_replay.py --text "$PROSE/train.txt" --count 160 --out "$REPLAY"
            args=(--minutes 30 --lm-weight 1.0 --lr 3e-4 --replay "$REPLAY" --replay-every 3 --replay-batch 4
                  --batch-size 8 --seq-len 1024 --min-len 520 --formats passkey ruler
                  --local-start 0.1 --local-end 0.1 --curriculum-steps 1 --warmup-steps 3 --save-every 5
                  --eval-lengths 2000 4000 --eval-depths 0 0.5 --eval-keys 4) ;;
    memory|long-replay|shift|doubled|stretch|stretch32)
            [ -f "$REPLAY" ] || python runs/tools/chat_replay.py --text "$PROSE/train.txt" --count 160 --out "$REPLAY"
            args=(--rank 0 --lr 0 --memory-rank 32 --alpha 32 --lm-weight 1.0 --replay-batch 4 --batch-size 4
                  --seq-len 4096 --min-len 1536 --local-start 0.1 --local-end 0.1 --curriculum-steps 1
                  --checkpointing segment --templates plain chat --formats passkey ruler ruler paraphrase
                  --warmup-steps 3 --save-every 3 --eval-lengths 4000 --eval-depths 0 0.5 --eval-keys 4) ;;&
    memory) args+=(--minutes 45 --memory-lr 1e-3 --feature-lr 1e-3 --gate-lr 0.05 --replay "$REPLAY" --replay-every 3
                   --seed 42) ;;
    long-replay|shift|doubled|stretch|stretch32)
            [ -f "$LONG_REPLAY" ] || python runs/tools/chat_replay.py --text "$PROSE/train.txt" --count 64 \
                --min-tokens 1000 --max-tokens 3500 --new-tokens 48 --seed 43 --out "$LONG_REPLAY"
            cat "$REPLAY" "$LONG_REPLAY" > "$OUT/replay-mixed.jsonl"
            args+=(--replay "$OUT/replay-mixed.jsonl" --replay-every 2 --feature-lr 5e-4 --gate-lr 0.02) ;;&
    long-replay) args+=(--minutes 30 --memory-lr 5e-4 --seed 43) ;;
    shift)  args+=(--minutes 40 --memory-lr 1e-3 --memory-shift 1 --seed 44) ;;
    doubled) args+=(--minutes 40 --memory-lr 1e-3 --memory-shift 1 --doubled-keys 1.0 --seed 45) ;;
    stretch) args+=(--minutes 40 --memory-lr 1e-3 --memory-shift 1 --doubled-keys 1.0 --stretch-max 16
                    --stretch-curriculum-steps 10 --seed 46) ;;
    stretch32) args+=(--minutes 35 --memory-lr 1e-3 --memory-shift 1 --doubled-keys 1.0 --stretch-max 32 --seed 47) ;;
    ship)   python runs/tools/ship_adapter.py --from "$OUT/$prev" --to "$SHIP_TO"; continue ;;
    *) echo "unknown stage $stage (format, short, medium, speak, replay, memory, long-replay, shift, doubled, stretch, stretch32, ship)"
       exit 2 ;;
  esac
  from=()
  [ -n "$prev" ] && from=(--adapter "$OUT/$prev")
  echo "=== stage $stage $(date -u +%H:%M:%S)"
  python runs/smollm2_finetune.py "${COMMON[@]}" "${args[@]}" "${from[@]}" --resume --out "$OUT/$stage"
  prev=$stage
done
