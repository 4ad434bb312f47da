. .venv/bin/activate
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE PYTHONPATH=/work/main/src
python runs/smollm2_short.py --adapter ${ADAPTER:-runs/out/e33-lm} --pieces 10 --long-pieces 2
