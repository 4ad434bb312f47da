# An adapter at long lengths on held-out prose, the needle only in memory (depths 0 and 0.5), memory reset beside:
#   ADAPTER=runs/out/e36-long LENGTHS="8000 16000" KEYS=4 FORMATS="passkey ruler" bash runs/logs/session10/long_eval.sh
. .venv/bin/activate
export PYTHONPATH=/work/main/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python runs/smollm2_finetune.py --base transfer --device cpu --eval-only --adapter ${ADAPTER:?} \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats ${FORMATS:-passkey} --eval-lengths ${LENGTHS:-16000} \
  --eval-depths 0 0.5 --eval-keys ${KEYS:-4} --out runs/out/eval-$(basename ${ADAPTER})-${LENGTHS// /-} "$@"
