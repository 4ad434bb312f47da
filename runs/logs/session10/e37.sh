# E37 (session 10, CPU): E36's adapter with half the needle batches wrapped in the model's own chat template
# (data/templates.py "chat": one user turn, the answer in the assistant's turn), as users of an instruct model send
# them: the shipped adapter scored 1/16 on `infini eval ruler --model smollm2-memory` (chat template, RULER's own
# prompts) at 4000 tokens. RULER single twice as often as passkey and paraphrase (7-digit values lose their order).
# E36's settings otherwise: 1536-4096 tokens, LM loss on the prose, replay every third step, lr 2e-4, 35 minutes.
set -x
. .venv/bin/activate
export PYTHONPATH=/work/snap10b/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap10b/smollm2_finetune.py --base transfer --device cpu --adapter runs/out/e36-long --minutes 35 \
  --lm-weight 1.0 --replay runs/out/replay/chat.jsonl --replay-every 3 --replay-batch 4 \
  --batch-size 4 --seq-len 4096 --min-len 1536 --local-start 0.1 --local-end 0.1 --curriculum-steps 1 \
  --checkpointing segment --templates plain chat \
  --formats passkey ruler ruler paraphrase --haystacks runs/out/prose/train.txt --lr 2e-4 --warmup-steps 3 \
  --save-every 5 --print-every 1 --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler \
  --eval-template chat --eval-lengths 4000 --eval-depths 0 0.5 --eval-keys 4 --out runs/out/e37-chat "$@"
