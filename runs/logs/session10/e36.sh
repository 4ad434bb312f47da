# E36 (session 10, CPU): the shipped adapter (E35) on longer prompts, 1536-4096 tokens (6-16 segments of 256), so that the
# memory learns to keep a fact under 4x more later writes (E35: passkey 6/8 at 8000 tokens, 1/4 at 16000, digits reordered).
# E35's recipe otherwise: LM loss on the prose, the original's chat answers replayed every third step; formats passkey,
# RULER single and paraphrase (one more phrasing family); batch 4, segment-level gradient checkpointing (memory), lr 3e-4, 45 min.
set -x
. .venv/bin/activate
export PYTHONPATH=/work/snap10/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap10/smollm2_finetune.py --base transfer --device cpu --adapter runs/out/e35-replay --minutes 45 \
  --lm-weight 1.0 --replay runs/out/replay/chat.jsonl --replay-every 3 --replay-batch 4 \
  --batch-size 4 --seq-len 4096 --min-len 1536 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --checkpointing segment \
  --formats passkey ruler paraphrase --haystacks runs/out/prose/train.txt --lr 3e-4 --warmup-steps 3 --save-every 5 \
  --print-every 1 --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 4000 \
  --eval-depths 0 0.5 --eval-keys 4 --out runs/out/e36-long "$@"
