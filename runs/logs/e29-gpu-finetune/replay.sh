# The original SmolLM2's answers to chat prompts over training-prose passages (runs/tools/chat_replay.py), for E35.
. .venv/bin/activate
export PYTHONPATH=/work/snap9/src OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
python /work/snap9/chat_replay.py --text runs/out/prose/train.txt --count 160 --out runs/out/replay/chat.jsonl "$@"
