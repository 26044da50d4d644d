#!/usr/bin/python3
"""Reference values for nabla's op tests, computed once with PyTorch (Debian's torch 1.13, CPU,
float64). Run:  /usr/bin/python3 tests/ref/make_refs.py > tests/ref/torch_refs.h
The inputs are written here and emitted into the header too, so tests and references share them."""
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
out = []


def emit(name, t):
    vals = t.detach().reshape(-1).tolist()
    body = ", ".join(repr(float(v)) for v in vals)
    out.append(f"static const double {name}[{len(vals)}] = {{{body}}};")


def emit_i64(name, t):
    vals = t.reshape(-1).tolist()
    out.append(f"static const int64_t {name}[{len(vals)}] = {{{', '.join(str(int(v)) for v in vals)}}};")


T = torch.tensor
# ---- element-wise: X (3,4) any sign, P (3,4) positive; A (3,1,4) with B (2,4) broadcast
X = T([-1.5, -0.7, -0.2, 0.1, 0.3, 0.9, 1.4, 2.1, -2.3, 0.6, -0.05, 1.1]).reshape(3, 4)
P = T([0.2, 0.5, 0.9, 1.3, 1.7, 2.2, 2.8, 3.5, 0.1, 0.75, 1.05, 4.0]).reshape(3, 4)
A = T([0.4, -1.2, 2.0, 0.7, -0.3, 1.5, -2.2, 0.9, 1.1, -0.6, 0.25, -1.8]).reshape(3, 1, 4)
B = T([1.3, -0.8, 0.5, 2.5, -1.7, 0.6, -0.9, 1.2]).reshape(2, 4)
emit("REF_X", X)
emit("REF_P", P)
emit("REF_A", A)
emit("REF_B", B)
unary = {
    "neg": -X, "exp": X.exp(), "log": P.log(), "sqrt": P.sqrt(), "abs": X.abs(), "sign": X.sign(),
    "erf": X.erf(), "relu": F.relu(X), "leaky_relu": F.leaky_relu(X, 0.1), "elu": F.elu(X, 1.0),
    "sigmoid": X.sigmoid(), "tanh": X.tanh(), "gelu": F.gelu(X), "softplus": F.softplus(X),
    "clamp": X.clamp(-0.5, 0.8), "pow_scalar": P.pow(1.5), "cube": X.pow(3.0), "affine": 2 * X - 1,
}
# inputs of the ops whose domain or interesting points differ: U in (-1, 1) (asin, acos, tan),
# H = 2.5 X (halves for round, both sides of the hard gates' +-3 kinks)
U = 0.4 * X
H = 2.5 * X
emit("REF_UX", U)
emit("REF_H", H)
unary.update({
    "expm1": X.expm1(), "log1p": P.log1p(), "log2": P.log2(), "log10": P.log10(), "rsqrt": P.rsqrt(),
    "square": X.square(), "reciprocal": X.reciprocal(), "erfc": X.erfc(), "sin": X.sin(), "cos": X.cos(),
    "tan": U.tan(), "asin": U.asin(), "acos": U.acos(), "atan": X.atan(), "sinh": X.sinh(), "cosh": X.cosh(),
    "selu": F.selu(X), "celu": F.celu(X, 0.7), "logsigmoid": F.logsigmoid(X), "gelu_tanh": F.gelu(X, approximate="tanh"),
    "silu": F.silu(X), "mish": F.mish(X), "softsign": F.softsign(X), "softplus_ex": F.softplus(X, beta=2.0, threshold=1.5),
    "hardtanh": F.hardtanh(X, -1.0, 1.0), "hardsigmoid": F.hardsigmoid(H), "hardswish": F.hardswish(H),
    "floor": H.floor(), "ceil": H.ceil(), "round": H.round(),
})
for k, v in unary.items():
    emit("REF_U_" + k.upper(), v)
Ap = A.abs() + 0.1
binary = {"add": A + B, "sub": A - B, "mul": A * B, "div": A / B, "pow": Ap.pow(B),
          "maximum": torch.maximum(A, B), "minimum": torch.minimum(A, B), "atan2": torch.atan2(A, B)}
