# E45 (session 14): E44 (memory LoRA + shift taps) continued with a doubled digit in every training key
# (--doubled-keys 1.0; E44 drew 0.3). runs/tools/miss_kinds.py: E44's misses at 4K and 16K all start at a digit whose
# predecessor has two successors in the value, mostly a doubled digit (53664 -> 53656, 98810 -> 98101); the byte model
# gained from the same change (E25). The rest as E44.
#   bash runs/logs/session13/e45.sh [--resume]
set -x
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap13/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap13/smollm2_finetune.py --base transfer --device cpu --adapter ${BASE:-runs/out/e44-memory-shift} \
  --rank 0 --lr 0 --memory-rank 32 --memory-shift 1 --alpha 32 --memory-lr 1e-3 --feature-lr 5e-4 --gate-lr 0.02 \
  --minutes ${MINUTES:-40} --lm-weight 1.0 --replay runs/out/replay/chat-mixed.jsonl --replay-every 2 --replay-batch 4 \
  --batch-size 4 --seq-len 4096 --min-len 1536 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --checkpointing segment --templates plain chat --formats passkey ruler ruler paraphrase --doubled-keys 1.0 \
  --haystacks runs/out/prose/train.txt --warmup-steps 3 --save-every 3 --print-every 1 --seed 45 \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 4000 --eval-depths 0 0.5 \
  --eval-keys 4 --out ${OUT:-runs/out/e45-doubled} "$@"
