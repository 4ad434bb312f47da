# Session 19: E54 (e54.sh) after queue.sh's evaluations of E53, then E54 on RULER at 16,000 / 32,000 (queue.sh's cells).
#   bash runs/logs/session19/queue2.sh
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap19/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
while pgrep -f "queue.sh" > /dev/null; do sleep 20; done
bash runs/logs/session19/e54.sh > runs/logs/session19/e54.log 2>&1
python /work/snap19/smollm2_finetune.py --base transfer --device cpu --eval-only \
  --adapter runs/out/e54-taps3-ruler --eval-haystack runs/out/prose/heldout.txt --eval-formats ruler \
  --eval-lengths 16000 32000 --eval-depths 0 0.5 --eval-keys 4 --no-ablation --out runs/out/eval-e54-ruler-long \
  2>&1 | tr '\r' '\n' | grep -v "%|" > runs/logs/session19/e54_ruler_long.log
