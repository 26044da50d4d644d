#!/usr/bin/python3
"""Reference values for tests/ops/test_loss.c: every loss and option of src/ops/loss.c in torch
1.13 (CPU, float64). Run:  /usr/bin/python3 tests/ref/loss_ref.py > tests/ref/loss_ref.h

Each case lists its float inputs as (shape, seed, scale, shift, differentiable): element i
(row-major) is shift + scale * sin(0.37 i + seed), on both sides. Labels and +-1 targets are
made inside the case, by the same formulas as the test's builders (labels(), signs()). For each
case the header holds the loss with reduction none, mean and sum (and batchmean), the gradient of
the mean loss with respect to each differentiable input, and its Hessian-vector product with v
(input k: sin(0.37 i + 7 + k)), all concatenated in input order. The test looks up its builder
by the case's name.
"""
import math
import warnings
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
warnings.filterwarnings("ignore", message="reduction: 'mean' divides")  # kl_div's, about its own default


def fill(shape, seed, scale=1.0, shift=0.0):
    n = math.prod(shape)
    return torch.tensor([shift + scale * math.sin(0.37 * i + seed) for i in range(n)]).reshape(shape)


def labels(shape, classes, ignore=None):
    """as the test: every third label is `ignore` (when given), the others (7 i + 3) mod C"""
    n = math.prod(shape)
    v = [ignore if ignore is not None and i % 3 == 2 else (7 * i + 3) % classes for i in range(n)]
    return torch.tensor(v, dtype=torch.long).reshape(shape)


def signs(shape):
    n = math.prod(shape)
    return torch.tensor([1.0 if (5 * i + 1) % 3 else -1.0 for i in range(n)]).reshape(shape)


def I(shape, seed, scale=1.0, shift=0.0, grad=True):
    return (tuple(shape), seed, scale, shift, grad)


