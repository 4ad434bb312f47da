. .venv/bin/activate
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE PYTHONPATH=/work/main/src
python runs/smollm2_short.py --adapter runs/out/e30-short --pieces 10 --long-pieces 2
