# E48 (session 16): E47 continued, stretched writes up to 64x (4K prompts the memory sees as up to ~256K tokens)
# and the key's first token weighted 4x in the answer loss (--first-answer-weight): at 32K E47's every answer
# started with "1" and went on with the needle's digits (the first digit is read with only the question's words as
# its memory query, and the haystack's prose writes those words too). The rest as E46/E47.
#   bash runs/logs/session16/e48.sh [--resume]
SNAP=/work/snap16 BASE=runs/out/e47-stretch32 MINUTES=${MINUTES:-40} STRETCH=64 STRETCH_CURRICULUM=0 SEED=48 \
  OUT=runs/out/e48-first4 bash runs/logs/session15/e46.sh --first-answer-weight 4 "$@"
