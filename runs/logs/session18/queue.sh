# Session 18's evaluation queue, after E51 (runs/logs/session18/e51.sh) has finished, one job at a time:
#   bash runs/logs/session18/queue.sh
# 1. RULER's own chat prompts at 4,000 for E51 (the instances of session 17's shipped-adapter run: 5/16);
# 2. the `unseen` format (phrasings no training format has) at 4,000 and 4,096, 8 instances a cell, for the shipped
#    adapter (with its look back) and E51: how far the retrieval carries beyond the trained sentences.
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap18/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
while pgrep -f "smollm2_finetune.py.*e51-kinds" > /dev/null; do sleep 20; done
ADAPTER=runs/out/e51-kinds SNAP=/work/snap18 LOGS=runs/logs/session18 bash runs/logs/session13/eval.sh ruler
for A in src/infini_attention/assets/smollm2-memory runs/out/e51-kinds; do
  N=$(basename $A)
  python /work/snap18/smollm2_finetune.py --base transfer --device cpu --eval-only --adapter $A \
    --eval-haystack runs/out/prose/heldout.txt --eval-formats unseen --eval-lengths 4000 4096 --eval-depths 0 0.5 \
    --eval-keys 4 --no-ablation --out runs/out/eval-unseen-$N 2>&1 | tr '\r' '\n' | grep -v "%|" \
    > runs/logs/session18/unseen_$N.log
done
