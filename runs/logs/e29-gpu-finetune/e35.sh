# E35 (session 9, CPU): E33's adapter retrieves (passkey 4000 tokens 7/8 through the memory, held-out prose) and speaks
# on one segment, but answers a 500-token chat question with digits. Every 3rd step replays 4 of the original model's own
# answers to chat prompts over training-prose passages (runs/tools/chat_replay.py: runs/out/replay/chat.jsonl, 160);
# the other steps are E33's (passkey + RULER, 520-1024 tokens, LM loss on the prose). lr 3e-4, 30 minutes.
set -x
. .venv/bin/activate
export PYTHONPATH=/work/snap9/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap9/smollm2_finetune.py --base transfer --device cpu --adapter runs/out/e33-lm --minutes 30 \
  --lm-weight 1.0 --replay runs/out/replay/chat.jsonl --replay-every 3 --replay-batch 4 \
  --batch-size 8 --seq-len 1024 --min-len 520 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --formats passkey ruler --haystacks runs/out/prose/train.txt --lr 3e-4 --warmup-steps 3 --save-every 5 --print-every 1 \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 2000 4000 --eval-depths 0 0.5 \
  --eval-keys 4 --out runs/out/e35-replay "$@"
