# E42 (session 12): the shipped adapter E35 with its q/k/v/o LoRA kept as it is (--lr 0) and a fresh memory LoRA of rank 32
# (the memory path's q/k/v only) trained on top with the feature maps and gates, on E37's longer prompts (1536-4096 tokens,
# half in the chat template, RULER single twice as often), LM loss 1 and the chat replay every third step. Any one-segment
# input (every short chat prompt) stays E35's model exactly; the memory path learns the longer prompts that raised E37's
# 16K retrieval (2/8 -> 5/8) without E37's damage to the chat answers.
#   bash runs/logs/session12/e42.sh [--resume]
set -x
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap12/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap12/smollm2_finetune.py --base transfer --device cpu --adapter src/infini_attention/assets/smollm2-memory \
  --rank 0 --lr 0 --memory-rank 32 --alpha 32 --memory-lr 1e-3 --feature-lr 1e-3 --gate-lr 0.05 \
  --minutes ${MINUTES:-45} --lm-weight 1.0 --replay runs/logs/e29-gpu-finetune/replay-chat.jsonl --replay-every 3 --replay-batch 4 \
  --batch-size 4 --seq-len 4096 --min-len 1536 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --checkpointing segment --templates plain chat --formats passkey ruler ruler paraphrase \
  --haystacks runs/out/prose/train.txt --warmup-steps 3 --save-every 3 --print-every 1 --seed 42 \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 4000 --eval-depths 0 0.5 \
  --eval-keys 4 --out ${OUT:-runs/out/e42-e35-memory-lora} "$@"
