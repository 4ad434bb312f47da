# Perplexity by position (runs/smollm2_ppl.py): the shipped adapter (E35) and E37 beside the original with 8K full
# attention, the first 32K tokens of two held-out books (runs/tools/books.py), memory vs reset.
. .venv/bin/activate
export PYTHONPATH=/work/main/src OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
python runs/tools/books.py --out runs/out/books
python runs/smollm2_ppl.py --books runs/out/books/genesis-kjv.txt runs/out/books/debian-handbook.txt --tokens 32K \
  --adapters shipped runs/out/e37-chat --out runs/out/ppl/smollm2-32k "$@"
