# The shipped adapter (or ADAPTER) with the memory read's query scaled by TAU (qtemp_eval.py), zero-shot:
#   TAU=2 LENGTHS=16000 bash runs/logs/session12/qtemp.sh      (SRC: the code it imports, default /work/snap12/src)
cd /work/main && . .venv/bin/activate
export PYTHONPATH=${SRC:-/work/snap12/src} OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
ADAPTER=${ADAPTER:-src/infini_attention/assets/smollm2-memory}
TAU=${TAU:?} python runs/logs/session12/qtemp_eval.py --base transfer --device cpu --eval-only --adapter $ADAPTER \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats ${FORMATS:-passkey} --eval-lengths ${LENGTHS:-16000} \
  --eval-depths 0 0.5 --eval-keys ${KEYS:-4} --no-ablation --out runs/out/qtemp-$(basename $ADAPTER)-${TAU}-${KEY_TAU:-1}-${LENGTHS:-16000} "$@"