for k, v in binary.items():
    emit("REF_B_" + k.upper(), v)

# ---- reductions on R (2,3,4)
R = T([0.5, -1.2, 2.2, 0.3, 1.8, -0.4, -2.5, 0.9, 0.05, 1.6, -0.8, 1.1,
       -0.3, 2.7, 0.6, -1.9, 0.2, -0.6, 1.3, 0.8, -1.1, 0.4, 2.0, -0.2]).reshape(2, 3, 4)
emit("REF_R", R)
red = {
    "sum_1": R.sum(1), "mean_02": R.mean((0, 2)), "max_last": R.amax(-1), "min_0": R.amin(0),
    "var_2": R.var(2), "var_all0": R.var(unbiased=False).reshape(1), "logsumexp_1": R.logsumexp(1),
    "softmax_1": R.softmax(1), "log_softmax_last": R.log_softmax(-1),
    "sum_all": R.sum().reshape(1), "mean_keep_1": R.mean(1, keepdim=True),
}
for k, v in red.items():
    emit("REF_R_" + k.upper(), v)
emit_i64("REF_R_ARGMAX_2", R.argmax(2))

# ---- linear algebra
M1 = torch.arange(24.0).reshape(2, 3, 4).sin()
M2 = torch.arange(20.0).reshape(4, 5).cos()
V4 = T([0.5, -1.0, 2.0, 0.25])
emit("REF_M1", M1)
emit("REF_M2", M2)
emit("REF_V4", V4)
emit("REF_MM_BATCH", M1 @ M2)            # (2,3,5)
emit("REF_MM_VEC_RIGHT", M1[0] @ V4)     # (3)
emit("REF_MM_VEC_LEFT", V4 @ M2)         # (5)
W = torch.arange(12.0).reshape(3, 4).cos()   # (out=3, in=4)
bias = T([0.1, -0.2, 0.3])
emit("REF_W", W)
emit("REF_BIAS", bias)
emit("REF_LINEAR", F.linear(M1, W, bias))   # (2,3,3)

# ---- losses
L = T([1.2, -0.5, 0.3, 2.1, -1.0, 0.0, 0.7, -0.3, 1.5, 0.2,
       -2.0, 1.1, 0.4, -0.6, 0.9, 0.8, 0.1, -1.4, 0.6, 2.3]).reshape(4, 5)
Y = torch.tensor([1, 0, 4, 2])
emit("REF_LOGITS", L)
emit_i64("REF_LABELS", Y)
emit("REF_CE_MEAN", F.cross_entropy(L, Y).reshape(1))
emit("REF_CE_SUM", F.cross_entropy(L, Y, reduction="sum").reshape(1))
emit("REF_CE_NONE", F.cross_entropy(L, Y, reduction="none"))
emit("REF_CE_SMOOTH", F.cross_entropy(L, Y, label_smoothing=0.1).reshape(1))
Lc = L.clone().requires_grad_()
F.cross_entropy(Lc, Y).backward()
emit("REF_CE_GRAD", Lc.grad)
emit("REF_NLL", F.nll_loss(L.log_softmax(1), Y).reshape(1))
Tg = torch.arange(20.0).reshape(4, 5).sin() * 0.5
emit("REF_TARGET", Tg)
emit("REF_MSE", F.mse_loss(L, Tg).reshape(1))
Yb = (Tg + 0.5).clamp(0, 1)
emit("REF_YB", Yb)
emit("REF_BCE", F.binary_cross_entropy_with_logits(L, Yb).reshape(1))
emit("REF_BCE_NONE", F.binary_cross_entropy_with_logits(L, Yb, reduction="none"))

print("/* Generated by tests/ref/make_refs.py with torch %s (float64). Do not edit. */" % torch.__version__)
print("#ifndef NABLA_TEST_TORCH_REFS_H\n#define NABLA_TEST_TORCH_REFS_H\n#include <stdint.h>")
print("\n".join(out))
print("#endif")
