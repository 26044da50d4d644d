# Reference values of tests/nn/test_attention.c: /usr/bin/python3 tests/ref/mha_ref.py (PyTorch 1.13)
import torch, math
torch.set_default_dtype(torch.float64)
E,H,N,L=4,2,2,3
x=torch.tensor([math.sin(0.3*i+0.1) for i in range(N*L*E)]).reshape(N,L,E)
win=torch.tensor([0.5*math.cos(0.7*i) for i in range(3*E*E)]).reshape(3*E,E)
bin_=torch.tensor([0.1*math.sin(i) for i in range(3*E)])
wout=torch.tensor([0.4*math.sin(1.3*i+0.2) for i in range(E*E)]).reshape(E,E)
bout=torch.tensor([0.05*i for i in range(E)])
m=torch.nn.MultiheadAttention(E,H,batch_first=True)
with torch.no_grad():
    m.in_proj_weight.copy_(win); m.in_proj_bias.copy_(bin_); m.out_proj.weight.copy_(wout); m.out_proj.bias.copy_(bout)
m.eval()
def p(name,t): print(name, ", ".join("%.17g"%v for v in t.flatten().tolist()))
p("plain", m(x,x,x,need_weights=False)[0])
causal=torch.ones(L,L,dtype=torch.bool).triu(1)   # True = blocked
p("causal", m(x,x,x,attn_mask=causal,need_weights=False)[0])
kpm=torch.tensor([[False,False,True],[False,True,True]])  # True = padding (blocked)
p("kpm", m(x,x,x,key_padding_mask=kpm,need_weights=False)[0])
# need_weights=True: the attention weights, averaged over heads (default) and per head
def w(name,t): print("static const double %s[%d] = {%s};" % (name, t.numel(), ", ".join("%.17g"%v for v in t.flatten().tolist())))
out,aw=m(x,x,x,need_weights=True)
w("MHA_W_AVG", aw)
out,aw=m(x,x,x,attn_mask=causal,need_weights=True,average_attn_weights=False)
w("MHA_W_CAUSAL_HEADS", aw)
out,aw=m(x[0],x[0],x[0],key_padding_mask=kpm[0],need_weights=True)
w("MHA_W_UNBATCHED_KPM", aw)
