# E55 (session 19): E53 (3 memory-LoRA shift taps) trained on with keys of 5 to 10 digits in every numeric format
# (--key-digits: one length a batch; RULER's values too, 7 digits by default). Every RULER miss of E47-E53 swaps the
# last two or three digits of a 7-digit value while 5-digit passkeys are always right: our reading is that the memory
# read tells digit positions apart by counting, which blurs past the fifth digit; mixed lengths leave no length to
# count on, and the shift taps' content (the digits before each one) is what tells positions apart. A user's keys
# can have any length, too. The rest as E53 (a fresh optimizer, from E53's adapter).
#   bash runs/logs/session19/e55.sh [--resume]
SNAP=/work/snap19 BASE=runs/out/e53-taps3 MINUTES=${MINUTES:-30} STRETCH=32 \
  STRETCH_CURRICULUM=0 SEED=55 OUT=runs/out/e55-key-digits bash runs/logs/session15/e46.sh \
  --memory-shift 3 --key-digits 5 6 7 8 9 10 --formats passkey ruler ruler paraphrase varied \
  --local-tail 128 --local-sink 4 --aligned-lengths 0.3 --eval-lengths 4000 4096 --eval-formats passkey ruler unseen \
  --no-ablation "$@"
