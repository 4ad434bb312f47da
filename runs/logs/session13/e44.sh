# E44 (session 13): memory LoRA shift taps (modules/memory_lora.py, --memory-shift 1: each memory query and key also
# sees the token before it, low rank, B = 0 at the start) on top of BASE (E43 or E42), the rest as E43.
# runs/tools/miss_kinds.py: nearly every wrong answer of E35-E42 goes wrong at a digit whose predecessor digit has
# another successor elsewhere in the value (E42 at 16K: 3 of 3 misses; error rate 43% there vs 0% elsewhere).
#   BASE=runs/out/e43-long-replay bash runs/logs/session13/e44.sh [--resume]   (MINUTES, DOUBLED, SEED, OUT: e45.sh)
set -x
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap13/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap13/smollm2_finetune.py --base transfer --device cpu --adapter ${BASE:-runs/out/e43-long-replay} \
  --rank 0 --lr 0 --memory-rank 32 --memory-shift 1 --alpha 32 --memory-lr 1e-3 --feature-lr 5e-4 --gate-lr 0.02 \
  --minutes ${MINUTES:-35} --lm-weight 1.0 --replay runs/out/replay/chat-mixed.jsonl --replay-every 2 --replay-batch 4 \
  --batch-size 4 --seq-len 4096 --min-len 1536 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --checkpointing segment --templates plain chat --formats passkey ruler ruler paraphrase --doubled-keys ${DOUBLED:-0.3} \
  --haystacks runs/out/prose/train.txt --warmup-steps 3 --save-every 3 --print-every 1 --seed ${SEED:-44} \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 4000 --eval-depths 0 0.5 \
  --eval-keys 4 --out ${OUT:-runs/out/e44-memory-shift} "$@"
