# Session 13's evaluations of an adapter, each on the same instances / pieces as E35's and E42's:
#   ADAPTER=runs/out/e43-long-replay bash runs/logs/session13/eval.sh [16k] [32k] [short] [ruler] [ppl]
# SNAP: the code snapshot the passkey runs import (default /work/snap13); LOGS: where the logs go (runs/logs/session13)
# EVAL_SEED: 16k/32k on other instances than session 10's (default 1234, theirs); the folder and log get -sSEED
# 16k: passkey at 16000 tokens, the needle only in memory (session 10's instances: E35 2/8, E42 5/8)
# 32k: the same at 32000 tokens (session 10's long_eval.sh instances: E35 0/8; added in session 15)
# short: one-segment perplexity and chat prompts against the original, the 500-token Genesis question (smollm2_short.py)
# ruler: RULER's own prompts in the chat template at 4000 tokens (E35 1/16, E42 4/16)
# ppl: perplexity by position, the first 32K tokens of Genesis and the Debian handbook (session 10's ppl.md)
cd /work/main && . .venv/bin/activate
SNAP=${SNAP:-/work/snap13}
export PYTHONPATH=$SNAP/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
A=${ADAPTER:?}; N=$(basename $A)
L=${LOGS:-runs/logs/session13}
for what in "$@"; do
  case $what in
  16k|32k) length=${what%k}000; S=${EVAL_SEED:+-s$EVAL_SEED}
    python $SNAP/smollm2_finetune.py --base transfer --device cpu --eval-only --adapter $A \
      --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey --eval-lengths $length --eval-depths 0 0.5 \
      --eval-keys 4 --eval-seed ${EVAL_SEED:-1234} --no-ablation --out runs/out/eval-$N-$length$S 2>&1 \
      | tr '\r' '\n' | grep -v "%|" > $L/${N}_$what$S.log ;;
  short) python runs/smollm2_short.py --adapter $A --pieces 10 --long-pieces 2 > $L/short_$N.md 2> $L/short_$N.err ;;
  ruler) infini eval ruler --model $A --tasks niah_single_1 niah_single_2 niah_single_3 niah_multikey_1 \
      --lengths 4000 --samples 4 --haystack runs/out/prose/heldout.txt --out runs/out/ruler-chat-$N/ruler4k 2>&1 \
      | tr '\r' '\n' | grep -v "%|" > $L/ruler_chat_$N.log
    cp runs/out/ruler-chat-$N/ruler4k.md $L/ruler_chat_$N.md ;;
  ppl) python runs/smollm2_ppl.py --books runs/out/books/genesis-kjv.txt runs/out/books/debian-handbook.txt \
      --tokens 32K --adapters $A --out runs/out/ppl/$N-32k > $L/ppl_$N.md 2> $L/ppl_$N.err
    cp runs/out/ppl/$N-32k.json $L/ppl_$N.json ;;
  *) echo "unknown evaluation $what (16k, 32k, short, ruler, ppl)"; exit 2 ;;
  esac
done
