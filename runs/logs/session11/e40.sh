# E40 (session 11): E39 (the memory path's feature maps and gates only; no LoRA) on prompts of 768-2048 tokens (3-8
# segments), passkey / RULER single / paraphrase, half the batches in the chat template, the prose's LM loss beside the
# answer loss. The local attention and every projection stay the GGUF's.   bash runs/logs/session11/e40.sh [--resume]
set -x
. .venv/bin/activate
export PYTHONPATH=/work/snap11/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap11/smollm2_finetune.py --base transfer --device cpu --rank 0 --adapter runs/out/e39-features \
  --minutes ${MINUTES:-35} --batch-size 4 --seq-len 2048 --min-len 768 --local-start 0.1 --local-end 0.1 \
  --curriculum-steps 1 --formats passkey ruler ruler paraphrase --templates plain chat --lm-weight 0.5 \
  --haystacks runs/out/prose/train.txt --feature-lr 2e-3 --gate-lr 0.05 --warmup-steps 3 --checkpointing segment \
  --save-every 5 --print-every 1 --seed 40 \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler --eval-lengths 4000 --eval-depths 0 0.5 \
  --eval-keys 4 --out runs/out/e40-features-2k "$@"
