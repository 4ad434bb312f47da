# Session 17's evaluations of an adapter: session 13's eval.sh with this session's snapshot and log folder.
# An adapter.json that records local_tail / local_sink runs with them (runs/out/e47-look: the shipped E47 + 128 / 4).
#   ADAPTER=runs/out/e47-look [EVAL_SEED=7] bash runs/logs/session17/eval.sh [16k] [32k] [short] [ruler] [ppl]
SNAP=${SNAP:-/work/snap17b} LOGS=runs/logs/session17 bash /work/main/runs/logs/session13/eval.sh "$@"
