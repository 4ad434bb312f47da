#!/usr/bin/env bash
# Session 8, device call 1 (H200): receive the first half of the GGUF, run benchmarks/gpu.py (issue 17),
# then a smoke run of runs/smollm2_finetune.py on a random model of SmolLM2's shape (calibrates step time).
set -x
mkdir -p /root/gpu && cp .gpu/a/* /root/gpu/
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -m pip install -q --no-index --no-deps --target /root/site .gpu/a/gguf-*.whl
export PYTHONPATH=$PWD/src:/root/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=8
python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__, torch.cuda.get_device_name())"
(cd benchmarks && timeout ${BENCH_S:-150} python3 gpu.py --device cuda --write-docs --smollm2-model random --lengths 8K,128K,1M --segments 4,64,512 --steps 3) 2>&1 | tee $OUT/gpu.log
cp docs/performance.md $OUT/performance.md
python3 - <<'PY'
import sys; from pathlib import Path
sys.path.insert(0, "benchmarks")
import train_smollm2
print(train_smollm2._random_model(Path("/root/rand"), 30))
PY
timeout ${SMOKE_S:-60} python3 runs/smollm2_finetune.py --base transfer --source /root/rand --device cuda --minutes 1 \
  --max-steps 4 --batch-size 16 --seq-len 8192 --min-len 6000 --checkpointing segment --print-every 1 \
  --eval-lengths 4000 --eval-depths 0 1 --eval-keys 2 --eval-formats passkey --out $OUT/smoke 2>&1 | grep -v "it/s" | tee $OUT/smoke.log
ls -la $OUT $OUT/smoke
