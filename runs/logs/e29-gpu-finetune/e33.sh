# E33 (session 8, CPU): E30's adapter retrieves but has forgotten language (one-segment perplexity 411x the original's,
# digits for every chat prompt: short_e30.md). The same task with the prompt's LM loss added (--lm-weight 1: the haystack
# prose is predicted too), prompts of 520-1024 tokens, lr 5e-4, 30 minutes.
set -x
. .venv/bin/activate
export PYTHONPATH=/work/snap8e/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap8e/smollm2_finetune.py --base transfer --device cpu --adapter runs/out/e30-short --minutes 30 \
  --lm-weight 1.0 --batch-size 8 --seq-len 1024 --min-len 520 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --formats passkey ruler --haystacks runs/out/prose/train.txt --lr 5e-4 --warmup-steps 3 --save-every 5 --print-every 1 \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 2000 --eval-depths 0 0.5 \
  --eval-keys 4 --out runs/out/e33-lm "$@"
