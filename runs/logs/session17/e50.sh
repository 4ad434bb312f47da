# E50 (session 17): E47 continued with the local look back on (--local-tail 128 --local-sink 4: every segment's
# local attention also sees the previous segment's last 128 tokens and the stream's first 4, the attention sink),
# a third of the prompts ending on a segment boundary (--aligned-lengths 0.3), stretched writes up to 32x as E47.
# E47 with the look back switched on after training already finds 8/8 at 4,096 (0/8 without): does training with
# it sharpen the 7-digit RULER values? The rest as E46/E47 (session15/e46.sh).
#   bash runs/logs/session17/e50.sh [--resume]
SNAP=/work/snap17b BASE=runs/out/e47-stretch32 MINUTES=${MINUTES:-35} STRETCH=32 STRETCH_CURRICULUM=0 SEED=50 \
  OUT=runs/out/e50-look bash runs/logs/session15/e46.sh --local-tail 128 --local-sink 4 --aligned-lengths 0.3 \
  --eval-lengths 4000 4096 --no-ablation "$@"
