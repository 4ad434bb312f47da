# E39 (session 11): no LoRA at all. From the transfer artifact, only the memory path's own parameters (Hedgehog
# feature maps) and the gates are trained (--rank 0), E30's shortest range (520-640-token prompts, needle in segments
# 0-1, question in segment 2). The local attention and every projection stay the GGUF's, so a one-segment input is
# the original model exactly. Does retrieval start without LoRA?   bash runs/logs/session11/e39.sh [--resume]
set -x
. .venv/bin/activate
export PYTHONPATH=/work/snap11/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap11/smollm2_finetune.py --base transfer --device cpu --rank 0 --minutes 30 \
  --batch-size 8 --seq-len 640 --min-len 520 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --formats passkey ruler --haystacks runs/out/prose/train.txt --feature-lr 3e-3 --gate-lr 0.05 --warmup-steps 3 \
  --save-every 10 --print-every 1 --seed 39 \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 640 2000 --eval-depths 0 0.5 \
  --eval-keys 4 --out runs/out/e39-features "$@"
