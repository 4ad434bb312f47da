# E49 (session 16): E48 continued with half of the needle prompts a whole number of segments long (--aligned-lengths
# 0.5, E35-E48: 0.2), so that the answer starts a fresh segment, and the answers ended as their template ends one
# (--answer-end: "." in plain text, "<|im_end|>" in chat). E48 finds 8/8 at 31,900 tokens but 1/8 at 32,000 and
# 0/16 at 4,096: both are multiples of 256, where the first answer token opens a new segment with nothing of the
# question in its local window (E47 ran on past every key in RULER's own chat prompts, "4926467776676777666...").
#   bash runs/logs/session16/e49.sh [--resume]
SNAP=/work/snap16b BASE=runs/out/e48-first4 MINUTES=${MINUTES:-30} STRETCH=64 STRETCH_CURRICULUM=0 SEED=49 \
  OUT=runs/out/e49-aligned bash runs/logs/session15/e46.sh --first-answer-weight 4 --answer-end \
  --aligned-lengths 0.5 --eval-lengths 4096 4000 "$@"
