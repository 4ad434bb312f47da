# E38 (session 10, CPU): E37's adapter polished with the original's chat answers replayed every second step (E37: 16K
# passkey 5/8, but chat answers repeat themselves), lr 1e-4, 15 minutes, a new seed (E37 reused E36's step seeds).
set -x
. .venv/bin/activate
export PYTHONPATH=/work/snap10b/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap10b/smollm2_finetune.py --base transfer --device cpu --adapter runs/out/e37-chat --minutes 15 \
  --lm-weight 1.0 --replay runs/out/replay/chat.jsonl --replay-every 2 --replay-batch 4 --seed 1 \
  --batch-size 4 --seq-len 4096 --min-len 1536 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --checkpointing segment --templates plain chat \
  --formats passkey ruler ruler paraphrase --haystacks runs/out/prose/train.txt --lr 1e-4 --warmup-steps 2 \
  --save-every 5 --print-every 1 --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey \
  --eval-lengths 16000 --eval-depths 0 0.5 --eval-keys 4 --no-ablation --out runs/out/e38-polish "$@"
