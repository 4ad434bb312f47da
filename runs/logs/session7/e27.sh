cd /work/main
export PYTHONPATH=/work/snap7b/src OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
. .venv/bin/activate
python -m infini_attention.cli.main train --task passkey --init-from runs/out/e25-doubled/checkpoint --model sparse_cache=128 --formats passkey paraphrase ruler ruler-multikey ruler-multikey --haystacks paper runs/out/prose/train.txt runs/out/prose/train.txt runs/out/prose/train.txt runs/out/prose/train.txt --eval-haystack runs/out/prose/heldout.txt --sharpness-lr 1e-2 --doubled-keys 1.0 --aligned-lengths 0.5 --seq-len 5120 --min-len 1024 --local-start 0.2 --local-end 0.2 --batch-size 8 --steps 600 --lr 2e-4 --warmup-steps 20 --save-every 50 --eval-every 300 --eval-lengths 4000 32000 --eval-keys 5 --no-progress --out runs/out/e27-sparse-cache "$@"
