# Session 13: the original SmolLM2's chat answers over longer passages (1000-3500 tokens: 4-14 segments, the lengths
# E42 trained its needles on) for E43's replay. E42 answered the 500-token Genesis question with digits.
#   bash runs/logs/session13/replay_long.sh
set -x
cd /work/main && . .venv/bin/activate
export PYTHONPATH=/work/snap12/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python runs/tools/chat_replay.py --text runs/out/prose/train.txt --count ${COUNT:-64} --min-tokens 1000 --max-tokens 3500 \
  --new-tokens 48 --seed 43 --out runs/out/replay/chat-long.jsonl
