# The delta rule with its normaliser capped at HORIZON tokens (an experiment: cap_eval.py patches the rule), zero-shot:
#   HORIZON=4096 ADAPTER=runs/out/e37-chat bash runs/logs/session11/cap32.sh
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap11/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
HORIZON=${HORIZON:-4096} python runs/logs/session11/cap_eval.py --base transfer --device cpu --eval-only --adapter ${ADAPTER:?} \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey --eval-lengths ${LENGTHS:-32000} \
  --eval-depths 0 0.5 --eval-keys 4 --no-ablation --out runs/out/cap-$(basename $ADAPTER)-${HORIZON}-${LENGTHS:-32000}
