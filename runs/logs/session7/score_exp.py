import sys
sys.path.insert(0, "/tmp")
import score_exp_fn as f
from infini_attention.ops.infini import sparse_cache
mode = sys.argv.pop(1)
if "copy" in mode:
    sparse_cache.recall_error = f.copy_error
if "pooled" in mode:
    sparse_cache.select = f.pooled_select
if "block" in mode:
    sparse_cache.select = f.block_select
sys.argv[0] = "runs/smollm2_sparse.py"
exec(open("runs/smollm2_sparse.py").read())
