# E33's adapter beyond its run's own evaluation (2000 tokens, depths 0 and 0.5): 640 and 4000 tokens, the needle also in
# the question's segment (depth 1), and the `unseen` format (phrasings no training format uses), on held-out prose.
. .venv/bin/activate
export PYTHONPATH=/work/snap8e/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap8e/smollm2_finetune.py --base transfer --device cpu --eval-only --adapter runs/out/e33-lm \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler unseen --eval-lengths 640 4000 \
  --eval-depths 0 0.5 1 --eval-keys 4 --out runs/out/e33-eval
