import torch, dataclasses, sys
from infini_attention.hf.transfer import load_transferred
from infini_attention.hf.modeling import set_sparse_cache
from infini_attention.cli.demo_smollm2 import DEFAULT_ARTIFACT
from infini_attention.eval.passkey import cell_instances
from infini_attention.hf.attention import InfiniHFAttention
from infini_attention.data.haystack import get_haystack
torch.set_grad_enabled(False)
size=int(sys.argv[1]); length=int(sys.argv[2]); hay=sys.argv[3] if len(sys.argv)>3 else None
model=load_transferred(DEFAULT_ARTIFACT)
set_sparse_cache(model.hf,size); model.config=dataclasses.replace(model.config,sparse_cache=size)
tok=model.tokenizer
inst=cell_instances(tok,length,0.0,1,seed=0,haystack=get_haystack(hay) if hay else None)[0]
allids=[t for c in inst.chunks(100000) for t in c]; ids=torch.tensor([allids])
layers=[m for m in model.hf.modules() if isinstance(m,InfiniHFAttention)]
keys={i:[] for i in range(len(layers))}
def hook(i):
    def h(mod,args,kwargs):
        x,st=mod.call_inputs(args,kwargs)
        _,k,_,_=mod.project(x,st)
        keys[i].append(k)
    return h
hs=[l.register_forward_pre_hook(hook(i),with_kwargs=True) for i,l in enumerate(layers)]
logits,state=model(ids,None)
s,e=inst.needle_spans[inst.ask]
print("needle span",s,e,"len",len(allids), "key", inst.answer_ids if hasattr(inst,'answer_ids') else '')
print(repr(tok.decode(allids[s:e])))
for i,l in enumerate(layers):
    K=torch.cat(keys[i],2)[0] # Hkv, L, d
    ck=state.layers[i].cache_k[0]
    pos=[]
    for h in range(ck.shape[0]):
        d=torch.cdist(ck[h],K[h])
        pos.append(d.argmin(-1).tolist())
    innd=[sum(s<=p<e for p in ph) for ph in pos]
    g=torch.sigmoid(l.beta).tolist()
    print(i,"needle tokens cached per kv head",innd,"gates",' '.join(f"{x:.2f}" for x in g))
import collections
for i in (6, 12, 24):
    K=torch.cat(keys[i],2)[0]
    ck=state.layers[i].cache_k[0]
    for h in range(ck.shape[0]):
        pos=sorted(torch.cdist(ck[h],K[h]).argmin(-1).tolist())
        hist=collections.Counter(p//100 for p in pos)
        print(i,h,"cache positions per 100:",dict(sorted(hist.items())))
        print("   first 40:", pos[:40])
