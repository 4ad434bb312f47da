# The shipped adapter (E35) at 8000 tokens (LENGTHS=16000 KEYS=2: at 16K): passkey, held-out prose, depths 0 and 0.5, 4 fresh keys, memory reset beside.
. .venv/bin/activate
export PYTHONPATH=/work/main/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python runs/smollm2_finetune.py --base transfer --device cpu --eval-only --adapter src/infini_attention/assets/smollm2-memory \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey --eval-lengths ${LENGTHS:-8000} --eval-depths 0 0.5 \
  --eval-keys ${KEYS:-4} --out runs/out/e35-long-${LENGTHS:-8000}
