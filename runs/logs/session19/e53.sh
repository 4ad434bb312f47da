# E53 (session 19): the shipped E52 given two more memory-LoRA shift taps (3 in all; hf/lora.py:load_adapter grows a
# 1-tap adapter's, the new taps at zero so training starts from E52 exactly). Every RULER miss of E47/E52 keeps the first
# 4-5 digits of a 7-digit value and swaps or repeats the last ones: a memory keyed by one or two tokens cannot tell
# the successors of a digit that occurs twice apart; three taps key each digit by the three before it. The rest as E52.
#   bash runs/logs/session19/e53.sh [--resume]
SNAP=/work/snap19 BASE=src/infini_attention/assets/smollm2-memory MINUTES=${MINUTES:-40} STRETCH=32 \
  STRETCH_CURRICULUM=0 SEED=53 OUT=runs/out/e53-taps3 bash runs/logs/session15/e46.sh \
  --memory-shift 3 --formats passkey ruler ruler paraphrase varied --local-tail 128 --local-sink 4 \
  --aligned-lengths 0.3 --eval-lengths 4000 4096 --eval-formats passkey ruler unseen --no-ablation "$@"
