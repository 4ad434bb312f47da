# E49 (session 16): E48 continued, its answers ended as their template ends one (--answer-end: "." in plain text,
# "<|im_end|>" in chat) and RULER's UUID needle (ruler-uuid, niah_single_3's values) a fifth of the needle batches.
# E47 ran on past every key in RULER's own chat prompts ("4926467776676777666...") and found no UUID (0/4).
#   bash runs/logs/session16/e49.sh [--resume]
SNAP=/work/snap16 BASE=runs/out/e48-first4 MINUTES=${MINUTES:-35} STRETCH=64 STRETCH_CURRICULUM=0 SEED=49 \
  OUT=runs/out/e49-end bash runs/logs/session15/e46.sh --first-answer-weight 4 --answer-end \
  --formats passkey ruler ruler paraphrase ruler-uuid "$@"
