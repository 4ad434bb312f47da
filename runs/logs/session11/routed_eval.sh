# A memory-only adapter (runs/tools/memory_lora_from_lora.py) zero-shot, held-out prose, the needle only in memory:
#   ADAPTER=runs/out/e35-memory-only bash runs/logs/session11/routed_eval.sh [--no-ablation]
. .venv/bin/activate
export PYTHONPATH=/work/snap11b/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python /work/snap11b/smollm2_finetune.py --base transfer --device cpu --eval-only --adapter ${ADAPTER:?} \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats ${FORMATS:-passkey ruler} --eval-lengths ${LENGTHS:-2000 4000} \
  --eval-depths 0 0.5 --eval-keys ${KEYS:-4} --out runs/out/eval-$(basename ${ADAPTER}) "$@"
