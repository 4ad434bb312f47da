# Session 19: E55 (e55.sh), then E55 on RULER at 16,000 / 32,000 (queue.sh's cells for E53).
#   bash runs/logs/session19/queue2.sh
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap19/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
bash runs/logs/session19/e55.sh > runs/logs/session19/e55.log 2>&1
python /work/snap19/smollm2_finetune.py --base transfer --device cpu --eval-only \
  --adapter runs/out/e55-key-digits --eval-haystack runs/out/prose/heldout.txt --eval-formats ruler \
  --eval-lengths 16000 32000 --eval-depths 0 0.5 --eval-keys 4 --no-ablation --out runs/out/eval-e55-ruler-long \
  2>&1 | tr '\r' '\n' | grep -v "%|" > runs/logs/session19/e55_ruler_long.log
