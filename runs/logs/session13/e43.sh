# E43 (session 13): E42 (E35's q/k/v/o LoRA kept, --lr 0; the memory LoRA, feature maps and gates trained on) with the
# original model's chat answers replayed every second step, half of them over 1000-3500-token passages
# (runs/logs/session13/replay_long.sh) beside the 150-900-token ones E35 and E42 replayed: E42 answered the 500-token
# Genesis question with digits. Same needle data as E42 (1536-4096 tokens), lower learning rates (a continuation).
#   bash runs/logs/session13/e43.sh [--resume]
set -x
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap12/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
cat runs/logs/e29-gpu-finetune/replay-chat.jsonl runs/out/replay/chat-long.jsonl > runs/out/replay/chat-mixed.jsonl
python /work/snap12/smollm2_finetune.py --base transfer --device cpu --adapter runs/out/e42-e35-memory-lora \
  --rank 0 --lr 0 --memory-rank 32 --alpha 32 --memory-lr 5e-4 --feature-lr 5e-4 --gate-lr 0.02 \
  --minutes ${MINUTES:-30} --lm-weight 1.0 --replay runs/out/replay/chat-mixed.jsonl --replay-every 2 --replay-batch 4 \
  --batch-size 4 --seq-len 4096 --min-len 1536 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --checkpointing segment --templates plain chat --formats passkey ruler ruler paraphrase \
  --haystacks runs/out/prose/train.txt --warmup-steps 3 --save-every 3 --print-every 1 --seed 43 \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 4000 --eval-depths 0 0.5 \
  --eval-keys 4 --out ${OUT:-runs/out/e43-long-replay} "$@"
