#!/usr/bin/python3
"""Reference values for the tensor-op tests (pad, repeat, scans, prod, norm, max/min along an axis,
sort/topk, scatter, take_along_dim), computed with PyTorch (Debian's torch 1.13, CPU, float64).
Run:  /usr/bin/python3 tests/ref/make_tensor_refs.py > tests/ref/tensor_refs.h
Each array is named after the torch expression that made it (see the comments below)."""
import math
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
out = []


def emit(name, t):
    vals = t.detach().reshape(-1).tolist()
    body = ", ".join("NAN" if math.isnan(v) else ("INFINITY" if v == math.inf else ("-INFINITY" if v == -math.inf else repr(float(v)))) for v in vals)
    out.append(f"static const double {name}[{len(vals)}] = {{{body}}};")


def emit_i64(name, t):
    vals = t.reshape(-1).tolist()
    out.append(f"static const int64_t {name}[{len(vals)}] = {{{', '.join(str(int(v)) for v in vals)}}};")


def grad(f, x, w):
    """d sum(w * f(x)) / dx"""
    x = x.clone().requires_grad_()
    (g,) = torch.autograd.grad((f(x) * w).sum(), x)
    return g


def hvp(f, x, w, v):
    """d/dx <d sum(w f(x))/dx, v>: the second derivative along v"""
    x = x.clone().requires_grad_()
    (g,) = torch.autograd.grad((f(x) * w).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad((g * v).sum(), x)
    return h


T = torch.tensor
# X (2,3,4): distinct values of both signs
X = T([0.5, -1.2, 2.2, 0.3, 1.8, -0.4, -2.5, 0.9, 0.05, 1.6, -0.8, 1.1,
       -0.3, 2.7, 0.6, -1.9, 0.2, -0.6, 1.3, 0.8, -1.1, 0.4, 2.0, -0.2]).reshape(2, 3, 4)
emit("TR_X", X)

# ---- pad; weights W_* = sin(arange) of the output shape make the gradients position-dependent
pads = {
    "CONST": ((1, 2, -1, 1), "constant", 0.5),
    "CONST3": ((1, 0, 0, 1, 1, 1), "constant", -2.0),
    "REFLECT": ((2, 1, 1, 2), "reflect", 0.0),
    "REFLECT_CROP": ((-1, 3), "reflect", 0.0),
    "REPLICATE": ((3, 1, -1, 2), "replicate", 0.0),
    "CIRCULAR": ((1, 4, 2, -1), "circular", 0.0),
}
for k, (p, mode, v) in pads.items():
    # torch 1.13 pads k axes in the non-constant modes only on a (k+2)-D input: add leading axes
    f = (lambda x, p=p, mode=mode, v=v: F.pad(x, p, mode=mode, value=v)) if mode == "constant" else \
        (lambda x, p=p, mode=mode: F.pad(x.reshape((1,) * (len(p) // 2 + 2 - x.dim()) + x.shape), p, mode=mode).squeeze(0)
         if len(p) // 2 + 2 > x.dim() else F.pad(x, p, mode=mode))
    y = f(X)
    w = torch.arange(float(y.numel())).reshape(y.shape).sin()
    emit_i64("TR_PAD_%s_SHAPE" % k, T(list(y.shape)))
    emit("TR_PAD_%s" % k, y)
    emit("TR_PAD_%s_GRAD" % k, grad(f, X, w))

# ---- repeat / tile / repeat_interleave on X[0] (3,4)
X0 = X[0]
emit("TR_REPEAT_213", X0.repeat(2, 1, 3))          # (2,3,12)
emit("TR_TILE_2", torch.tile(X0, (2,)))            # (3,8)
emit("TR_INTERLEAVE_2_AX1", torch.repeat_interleave(X0, 2, dim=1))  # (3,8)
w = torch.arange(24.0).reshape(3, 8).cos()
emit("TR_INTERLEAVE_GRAD", grad(lambda x: torch.repeat_interleave(x, 2, dim=1), X0, w))

# ---- cumsum / cumprod / prod
emit("TR_CUMSUM_1", X.cumsum(1))
emit("TR_CUMPROD_2", X.cumprod(2))
Z = T([2.0, 0.0, 3.0, -0.5, 0.0, 1.5, -1.0])     # two zeros
Z1 = T([2.0, -1.5, 0.0, 3.0, 0.5, -1.0])          # one zero
WZ = T([0.3, -1.1, 0.7, 1.9, -0.4, 0.6, 1.2])
VZ = T([1.0, -0.5, 0.25, 2.0, -1.5, 0.75, 0.5])
emit("TR_Z", Z)
emit("TR_Z1", Z1)
emit("TR_WZ", WZ)
emit("TR_VZ", VZ)
emit("TR_CUMPROD_Z", Z.cumprod(0))
emit("TR_CUMPROD_Z_GRAD", grad(lambda x: x.cumprod(0), Z, WZ))
emit("TR_CUMPROD_Z_HVP", hvp(lambda x: x.cumprod(0), Z, WZ, VZ))
emit("TR_CUMPROD_Z1_GRAD", grad(lambda x: x.cumprod(0), Z1, WZ[:6]))
emit("TR_CUMPROD_Z1_HVP", hvp(lambda x: x.cumprod(0), Z1, WZ[:6], VZ[:6]))
emit("TR_PROD_1", X.prod(1))
emit("TR_PROD_Z1", Z1.prod().reshape(1))
emit("TR_PROD_Z1_GRAD", grad(lambda x: x.prod(), Z1, 1.0))
emit("TR_PROD_Z1_HVP", hvp(lambda x: x.prod(), Z1, 1.0, VZ[:6]))
emit("TR_PROD_Z_GRAD", grad(lambda x: x.prod(), Z, 1.0))

# ---- norms over axis 1 (and all axes), gradients against W1 (2,4)
W1 = torch.arange(8.0).reshape(2, 4).cos()
for name, p in {"2": 2.0, "1": 1.0, "3": 3.0, "HALF": 0.5, "INF": math.inf, "NINF": -math.inf, "0": 0.0, "M15": -1.5}.items():
    f = lambda x, p=p: torch.linalg.vector_norm(x, p, dim=1)
    emit("TR_NORM_%s" % name, f(X))
    if p != 0:
        emit("TR_NORM_%s_GRAD" % name, grad(f, X, W1))
emit("TR_NORM_FRO", torch.norm(X).reshape(1))
emit("TR_NORM_2_HVP", hvp(lambda x: torch.linalg.vector_norm(x, 2.0, dim=1), X, W1, X.cos()))
Nz = T([[0.0, 0.0, 0.0], [0.0, 2.0, -1.0]])        # a zero row, and zeros in a row
for name, p in {"2": 2.0, "HALF": 0.5, "3": 3.0, "M1": -1.0, "INF": math.inf}.items():
    f = lambda x, p=p: torch.linalg.vector_norm(x, p, dim=1)
    emit("TR_NORMZ_%s" % name, f(Nz))
    emit("TR_NORMZ_%s_GRAD" % name, grad(f, Nz, T([1.0, 1.0])))

# ---- ties: amax splits, max(dim) picks the first index
Tt = T([[1.0, 3.0, 3.0, 2.0], [-1.0, -1.0, 0.5, -1.0]])
emit("TR_TIES", Tt)
emit("TR_AMAX_TIES_GRAD", grad(lambda x: x.amax(1), Tt, 1.0))
emit("TR_AMIN_TIES_GRAD", grad(lambda x: x.amin(1), Tt, 1.0))
emit("TR_MAXDIM_TIES_GRAD", grad(lambda x: x.max(1).values, Tt, 1.0))
emit("TR_MINDIM_TIES_GRAD", grad(lambda x: x.min(1).values, Tt, 1.0))
emit_i64("TR_MAXDIM_TIES_IDX", Tt.max(1).indices)
emit_i64("TR_MINDIM_TIES_IDX", Tt.min(1).indices)
emit_i64("TR_ARGMIN_X_2", X.argmin(2))
emit("TR_MINDIM_X_0", X.min(0).values)
emit_i64("TR_MINDIM_X_0_IDX", X.min(0).indices)

# ---- sort / topk with ties and NaN
S = T([3.0, 1.0, math.nan, 2.0, 1.0, 3.0, -0.5, math.nan, 1.0])
emit("TR_S", S)
for k, desc in {"UP": False, "DOWN": True}.items():
    v, i = torch.sort(S, descending=desc, stable=True)
    emit("TR_SORT_%s" % k, v)
    emit_i64("TR_SORT_%s_IDX" % k, i)
v, i = torch.topk(S, 4, largest=True)
emit("TR_TOPK_LARGE", v)
v, i = torch.topk(S, 3, largest=False)  # its indices among ties are unspecified (6, 4, 8 here)
emit("TR_TOPK_SMALL", v)
v, i = torch.sort(X, dim=1, descending=True, stable=True)
emit("TR_SORT_X_1_DOWN", v)
emit_i64("TR_SORT_X_1_DOWN_IDX", i)
emit("TR_SORT_X_1_GRAD", grad(lambda x: torch.sort(x, dim=1, descending=True, stable=True).values, X, X.cos()))
emit("TR_TOPK_X_2_GRAD", grad(lambda x: torch.topk(x, 2, dim=2).values, X, torch.arange(12.0).reshape(2, 3, 2).sin()))

# ---- take_along_dim (broadcast), scatter
Ia = T([[[3, 0]], [[1, 1]]])  # (2,1,2) against X (2,3,4) along axis 2: broadcast on axis 1
emit_i64("TR_TAKE_IDX", Ia)
emit("TR_TAKE", torch.take_along_dim(X, Ia, 2))
X1 = X[:1]  # (1,3,4) against idx (2,3,1): x broadcast on axis 0
Ib = T([[[2], [0], [3]], [[1], [1], [0]]])
emit_i64("TR_TAKE_B_IDX", Ib)
emit("TR_TAKE_B", torch.take_along_dim(X1, Ib, 2))
emit("TR_TAKE_B_GRAD", grad(lambda x: torch.take_along_dim(x, Ib, 2), X1, T([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).reshape(2, 3, 1)))
Is = T([[2, 0, 3], [1, 3, 0]])  # no repeated target within a row
Src = T([[10.0, 20.0, 30.0, 40.0], [50.0, 60.0, 70.0, 80.0]])
emit_i64("TR_SCATTER_IDX", Is)
emit("TR_SCATTER_SRC", Src)
emit("TR_SCATTER", X0[:2].scatter(1, Is, Src))
# torch 1.13 gives src a gradient only when src has idx's shape (a larger src fails in backward)
xs, ss = X0[:2].clone().requires_grad_(), Src[:, :3].clone().requires_grad_()
(xs.scatter(1, Is, ss) * torch.arange(8.0).reshape(2, 4).sin()).sum().backward()
emit("TR_SCATTER_GRAD_X", xs.grad)
emit("TR_SCATTER_GRAD_SRC", ss.grad)

print("/* Generated by tests/ref/make_tensor_refs.py with torch %s (float64). Do not edit. */" % torch.__version__)
print("#ifndef NABLA_TEST_TENSOR_REFS_H\n#define NABLA_TEST_TENSOR_REFS_H\n#include <math.h>\n#include <stdint.h>")
print("\n".join(out))
print("#endif")
