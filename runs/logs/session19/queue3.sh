# Session 19: keys of a length no adapter saw before E55 (9 digits; 5 for passkey and 7 for RULER by default), the
# paper's passkey prompt at 4,000 / 4,096, the needle only in memory: E55 (trained on 5-10 digits) and the shipped E52.
#   bash runs/logs/session19/queue3.sh
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap19/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
while pgrep -f "queue2.sh" > /dev/null; do sleep 20; done
for A in runs/out/e55-key-digits src/infini_attention/assets/smollm2-memory; do
  python /work/snap19/smollm2_finetune.py --base transfer --device cpu --eval-only --adapter $A \
    --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey --eval-digits 9 --eval-lengths 4000 4096 \
    --eval-depths 0 0.5 --eval-keys 4 --no-ablation --out runs/out/eval-$(basename $A)-digits9 \
    2>&1 | tr '\r' '\n' | grep -v "%|" > runs/logs/session19/$(basename $A)_digits9.log
done
