# CPU evaluation of the two adapters trained on the H200 (session 8), same instances for both.
set -x
export PYTHONPATH=/work/snap8/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
for base in transfer paper; do
  python /work/snap8/smollm2_finetune.py --base $base --device cpu --eval-only --adapter runs/out/e29-$base \
    --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 4000 \
    --eval-depths 0.5 1 --eval-keys 4 --out runs/out/e29-$base-eval
done
