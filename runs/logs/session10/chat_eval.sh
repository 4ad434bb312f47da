# An adapter on our needle formats wrapped in the chat template (data/templates.py), held-out prose, 4 fresh keys per
# cell, the needle only in memory:  ADAPTER=src/infini_attention/assets/smollm2-memory LENGTHS=4000 bash ...chat_eval.sh
. .venv/bin/activate
export PYTHONPATH=/work/main/src OMP_NUM_THREADS=${THREADS:-2} OMP_WAIT_POLICY=PASSIVE
python runs/smollm2_finetune.py --base transfer --device cpu --eval-only --adapter ${ADAPTER:?} \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats ${FORMATS:-passkey ruler unseen} --eval-template chat \
  --eval-lengths ${LENGTHS:-4000} --eval-depths 0 0.5 --eval-keys ${KEYS:-4} \
  --out runs/out/chat-$(basename ${ADAPTER})-${LENGTHS// /-} "$@"
