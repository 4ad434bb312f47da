# Session 18's evaluations of an adapter: session 13's eval.sh with this session's snapshot and log folder, and
# RULER's own chat prompts with more instances on a seed of their own (ruler8: 8 a task, seed RULER_SEED, default 18).
#   ADAPTER=src/infini_attention/assets/smollm2-memory bash runs/logs/session18/eval.sh [ruler8] [16k] [32k] [ppl] ...
cd /work/main && . .venv/bin/activate
export SNAP=${SNAP:-/work/snap18} LOGS=runs/logs/session18
export PYTHONPATH=$SNAP/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
A=${ADAPTER:?}; N=$(basename $A); RS=${RULER_SEED:-18}
for what in "$@"; do
  case $what in
  ruler8) infini eval ruler --model $A --tasks niah_single_1 niah_single_2 niah_single_3 niah_multikey_1 \
      --lengths 4000 --samples 8 --seed $RS --haystack runs/out/prose/heldout.txt --out runs/out/ruler8-$N-s$RS/ruler4k \
      2>&1 | tr '\r' '\n' | grep -v "%|" > $LOGS/ruler8_${N}_s$RS.log
    cp runs/out/ruler8-$N-s$RS/ruler4k.md $LOGS/ruler8_${N}_s$RS.md ;;
  *) bash /work/main/runs/logs/session13/eval.sh $what ;;
  esac
done
