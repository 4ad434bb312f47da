# Session 18: the shipped adapter (E47 + its look back 128 / 4) on RULER's single needle (our prompt, plain) at 4,000,
# 16,000 and 32,000 tokens, the needle only in memory, 8 instances a length (never measured with the look back beyond
# 4,096); then E52 (e52.sh) and RULER's own chat prompts for it.
#   bash runs/logs/session18/queue3.sh
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap18/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
while pgrep -f "queue.sh" > /dev/null; do sleep 20; done
python /work/snap18/smollm2_finetune.py --base transfer --device cpu --eval-only \
  --adapter src/infini_attention/assets/smollm2-memory --eval-haystack runs/out/prose/heldout.txt --eval-formats ruler \
  --eval-lengths 4000 16000 32000 --eval-depths 0 0.5 --eval-keys 4 --no-ablation --out runs/out/eval-shipped-ruler-long \
  2>&1 | tr '\r' '\n' | grep -v "%|" > runs/logs/session18/shipped_ruler_long.log
bash runs/logs/session18/e52.sh > runs/logs/session18/e52.log 2>&1
ADAPTER=runs/out/e52-varied SNAP=/work/snap18 LOGS=runs/logs/session18 bash runs/logs/session13/eval.sh ruler