# name: (inputs, f(inputs, reduction), reductions beyond none/mean/sum)
CASES = {
    "ce_weight_ignore": ([I((5, 4), 0.1, 1.5), I((4,), 0.2, 0.5, 1.0, False)],
                         lambda x, r: F.cross_entropy(x[0], labels((5,), 4, 2), weight=x[1], ignore_index=2, reduction=r)),
    "ce_nd_smooth": ([I((2, 3, 4), 0.3, 1.5), I((3,), 0.4, 0.5, 1.0, False)],
                     lambda x, r: F.cross_entropy(x[0], labels((2, 4), 3, -100), weight=x[1], label_smoothing=0.15,
                                                  reduction=r)),
    "ce_nd_plain": ([I((2, 3, 2, 2), 0.5, 2.0)],
                    lambda x, r: F.cross_entropy(x[0], labels((2, 2, 2), 3), reduction=r)),
    "ce_probs": ([I((3, 4, 2), 0.6, 1.5), I((3, 4, 2), 0.7, 0.4, 0.5), I((4,), 0.8, 0.5, 1.0, False)],
                 lambda x, r: F.cross_entropy(x[0], x[1], weight=x[2], label_smoothing=0.1, reduction=r)),
    "ce_unbatched": ([I((5,), 0.9, 1.5)],
                     lambda x, r: F.cross_entropy(x[0], torch.tensor(3), label_smoothing=0.2, reduction=r)),
    "nll_ignore0": ([I((3, 4, 2), 1.0, 1.5), I((4,), 1.1, 0.5, 1.0, False)],
                    lambda x, r: F.nll_loss(x[0], labels((3, 2), 4, 0), weight=x[1], ignore_index=0, reduction=r)),
    "bce_logits_pw": ([I((3, 4), 1.2, 3.0), I((3, 4), 1.3, 0.45, 0.5), I((3, 1), 1.4, 0.5, 1.0, False),
                       I((4,), 1.5, 1.0, 1.5, False)],
                      lambda x, r: F.binary_cross_entropy_with_logits(x[0], x[1], weight=x[2], pos_weight=x[3],
                                                                      reduction=r)),
    "bce_probs": ([I((3, 4), 1.6, 0.45, 0.5), I((3, 4), 1.7, 0.5, 0.5), I((4,), 1.8, 0.5, 1.0, False)],
                  lambda x, r: F.binary_cross_entropy(x[0], x[1], weight=x[2], reduction=r)),
    "l1": ([I((3, 4), 1.9), I((3, 4), 3.5)], lambda x, r: F.l1_loss(x[0], x[1], reduction=r)),
    "mse": ([I((3, 4), 2.1), I((3, 4), 3.9)], lambda x, r: F.mse_loss(x[0], x[1], reduction=r)),
    "smooth_l1": ([I((3, 5), 2.3, 1.5), I((3, 5), 4.0)], lambda x, r: F.smooth_l1_loss(x[0], x[1], reduction=r)),
    "smooth_l1_beta": ([I((3, 5), 2.5, 1.5), I((3, 5), 4.4)],
                       lambda x, r: F.smooth_l1_loss(x[0], x[1], beta=0.7, reduction=r)),
    "huber": ([I((3, 5), 2.7, 1.5), I((3, 5), 4.9)], lambda x, r: F.huber_loss(x[0], x[1], delta=0.6, reduction=r)),
    "kl": ([I((3, 4), 2.9), I((3, 4), 3.0, 0.45, 0.5)],
           lambda x, r: F.kl_div(x[0], x[1], reduction=r), ["batchmean"]),
    "kl_log_target": ([I((3, 4), 3.1), I((3, 4), 3.2)],
                      lambda x, r: F.kl_div(x[0], x[1], reduction=r, log_target=True), ["batchmean"]),
    "poisson": ([I((3, 4), 3.3), I((3, 4), 3.4, 1.5, 1.5)], lambda x, r: F.poisson_nll_loss(x[0], x[1], reduction=r)),
    "poisson_rate_full": ([I((3, 4), 3.5, 0.8, 1.0), I((3, 4), 3.6, 1.4, 1.5)],
                          lambda x, r: F.poisson_nll_loss(x[0], x[1], log_input=False, full=True, eps=1e-3,
                                                          reduction=r)),
    "gaussian_full": ([I((3, 4), 3.7), I((3, 4), 3.8), I((3, 4), 3.9, 0.5, 0.7)],
                      lambda x, r: F.gaussian_nll_loss(x[0], x[1], x[2], full=True, reduction=r)),
    "gaussian_var_dropped": ([I((3, 4), 4.0), I((3, 4), 4.1), I((3,), 4.2, 0.5, 0.7)],
                             lambda x, r: F.gaussian_nll_loss(x[0], x[1], x[2], reduction=r)),
    "gaussian_var_last1": ([I((2, 3), 4.3), I((2, 3), 4.4), I((2, 1), 4.5, 0.5, 0.7)],
                           lambda x, r: F.gaussian_nll_loss(x[0], x[1], x[2], eps=0.3, reduction=r)),
    "cosine": ([I((4, 3), 4.6), I((4, 3), 6.0)],
               lambda x, r: F.cosine_embedding_loss(x[0], x[1], signs((4,)), margin=0.1, reduction=r)),
    "cosine_unbatched": ([I((5,), 4.8), I((5,), 6.0)],
                         lambda x, r: F.cosine_embedding_loss(x[0], x[1], signs(()), reduction=r)),
    "margin_ranking": ([I((6,), 5.0), I((6,), 6.9), I((6,), 5.2)],
                       lambda x, r: F.margin_ranking_loss(x[0], x[1], x[2], margin=0.3, reduction=r)),
    "hinge": ([I((3, 4), 5.3, 1.5)], lambda x, r: F.hinge_embedding_loss(x[0], signs((3, 4)), reduction=r)),
    "soft_margin": ([I((3, 4), 5.4, 2.0)], lambda x, r: F.soft_margin_loss(x[0], signs((3, 4)), reduction=r)),
    "triplet": ([I((4, 3), 5.5), I((4, 3), 6.5, 1.2), I((4, 3), 8.0, 0.8)],
                lambda x, r: F.triplet_margin_loss(x[0], x[1], x[2], reduction=r)),
    "triplet_p3_swap": ([I((4, 3), 5.8), I((4, 3), 7.0, 1.2), I((4, 3), 8.5, 0.8)],
                        lambda x, r: F.triplet_margin_loss(x[0], x[1], x[2], margin=0.3, p=3, eps=1e-3, swap=True,
                                                           reduction=r)),
}


def c_array(vals):
    body = ", ".join("%.17g" % v for v in vals) if vals else "0"
    return "{%s}" % body


