# Session 15: session 12's qtemp.sh with this checkout's code (it has the memory LoRA shift taps):
#   ADAPTER=runs/out/e45-doubled TAU=1 KEY_TAU=2 LENGTHS=32000 bash runs/logs/session15/qtemp.sh
SRC=/work/main/src bash /work/main/runs/logs/session12/qtemp.sh "$@"
