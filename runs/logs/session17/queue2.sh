# Session 17, after the first look: the options themselves (snapshot /work/snap17b) at 4,096 tokens, then the shipped
# E47 with the look back (runs/out/e47-look: its adapter.json records local_tail 128, local_sink 4) at 16K, perplexity,
# RULER's own chat prompts; then E50.
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap17b/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
one() {  # NAME TAIL SINK
  python /work/snap17b/smollm2_finetune.py --base transfer --device cpu --eval-only \
    --adapter src/infini_attention/assets/smollm2-memory --eval-haystack runs/out/prose/heldout.txt \
    --eval-formats passkey --eval-lengths 4096 --eval-depths 0 0.5 --eval-keys 4 --no-ablation \
    --local-tail $2 --local-sink $3 --out runs/out/eval-$1-4096 2>&1 | tr '\r' '\n' | grep -v "%|" \
    > runs/logs/session17/$1_4096.log
}
one look128-4 128 4
one look0-4 0 4
one look32-4 32 4
one look128-1 128 1
ADAPTER=runs/out/e47-look bash runs/logs/session17/eval.sh 16k ppl ruler
bash runs/logs/session17/e50.sh > runs/logs/session17/e50.log 2>&1
echo ALLDONE
