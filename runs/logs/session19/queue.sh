# Session 19: after E53's training (e53.sh, which ends with passkey / RULER / unseen at 4,000 and 4,096), E53 on RULER's
# single needle (our plain prompt) at 16,000 and 32,000 (the instances of session 18's shipped_ruler_long.log), then
# RULER's own prompts in the chat template at 4,000 (session 13's eval.sh ruler: the instances of every adapter since).
#   bash runs/logs/session19/queue.sh
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap19/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
while pgrep -f "e53.sh" > /dev/null; do sleep 20; done
python /work/snap19/smollm2_finetune.py --base transfer --device cpu --eval-only \
  --adapter runs/out/e53-taps3 --eval-haystack runs/out/prose/heldout.txt --eval-formats ruler \
  --eval-lengths 16000 32000 --eval-depths 0 0.5 --eval-keys 4 --no-ablation --out runs/out/eval-e53-ruler-long \
  2>&1 | tr '\r' '\n' | grep -v "%|" > runs/logs/session19/e53_ruler_long.log
ADAPTER=runs/out/e53-taps3 SNAP=/work/snap19 LOGS=runs/logs/session19 bash runs/logs/session13/eval.sh ruler
