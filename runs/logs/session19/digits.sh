# Session 19: where the shipped adapter's recall breaks with the key's length: the paper's passkey prompt over held-out
# prose with 6- and 8-digit keys (queue3.sh did 9), 4,000 / 4,096, depths 0 / 0.5, 4 keys a cell, needle only in memory.
#   bash runs/logs/session19/digits.sh
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap19/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
for D in 6 8; do
  python /work/snap19/smollm2_finetune.py --base transfer --device cpu --eval-only \
    --adapter src/infini_attention/assets/smollm2-memory --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey \
    --eval-digits $D --eval-lengths 4000 4096 --eval-depths 0 0.5 --eval-keys 4 --no-ablation \
    --out runs/out/eval-smollm2-memory-digits$D 2>&1 | tr '\r' '\n' | grep -v "%|" > runs/logs/session19/smollm2-memory_digits$D.log
done
