# Session 19: E53 (3 memory-LoRA shift taps) on the key-length curve's long end, 8 and 9 digits (digits.sh's cells).
#   bash runs/logs/session19/digits_e53.sh
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap19/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
for D in 8 9; do
  python /work/snap19/smollm2_finetune.py --base transfer --device cpu --eval-only \
    --adapter runs/out/e53-taps3 --eval-haystack runs/out/prose/heldout.txt --eval-formats passkey \
    --eval-digits $D --eval-lengths 4000 4096 --eval-depths 0 0.5 --eval-keys 4 --no-ablation \
    --out runs/out/eval-e53-digits$D 2>&1 | tr '\r' '\n' | grep -v "%|" > runs/logs/session19/e53-taps3_digits$D.log
done
