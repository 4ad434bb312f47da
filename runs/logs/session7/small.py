import torch, dataclasses, sys, time
from infini_attention.models.io import load_model
from infini_attention.eval import passkey
from infini_attention.data.haystack import get_haystack
from infini_attention.layers.attention import InfiniAttention
torch.set_grad_enabled(False)
fmt=sys.argv[1]; sizes=[int(x) for x in sys.argv[2].split(",")]; lengths=[int(x) for x in sys.argv[3].split(",")]
hay=get_haystack(sys.argv[4]) if len(sys.argv)>4 and sys.argv[4]!="paper" else None
model,tok=load_model("src/infini_attention/assets/passkey")[:2] if False else (None,None)
from infini_attention.models.io import load_model as lm
out=lm("src/infini_attention/assets/passkey")
model=out[0] if isinstance(out,tuple) else out
from infini_attention.data.tokenizers import get_tokenizer
tok=get_tokenizer("byte")
model.eval()
for size in sizes:
    for m in model.modules():
        if isinstance(m, InfiniAttention): m.sparse_cache=size
    model.config.sparse_cache=size
    t=time.time()
    rows=passkey.evaluate_passkey(model,tok,lengths,[0.0,0.5,1.0],8,ablation=False,progress=False,haystack=hay,fmt=fmt,needles=4 if fmt=="ruler-multikey" else 1)
    for r in rows: print(size,fmt,r.length,r.depth,r.found_via,f"{r.accuracy:.2f}",flush=True)
    print(size, "all", sum(r.accuracy*r.keys for r in rows)/sum(r.keys for r in rows), f"{time.time()-t:.0f}s",flush=True)
