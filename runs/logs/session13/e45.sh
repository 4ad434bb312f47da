# E45 (session 14): E44 (memory LoRA + shift taps) continued with a doubled digit in every training key
# (--doubled-keys 1.0; E44 drew 0.3). runs/tools/miss_kinds.py: E44's misses at 4K and 16K all start at a digit whose
# predecessor has two successors in the value, mostly a doubled digit (53664 -> 53656, 98810 -> 98101); the byte model
# gained from the same change (E25). The rest as E44.
#   bash runs/logs/session13/e45.sh [--resume]
BASE=${BASE:-runs/out/e44-memory-shift} MINUTES=${MINUTES:-40} DOUBLED=1.0 SEED=45 OUT=${OUT:-runs/out/e45-doubled} \
  bash /work/main/runs/logs/session13/e44.sh "$@"
