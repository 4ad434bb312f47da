# E30 (session 8, CPU): can the end-to-end fine-tune learn retrieval at all at the shortest range? Prompts of 520-640
# tokens (segment 256: the needle in segments 0-1, the question in segment 2), 10% in the question's segment, from E29's
# transfer adapter (which already answers in the right format), 30 minutes on the CPU.
set -x
. .venv/bin/activate
export PYTHONPATH=/work/snap8b/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap8b/smollm2_finetune.py --base transfer --device cpu --adapter runs/out/e29-transfer --minutes 30 \
  --batch-size 8 --seq-len 640 --min-len 520 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --formats passkey ruler --haystacks runs/out/prose/train.txt --lr 1e-3 --warmup-steps 3 --save-every 10 --print-every 1 \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 640 2000 --eval-depths 0 0.5 \
  --eval-keys 4 --out runs/out/e30-short
