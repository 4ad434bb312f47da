# Session 15's evaluations of an adapter: session 13's eval.sh with this session's snapshot and log folder.
#   ADAPTER=runs/out/e47-stretch32 bash runs/logs/session15/eval.sh [16k] [32k] [short] [ruler] [ppl]
SNAP=/work/snap15 LOGS=runs/logs/session15 bash /work/main/runs/logs/session13/eval.sh "$@"
