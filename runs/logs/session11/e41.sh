# E41 (session 11): E40 (feature maps and gates only) + a fresh memory LoRA of rank 32 (modules/memory_lora.py: deltas on
# the memory path's q/k/v only; the local attention and o_proj stay the GGUF's, so one segment is the original model).
# E40's data: 768-2048-token prompts, passkey / RULER single x2 / paraphrase, half in the chat template, LM loss 1 (E40: 0.5).
#   bash runs/logs/session11/e41.sh [--resume]
set -x
. .venv/bin/activate
export PYTHONPATH=/work/snap11b/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap11b/smollm2_finetune.py --base transfer --device cpu --rank 0 --memory-rank 32 --alpha 32 \
  --adapter runs/out/e40-features-2k --minutes ${MINUTES:-35} --batch-size 4 --seq-len 2048 --min-len 768 \
  --local-start 0.1 --local-end 0.1 --curriculum-steps 1 --formats passkey ruler ruler paraphrase \
  --templates plain chat --lm-weight 1 --haystacks runs/out/prose/train.txt --lr 1e-3 --feature-lr 1e-3 \
  --gate-lr 0.05 --warmup-steps 3 --checkpointing segment --save-every 5 --print-every 1 --seed 41 \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 4000 --eval-depths 0 0.5 \
  --eval-keys 4 --out runs/out/e41-memory-lora "$@"
