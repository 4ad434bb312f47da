# E47 (session 15): E46 continued with stretched writes up to 32x, no stretch curriculum, 35 minutes. E46 (stretch
# up to 16x) lifted the needle's share of the read at 32K from E45's 0.16-0.22 to 0.55-0.63 and its 32K answers now
# end in the needle's last 3 digits (30999 -> 11999, 87552 -> 11552): the first digits are what is still lost.
#   bash runs/logs/session15/e47.sh [--resume]
BASE=runs/out/e46-stretch MINUTES=35 STRETCH=32 STRETCH_CURRICULUM=0 SEED=47 OUT=runs/out/e47-stretch32 \
  bash /work/main/runs/logs/session15/e46.sh "$@"
