# E51 (session 18): the shipped E47 trained on with the local look back on (128 / 4, as it ships) and RULER's
# other needle kinds in training: 4-key multi-key needles (ruler-multikey) and UUID values (ruler-uuid), beside the
# paper's passkey, RULER single and the paraphrases; answers that end as their template does (--answer-end: "." in
# plain text, <|im_end|> in chat). RULER's own chat prompts gave 5/16 with the shipped adapter (UUIDs and multi-key
# 0/4 each): E47 never saw either kind. The rest as E50 (session17/e50.sh: stretched writes up to 32x, a third of the
# prompts ending on a segment boundary).
#   bash runs/logs/session18/e51.sh [--resume]
SNAP=/work/snap18 BASE=src/infini_attention/assets/smollm2-memory MINUTES=${MINUTES:-40} STRETCH=32 \
  STRETCH_CURRICULUM=0 SEED=51 OUT=runs/out/e51-kinds bash runs/logs/session15/e46.sh \
  --formats passkey ruler ruler-multikey ruler-uuid paraphrase --answer-end --local-tail 128 --local-sink 4 \
  --aligned-lengths 0.3 --eval-lengths 4000 4096 --no-ablation "$@"
