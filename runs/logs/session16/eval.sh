# Session 16's evaluations of an adapter: session 13's eval.sh with this session's snapshot and log folder.
#   ADAPTER=runs/out/e48-first4 [EVAL_SEED=7] bash runs/logs/session16/eval.sh [16k] [32k] [short] [ruler] [ppl]
SNAP=${SNAP:-/work/snap16b} LOGS=runs/logs/session16 bash /work/main/runs/logs/session13/eval.sh "$@"
