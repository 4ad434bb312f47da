# Session 17's first look at the local tail + sink (a hack of the snapshot /work/snap17: SINK=S in the environment
# keeps the stream's first S tokens before the tail; the proper options came after).
#   SINK=4 TAIL=128 ADAPTER=... NAME=... LENGTH=4096 FORMATS="passkey" ABLATION=--no-ablation bash eval_hack.sh
. /work/main/.venv/bin/activate
cd /work/main
SINK=${SINK:-0} PYTHONPATH=/work/snap17/src python /work/snap17/smollm2_finetune.py --base transfer --device cpu \
  --eval-only --adapter ${ADAPTER:-src/infini_attention/assets/smollm2-memory} \
  --eval-haystack runs/out/prose/heldout.txt --eval-formats ${FORMATS:-passkey} --eval-lengths ${LENGTH:-4096} \
  --eval-depths 0 0.5 --eval-keys 4 ${ABLATION:---no-ablation} --local-tail ${TAIL:-128} \
  --out runs/out/eval-${NAME:-x}-${LENGTH:-4096} > runs/logs/session17/${NAME:-x}_${LENGTH:-4096}.log 2>&1
