#!/usr/bin/env bash
# Session 8, device call 2 (H200): the second half of the GGUF, then runs/smollm2_finetune.py twice at once
# (base transfer = the shipped artifact's Hedgehog maps; base paper = ELU+1), each MINUTES of training,
# then its evaluation on held-out prose. LIMIT_S: this call's limit (the python runs stop 25 s before it).
set -x
start=$(date +%s)
python3 - <<'PY'
import hashlib, lzma
data = lzma.decompress(open("/root/gpu/g.xz.a", "rb").read() + open(".gpu/b/g.xz.b", "rb").read())
open("/root/smollm2.gguf", "wb").write(data)
print("gguf sha256", hashlib.sha256(data).hexdigest(), len(data))
PY
xz -d -c .gpu/b/train.txt.xz > /root/train.txt; xz -d -c /root/gpu/heldout.txt.xz > /root/heldout.txt
export PYTHONPATH=$PWD/src:/root/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=6
left=$(( ${LIMIT_S:-540} - ($(date +%s) - start) - 25 ))
for base in transfer paper; do
  timeout $left python3 runs/smollm2_finetune.py --base $base --source gguf:/root/smollm2.gguf --device ${DEVICE:-cuda} \
    --minutes ${MINUTES:-5} --batch-size ${B:-16} --seq-len ${SEQ:-8192} --min-len 1024 --checkpointing segment \
    --lr ${LR:-1e-3} --warmup-steps 5 ${EXTRA:-} --save-every 10 \
    --haystacks /root/train.txt --eval-haystack /root/heldout.txt --eval-formats passkey ruler unseen \
    --eval-lengths ${EVAL_LENGTHS:-4000 16000 32000} --eval-depths 0 0.5 1 --eval-keys ${KEYS:-8} --out $OUT/$base \
    2>&1 | grep -v "it/s]" > $OUT/$base.log &
done
wait
for base in transfer paper; do
  tail -3 $OUT/$base.log
  (cd $OUT && tar czf $base-run.tgz $base.log $base/adapter.json $base/train.jsonl $base/eval.json && rm -f $base.log $base/*.json*)
done
ls -la $OUT $OUT/*
