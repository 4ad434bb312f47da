# Session 17, after E50: E50 at 16K and its perplexity (runs/out/e50-look records its look back), then the SmolLM2
# demo with the shipped adapter (now with its look back) into docs/results/smollm2-memory-demo.md.
cd /work/main && . .venv/bin/activate
while ! grep -q ALLDONE runs/logs/session17/queue2.out; do sleep 10; done
ADAPTER=runs/out/e50-look bash runs/logs/session17/eval.sh 16k
OMP_NUM_THREADS=2 infini demo --model smollm2 --out runs/out/demo-look > runs/logs/session17/demo.log 2>&1
echo ALLDONE
