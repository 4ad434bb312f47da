# Session 18: E52 as it would ship (runs/tools/ship_adapter.py: tensors in bfloat16, in runs/adapters/e52-varied) on
# the instances its float32 self was measured on: passkey, RULER single and unseen at 4,000 / 4,096, then passkey 32K.
#   bash runs/logs/session18/bf16_check.sh   (the folder was removed once shipped: it is byte-identical to
#   src/infini_attention/assets/smollm2-memory/adapter.safetensors, which now stands in for it)
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap18/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap18/smollm2_finetune.py --base transfer --device cpu --eval-only --adapter runs/adapters/e52-varied \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey ruler unseen --eval-lengths 4000 4096 \
  --eval-depths 0 0.5 --eval-keys 4 --no-ablation --out runs/out/eval-e52-bf16 2>&1 | tr '\r' '\n' | grep -v "%|" \
  > runs/logs/session18/e52-bf16_4k.log
ADAPTER=runs/adapters/e52-varied SNAP=/work/snap18 LOGS=runs/logs/session18 bash runs/logs/session13/eval.sh 32k
