# E52 (session 18): the shipped E47 trained on with its local look back (128 / 4) and a new training format,
# `varied` (data/formats.py: 16 names x 12 statements x 12 questions x 7 instructions, drawn part by part, none of
# them the held-out `unseen` format's). The shipped adapter found 13/16 on `unseen` at 4,000/4,096 (plain prompts);
# its misses continued the question ("given in the text.") instead of giving the number. E51 (answers that end,
# RULER multi-key and UUID needles) cut its 7-digit answers short and is not continued. The rest as E50.
#   bash runs/logs/session18/e52.sh [--resume]
SNAP=/work/snap18 BASE=src/infini_attention/assets/smollm2-memory MINUTES=${MINUTES:-30} STRETCH=32 \
  STRETCH_CURRICULUM=0 SEED=52 OUT=runs/out/e52-varied bash runs/logs/session15/e46.sh \
  --formats passkey ruler ruler paraphrase varied --local-tail 128 --local-sink 4 \
  --aligned-lengths 0.3 --eval-lengths 4000 4096 --eval-formats passkey ruler unseen --no-ablation "$@"
