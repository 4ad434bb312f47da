# E30's evaluation (its own run's was killed for memory beside E31 and E32): the same arguments, --eval-only.
set -x
. .venv/bin/activate
export PYTHONPATH=/work/snap8d/src OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
python /work/snap8d/smollm2_finetune.py --base transfer --device cpu --eval-only --adapter runs/out/e30-short \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 640 2000 --eval-depths 0 0.5 \
  --eval-keys 4 --out runs/out/e30-short-eval
