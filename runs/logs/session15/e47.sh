# E47 (session 15): E46 continued with stretched writes up to 32x, no stretch curriculum, 35 minutes. E46 (stretch
# up to 16x) lifted the needle's share of the read at 32K from E45's 0.16-0.22 to 0.55-0.63 and its 32K answers now
# end in the needle's last 3 digits (30999 -> 11999, 87552 -> 11552): the first digits are what is still lost.
#   bash runs/logs/session15/e47.sh [--resume]
set -x
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap15/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap15/smollm2_finetune.py --base transfer --device cpu --adapter ${BASE:-runs/out/e46-stretch} \
  --rank 0 --lr 0 --memory-rank 32 --memory-shift 1 --alpha 32 --memory-lr 1e-3 --feature-lr 5e-4 --gate-lr 0.02 \
  --minutes ${MINUTES:-35} --lm-weight 1.0 --replay runs/out/replay/chat-mixed.jsonl --replay-every 2 --replay-batch 4 \
  --batch-size 4 --seq-len 4096 --min-len 1536 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --checkpointing segment --templates plain chat --formats passkey ruler ruler paraphrase --doubled-keys 1.0 \
  --stretch-max ${STRETCH:-32} \
  --haystacks runs/out/prose/train.txt --warmup-steps 3 --save-every 3 --print-every 1 --seed 47 \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 4000 --eval-depths 0 0.5 \
  --eval-keys 4 --out ${OUT:-runs/out/e47-stretch32} "$@"
