# E32 (session 8, CPU): E30's adapter (retrieval learned at 520-640 tokens) on longer prompts, 700-1600 tokens
# (needle up to 5 segments back), 40 minutes, then evaluated at 2000 tokens.
set -x
. .venv/bin/activate
export PYTHONPATH=/work/snap8d/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap8d/smollm2_finetune.py --base transfer --device cpu --adapter runs/out/e30-short --minutes 40 \
  --batch-size 8 --seq-len 1600 --min-len 700 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --formats passkey ruler paraphrase --haystacks runs/out/prose/train.txt --lr 1e-3 --warmup-steps 3 --save-every 5 \
  --print-every 1 --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 2000 \
  --eval-depths 0 0.5 1 --eval-keys 4 --out runs/out/e32-1600
