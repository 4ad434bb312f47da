# E46 (session 15): E45 continued with stretched memory writes (--stretch-max 16; train/stretch.py, the delta rule
# to first order): each needle prompt's filler-only segments are written with one weight drawn log-uniformly from
# [1, 16], so 1.5-4K-token prompts present the memory with the dilution of up to ~64K tokens. E45 finds 7/8 at 16K
# and 0/8 at 32K, where the needle's share of the read falls to 0.16-0.22: nothing in <= 4K training asked the
# memory to be more selective. The rest as E45 (runs/logs/session13/e45.sh).
#   bash runs/logs/session15/e46.sh [--resume]   (BASE, MINUTES, STRETCH, STRETCH_CURRICULUM, SEED, OUT: e47.sh;
#   SNAP: the code snapshot, default /work/snap15; more arguments: session16/e48.sh)
set -x
cd /work/main && . .venv/bin/activate
SNAP=${SNAP:-/work/snap15}
export PYTHONPATH=$SNAP/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python $SNAP/smollm2_finetune.py --base transfer --device cpu --adapter ${BASE:-runs/out/e45-doubled} \
  --rank 0 --lr 0 --memory-rank 32 --memory-shift 1 --alpha 32 --memory-lr 1e-3 --feature-lr 5e-4 --gate-lr 0.02 \
  --minutes ${MINUTES:-40} --lm-weight 1.0 --replay runs/out/replay/chat-mixed.jsonl --replay-every 2 --replay-batch 4 \
  --batch-size 4 --seq-len 4096 --min-len 1536 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --checkpointing segment --templates plain chat --formats passkey ruler ruler paraphrase --doubled-keys 1.0 \
  --stretch-max ${STRETCH:-16} --stretch-curriculum-steps ${STRETCH_CURRICULUM:-10} \
  --haystacks runs/out/prose/train.txt --warmup-steps 3 --save-every 3 --print-every 1 --seed ${SEED:-46} \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 4000 --eval-depths 0 0.5 \
  --eval-keys 4 --out ${OUT:-runs/out/e46-stretch} "$@"