out = []
table = []
for name, case in CASES.items():
    specs, f = case[0], case[1]
    extra = case[2] if len(case) > 2 else []
    xs = [fill(s, seed, sc, sh).requires_grad_(g) for (s, seed, sc, sh, g) in specs]
    vals = {r: f(xs, r).detach().reshape(-1).tolist() for r in ["none", "mean", "sum"] + extra}
    loss = f(xs, "mean")
    diff = [x for x in xs if x.requires_grad]
    grads = torch.autograd.grad(loss, diff, create_graph=True)
    vs = [fill(x.shape, 7.0 + k) for k, x in enumerate(diff)]
    dot = sum((g * v).sum() for g, v in zip(grads, vs))
    hvp = torch.autograd.grad(dot, diff, allow_unused=True) if dot.requires_grad else [None] * len(diff)
    hvp = [h if h is not None else torch.zeros_like(x) for h, x in zip(hvp, diff)]
    flat = lambda ts: [v for t in ts for v in (t.detach() + 0).reshape(-1).tolist()]
    up = "LR_" + name.upper()
    ins = ", ".join("{%d, {%s}, %r, %r, %r, %s}" % (len(s), ", ".join(map(str, s)) or "0", seed, sc, sh,
                                                   "true" if g else "false") for (s, seed, sc, sh, g) in specs)
    out.append("static const loss_ref_input %s_IN[] = {%s};" % (up, ins))
    out.append("static const double %s_NONE[] = %s;" % (up, c_array(vals["none"])))
    out.append("static const double %s_GRAD[] = %s;" % (up, c_array(flat(grads))))
    out.append("static const double %s_HVP[] = %s;" % (up, c_array(flat(hvp))))
    table.append('    {"%s", %d, %s_IN, %s_NONE, %d, %.17g, %.17g, %s, %s_GRAD, %s_HVP},'
                 % (name, len(specs), up, up, len(vals["none"]), vals["mean"][0], vals["sum"][0],
                    "%.17g" % vals["batchmean"][0] if "batchmean" in vals else "NAN", up, up))

# ---- edge cases, on explicit inputs (named arrays)
def emit(name, t):
    out.append("static const double %s[] = %s;" % (name, c_array((t.detach() + 0).reshape(-1).tolist())))


T = torch.tensor
# binary_cross_entropy at p = 0 and 1 exactly: each log clamped to -100
emit("LR_BCE_EDGE", F.binary_cross_entropy(T([0.0, 1.0, 0.3, 1.0]), T([0.5, 0.5, 0.2, 1.0]), reduction="none"))
# kl_div where the target is 0 (xlogy: 0), and its gradient in the input (-target)
x = T([0.3, -0.2, 1.1]).requires_grad_()
kl = F.kl_div(x, T([0.0, 0.5, 0.0]), reduction="sum")
emit("LR_KL_ZERO", F.kl_div(x, T([0.0, 0.5, 0.0]), reduction="none"))
emit("LR_KL_ZERO_GRAD", torch.autograd.grad(kl, x)[0])
# gaussian_nll_loss with variances below eps: floored in value, gradient passed through
v = T([0.0, 1e-8, 0.5, 2e-6]).requires_grad_()
g = F.gaussian_nll_loss(T([0.1, -0.2, 0.3, 0.05]), T([0.0, 0.1, -0.4, 0.05]), v, reduction="sum")
emit("LR_GAUSS_FLOOR", g.reshape(1))
emit("LR_GAUSS_FLOOR_GRAD", torch.autograd.grad(g, v)[0])
# poisson_nll_loss full: Stirling's term only where the target is > 1
emit("LR_POISSON_STIRLING", F.poisson_nll_loss(T([0.5, 1.5, 2.0, 0.7]), T([0.0, 1.0, 0.5, 3.0]), log_input=False,
                                               full=True, reduction="none"))
# hinge_embedding_loss with margin 0 (nabla: has_margin), and the class-0 ignore of cross_entropy
emit("LR_HINGE_MARGIN0", F.hinge_embedding_loss(T([0.5, -0.3, 0.2]), T([-1.0, -1.0, 1.0]), margin=0.0, reduction="none"))
emit("LR_CE_IGNORE0", F.cross_entropy(T([[1.0, 2.0, 0.5], [0.3, -0.1, 0.8], [2.0, 1.0, 0.0]]), T([0, 2, 1]),
                                      ignore_index=0, reduction="none"))

print("/* Generated by tests/ref/loss_ref.py (torch %s); do not edit. */" % torch.__version__)
print("#ifndef NABLA_LOSS_REF_H\n#define NABLA_LOSS_REF_H\n#include <math.h>\n#include <stdbool.h>\n#include <stdint.h>\n")
print("/* a float input: element i is shift + scale sin(0.37 i + seed) */")
print("typedef struct {\n    int ndim;\n    int64_t shape[4];\n    double seed, scale, shift;\n    bool grad;\n} loss_ref_input;")
print("typedef struct {\n    const char *name;\n    int n_in;\n    const loss_ref_input *in;\n    const double *none;\n"
      "    int64_t n_none;\n    double mean, sum, batchmean; /* batchmean: NAN when the loss has none */\n"
      "    const double *grad, *hvp; /* of the mean loss, over the differentiable inputs in order */\n} loss_ref;\n")
print("\n".join(out))
print("\nstatic const loss_ref LOSS_REFS[] = {")
print("\n".join(table))
print("};\n#endif")
