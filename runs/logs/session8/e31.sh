# E31 (session 8): the shipped 2-layer model grown to 4 layers (runs/tools/grow_depth.py: identity layers after
# layers 0 and 1), then E25's recipe with RULER multi-key twice as often: does depth put the asked key into the query?
cd /work/main
export PYTHONPATH=/work/snap8c/src OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
. .venv/bin/activate
[ -d runs/out/grown-4l ] || python runs/tools/grow_depth.py --from src/infini_attention/assets/passkey --insert-after 0 1 --out runs/out/grown-4l
python -m infini_attention.cli.main train --task passkey --init-from runs/out/grown-4l --formats passkey paraphrase ruler ruler ruler-multikey ruler-multikey --haystacks paper runs/out/prose/train.txt runs/out/prose/train.txt runs/out/prose/train.txt --eval-haystack runs/out/prose/heldout.txt --sharpness-lr 1e-2 --stretch-max 1024 --doubled-keys 1.0 --aligned-lengths 0.5 --seq-len 5120 --min-len 1024 --local-start 0.2 --local-end 0.2 --batch-size 8 --steps 600 --lr 3e-4 --warmup-steps 20 --save-every 50 --eval-every 300 --eval-lengths 4000 32000 --eval-keys 5 --no-progress --out runs/out/e31-grown "$@"
