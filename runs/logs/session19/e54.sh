# E54 (session 19): E53 (3 memory-LoRA shift taps, the two new ones trained 40 minutes from zero) trained on with a
# fresh optimizer, more of RULER's 7-digit needles among the formats (3 of 6 draws instead of 2 of 5): E53's misses are
# all in the last two or three digits of a 7-digit value. The rest as E53.
#   bash runs/logs/session19/e54.sh [--resume]
SNAP=/work/snap19 BASE=runs/out/e53-taps3 MINUTES=${MINUTES:-30} STRETCH=32 \
  STRETCH_CURRICULUM=0 SEED=54 OUT=runs/out/e54-taps3-ruler bash runs/logs/session15/e46.sh \
  --memory-shift 3 --formats passkey ruler ruler ruler paraphrase varied --local-tail 128 --local-sink 4 \
  --aligned-lengths 0.3 --eval-lengths 4000 4096 --eval-formats passkey ruler unseen --no-ablation "$@"
