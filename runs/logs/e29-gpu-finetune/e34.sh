# E34 (session 9, CPU): E30's recipe (answer loss, prompts of 520-640 tokens over training prose) from the transfer
# artifact, but no LoRA (--rank 0): only the memory path's own parameters (gates, Hedgehog feature maps) train. The
# local attention and every projection stay the original's, so one-segment inputs are exactly the original model's
# (E30's LoRA made it forget language: ppl 411x). Does retrieval still emerge? Feature lr 3e-3 (E30: 1e-3 beside LoRA).
set -x
. .venv/bin/activate
export PYTHONPATH=/work/snap9/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap9/smollm2_finetune.py --base transfer --device cpu --rank 0 --minutes 30 \
  --batch-size 8 --seq-len 640 --min-len 520 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --formats passkey ruler --haystacks runs/out/prose/train.txt --lr 1e-3 --feature-lr 3e-3 --warmup-steps 3 \
  --save-every 5 --print-every 1 \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 640 2000 --eval-depths 0 0.5 \
  --eval-keys 4 --out runs/out/e34-memonly "$@"
