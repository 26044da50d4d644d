/* nabla/ops.h — differentiable tensor ops.
 *
 * Every op takes the context first, returns a new step tensor (or a view sharing its input's
 * data), and returns NULL on error with the message in nb_ctx_error(ctx) / nb_last_error(),
 * e.g. "matmul: shapes (3,4) and (5,6) are not compatible". Given a NULL input an op returns
 * NULL and keeps the first error. Inputs may be any strided view. Element-wise binary ops
 * broadcast like NumPy. Float ops accept F32 and F64 (both inputs the same dtype); index
 * arguments are NB_I64. Axes may be negative (counted from the end). Ops marked (no grad)
 * return constants. Every other op has a backward rule made of ops, so it can be
 * differentiated twice.
 */
#ifndef NABLA_OPS_H
#define NABLA_OPS_H

#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- step tensors (no grad) -------------------------------------------------------- */
nb_tensor *nb_empty(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape); /* uninitialised */
nb_tensor *nb_zeros(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape);
nb_tensor *nb_ones(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape);
nb_tensor *nb_full(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, double v);
nb_tensor *nb_scalar(nb_ctx *ctx, nb_dtype dt, double v);                       /* 0-d */
nb_tensor *nb_from(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, const void *data);
nb_tensor *nb_arange(nb_ctx *ctx, nb_dtype dt, double start, double stop, double step);
nb_tensor *nb_zeros_like(nb_ctx *ctx, const nb_tensor *t);
nb_tensor *nb_ones_like(nb_ctx *ctx, const nb_tensor *t);
/* Random tensors from the context's generator (nb_ctx_rng): uniform [0,1) and standard normal. */
nb_tensor *nb_rand(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape);
nb_tensor *nb_randn(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape);

/* ---- element-wise, broadcasting --------------------------------------------------------- */
nb_tensor *nb_add(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_sub(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_mul(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_div(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_pow(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);      /* a^b, a > 0 where b is not an integer */
nb_tensor *nb_maximum(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);  /* NaN wins; ties split the gradient evenly */
nb_tensor *nb_minimum(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_atan2(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);    /* angle of the point (b, a), torch.atan2 */
/* Comparisons (no grad): 1.0 where true, 0.0 where false, in the inputs' dtype. */
nb_tensor *nb_eq(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_ne(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_lt(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_le(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_gt(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_ge(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
/* cond != 0 ? a : b, all three broadcast together; cond gets no gradient. */
nb_tensor *nb_where(nb_ctx *ctx, nb_tensor *cond, nb_tensor *a, nb_tensor *b);

/* With a scalar */
nb_tensor *nb_affine(nb_ctx *ctx, nb_tensor *x, double scale, double shift); /* scale*x + shift */
nb_tensor *nb_add_scalar(nb_ctx *ctx, nb_tensor *x, double s);
nb_tensor *nb_mul_scalar(nb_ctx *ctx, nb_tensor *x, double s);
nb_tensor *nb_pow_scalar(nb_ctx *ctx, nb_tensor *x, double p);

/* Unary, as the torch functions of the same name. NaN in gives NaN out. */
nb_tensor *nb_neg(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_exp(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_expm1(nb_ctx *ctx, nb_tensor *x);   /* exp(x) - 1, exact near 0 */
nb_tensor *nb_log(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_log1p(nb_ctx *ctx, nb_tensor *x);   /* log(1 + x), exact near 0 */
nb_tensor *nb_log2(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_log10(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_sqrt(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_rsqrt(nb_ctx *ctx, nb_tensor *x);   /* 1/sqrt(x) */
nb_tensor *nb_square(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_reciprocal(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_abs(nb_ctx *ctx, nb_tensor *x);     /* gradient sign(x), 0 at 0 */
nb_tensor *nb_sign(nb_ctx *ctx, nb_tensor *x);    /* (no grad: zero gradient) */
nb_tensor *nb_floor(nb_ctx *ctx, nb_tensor *x);   /* (no grad: zero gradient) */
nb_tensor *nb_ceil(nb_ctx *ctx, nb_tensor *x);    /* (no grad: zero gradient) */
nb_tensor *nb_round(nb_ctx *ctx, nb_tensor *x);   /* half to even, as torch.round (no grad) */
nb_tensor *nb_erf(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_erfc(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_sin(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_cos(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_tan(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_asin(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_acos(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_atan(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_sinh(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_cosh(nb_ctx *ctx, nb_tensor *x);
/* Clamp to [lo, hi]; pass -INFINITY / INFINITY for an open side. Gradient 1 where lo <= x <= hi. */
nb_tensor *nb_clamp(nb_ctx *ctx, nb_tensor *x, double lo, double hi);

/* ---- activations ----------------------------------------------------------------------- */
/* As torch.nn.functional; parameters must be finite (NB_ERR_VALUE otherwise). */
nb_tensor *nb_relu(nb_ctx *ctx, nb_tensor *x);                       /* relu(NaN) = NaN */
nb_tensor *nb_leaky_relu(nb_ctx *ctx, nb_tensor *x, double slope);   /* PyTorch default 0.01 */
nb_tensor *nb_elu(nb_ctx *ctx, nb_tensor *x, double alpha);          /* PyTorch default 1.0 */
nb_tensor *nb_selu(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_celu(nb_ctx *ctx, nb_tensor *x, double alpha);         /* PyTorch default 1.0; alpha != 0 */
nb_tensor *nb_sigmoid(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_logsigmoid(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_tanh(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_gelu(nb_ctx *ctx, nb_tensor *x);                       /* exact (erf) form */
nb_tensor *nb_gelu_tanh(nb_ctx *ctx, nb_tensor *x);                  /* gelu(approximate="tanh") */
nb_tensor *nb_silu(nb_ctx *ctx, nb_tensor *x);                       /* x sigmoid(x) */
nb_tensor *nb_mish(nb_ctx *ctx, nb_tensor *x);                       /* x tanh(softplus(x)) */
nb_tensor *nb_softsign(nb_ctx *ctx, nb_tensor *x);                   /* x / (1 + |x|) */
/* softplus(x) = log(1 + exp(beta x))/beta, exactly x where beta x > threshold. nb_softplus is
 * PyTorch's default, beta 1 and threshold 20. beta must be finite and non-zero. */
nb_tensor *nb_softplus(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb_softplus_ex(nb_ctx *ctx, nb_tensor *x, double beta, double threshold);
nb_tensor *nb_hardtanh(nb_ctx *ctx, nb_tensor *x, double min_val, double max_val); /* PyTorch: -1, 1 */
nb_tensor *nb_hardsigmoid(nb_ctx *ctx, nb_tensor *x);                /* clamp(x/6 + 1/2, 0, 1) */
nb_tensor *nb_hardswish(nb_ctx *ctx, nb_tensor *x);                  /* x hardsigmoid(x) */
nb_tensor *nb_softmax(nb_ctx *ctx, nb_tensor *x, int axis);
nb_tensor *nb_log_softmax(nb_ctx *ctx, nb_tensor *x, int axis);

/* ---- reductions ------------------------------------------------------------------------ */
/* Over the naxes axes listed (naxes = 0: all axes). keepdim keeps reduced axes as size 1. */
nb_tensor *nb_sum(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim);
nb_tensor *nb_mean(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim);
/* Max/min: the gradient goes to the arg-max (split evenly among exact ties). */
nb_tensor *nb_max(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim);
nb_tensor *nb_min(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim);
/* Variance with `correction` subtracted from the count (1 = unbiased, PyTorch's default). */
nb_tensor *nb_var(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, int correction, bool keepdim);
nb_tensor *nb_logsumexp(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim);
nb_tensor *nb_sum_all(nb_ctx *ctx, nb_tensor *x);   /* 0-d */
nb_tensor *nb_mean_all(nb_ctx *ctx, nb_tensor *x);  /* 0-d */
/* Index of the maximum along axis, NB_I64 (no grad). */
nb_tensor *nb_argmax(nb_ctx *ctx, nb_tensor *x, int axis, bool keepdim);
/* Sum a broadcast gradient back to `shape` (the inverse of broadcasting). */
nb_tensor *nb_sum_to(nb_ctx *ctx, nb_tensor *x, int ndim, const int64_t *shape);

/* ---- shapes and views -------------------------------------------------------------------- */
/* Reshape; one entry may be -1. A view when strides allow, a copy otherwise. */
nb_tensor *nb_reshape(nb_ctx *ctx, nb_tensor *x, int ndim, const int64_t *shape);
nb_tensor *nb_permute(nb_ctx *ctx, nb_tensor *x, const int *perm);   /* view */
nb_tensor *nb_transpose(nb_ctx *ctx, nb_tensor *x, int a0, int a1);  /* view */
/* x[start:stop:step] along axis (Python rules for negative/out-of-range bounds; step > 0). View. */
nb_tensor *nb_slice(nb_ctx *ctx, nb_tensor *x, int axis, int64_t start, int64_t stop, int64_t step);
/* Broadcast to shape (size-1 axes stretch, new leading axes added). View with stride 0. */
nb_tensor *nb_expand(nb_ctx *ctx, nb_tensor *x, int ndim, const int64_t *shape);
nb_tensor *nb_contiguous(nb_ctx *ctx, nb_tensor *x);                 /* copies only if needed */
nb_tensor *nb_squeeze(nb_ctx *ctx, nb_tensor *x, int axis);           /* view */
nb_tensor *nb_unsqueeze(nb_ctx *ctx, nb_tensor *x, int axis);         /* view */
nb_tensor *nb_flatten(nb_ctx *ctx, nb_tensor *x, int start_axis);     /* (N, ...) -> (N, rest) */
nb_tensor *nb_concat(nb_ctx *ctx, int n, nb_tensor *const *xs, int axis);
nb_tensor *nb_stack(nb_ctx *ctx, int n, nb_tensor *const *xs, int axis);
/* Rows of x along axis picked by idx (1-D NB_I64): embeddings. */
nb_tensor *nb_index_select(nb_ctx *ctx, nb_tensor *x, int axis, nb_tensor *idx);
/* out = x, then out[.., idx[i], ..] += src[.., i, ..] along axis (inverse of index_select). */
nb_tensor *nb_index_add(nb_ctx *ctx, nb_tensor *x, int axis, nb_tensor *idx, nb_tensor *src);
/* torch.gather: out[i][j] = x[i][idx[i][j]] (axis 1), idx NB_I64 with x's ndim. */
nb_tensor *nb_gather(nb_ctx *ctx, nb_tensor *x, int axis, nb_tensor *idx);
/* torch.scatter_add: out = x, out[i][idx[i][j]] += src[i][j] (axis 1). */
nb_tensor *nb_scatter_add(nb_ctx *ctx, nb_tensor *x, int axis, nb_tensor *idx, nb_tensor *src);
/* Composites (src/ops/composite.c), as the torch functions of the same name. */
nb_tensor *nb_tril(nb_ctx *ctx, nb_tensor *x, int64_t diagonal); /* keep j - i <= diagonal of the last 2 axes */
nb_tensor *nb_triu(nb_ctx *ctx, nb_tensor *x, int64_t diagonal); /* keep j - i >= diagonal */
/* value where mask != 0 (mask of any dtype, broadcast to x), x elsewhere; no gradient to x there */
nb_tensor *nb_masked_fill(nb_ctx *ctx, nb_tensor *x, nb_tensor *mask, double value);
nb_tensor *nb_flip(nb_ctx *ctx, nb_tensor *x, int axis);
nb_tensor *nb_roll(nb_ctx *ctx, nb_tensor *x, int64_t shift, int axis);   /* element i moves to i + shift */
nb_tensor *nb_outer(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);            /* (M), (N) -> (M, N) */
/* labels (...) i64 in [0, num_classes) -> (..., num_classes) of dt (no grad) */
nb_tensor *nb_one_hot(nb_ctx *ctx, nb_tensor *labels, int64_t num_classes, nb_dtype dt);
/* Convert dtype (F32 <-> F64 differentiable; to/from I64 no grad). */
nb_tensor *nb_cast(nb_ctx *ctx, nb_tensor *x, nb_dtype dt);

/* ---- linear algebra ------------------------------------------------------------------ */
/* Matrix product through BLIS. 2-D (M,K)x(K,N); N-D batched with batch dims broadcast;
 * a 1-D operand is treated as a row (left) or column (right) vector and its axis dropped.
 * Transposed / strided views are passed to BLIS by stride, not copied. */
nb_tensor *nb_matmul(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
/* x (..., in) times w (out, in) transposed, plus b (out) if not NULL: PyTorch's Linear. */
nb_tensor *nb_linear(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b);
/* Activations nb_linear_act fuses: identity, relu, gelu (exact, erf), tanh, sigmoid. */
typedef enum { NB_ACT_NONE = 0, NB_ACT_RELU, NB_ACT_GELU, NB_ACT_TANH, NB_ACT_SIGMOID } nb_act;
/* A dense layer in one op: dropout(act(x w^T + b), p), PyTorch's
 * F.dropout(act(F.linear(x, w, b)), p, training), b NULL allowed, p in [0, 1). The GEMM is
 * nb_matmul's; bias, activation and dropout then take one pass over its output, and backward
 * one pass (the gradient times a derivative saved by the forward) before the GEMMs. Dropout
 * follows the train flag and draws its mask exactly as nb_dropout does. Values are the bits of
 * the unfused composition, and so are gradients, except gelu's and, with dropout, tanh's and
 * sigmoid's: within rounding. Twice differentiable. Errors: NB_ERR_SHAPE / NB_ERR_DTYPE for
 * operands that do not fit, NB_ERR_VALUE for p outside [0, 1) or an unknown act. */
nb_tensor *nb_linear_act(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, nb_act act, double dropout_p);

/* ---- losses -------------------------------------------------------------------------- */
typedef enum { NB_REDUCE_MEAN = 0, NB_REDUCE_SUM = 1, NB_REDUCE_NONE = 2 } nb_reduction;
/* Cross-entropy from logits (N, C) and integer labels (N) in [0, C) (NB_I64); numerically
 * stable (log-softmax). A label out of range is an NB_ERR_INDEX error. */
nb_tensor *nb_cross_entropy(nb_ctx *ctx, nb_tensor *logits, nb_tensor *labels, nb_reduction red);
/* With label smoothing eps: target (1-eps) on the label and eps/C spread over all classes. */
nb_tensor *nb_cross_entropy_smooth(nb_ctx *ctx, nb_tensor *logits, nb_tensor *labels, double eps,
                                   nb_reduction red);
/* Negative log-likelihood from log-probabilities (N, C). */
nb_tensor *nb_nll_loss(nb_ctx *ctx, nb_tensor *logp, nb_tensor *labels, nb_reduction red);
nb_tensor *nb_mse_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target, nb_reduction red);
/* Binary cross-entropy on logits x with targets y in [0,1]: softplus(x) - x*y, stable. */
nb_tensor *nb_bce_with_logits(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, nb_reduction red);

#ifdef __cplusplus
}
#endif

/* call-site capture for anomaly reports (see NB__AT in graph.h) */
#if !defined(NB_NO_SITE) && !defined(NB_INTERNAL)
#define nb_empty(...) NB__AT(nb_empty, __VA_ARGS__)
#define nb_zeros(...) NB__AT(nb_zeros, __VA_ARGS__)
#define nb_ones(...) NB__AT(nb_ones, __VA_ARGS__)
#define nb_full(...) NB__AT(nb_full, __VA_ARGS__)
#define nb_scalar(...) NB__AT(nb_scalar, __VA_ARGS__)
#define nb_from(...) NB__AT(nb_from, __VA_ARGS__)
#define nb_arange(...) NB__AT(nb_arange, __VA_ARGS__)
#define nb_zeros_like(...) NB__AT(nb_zeros_like, __VA_ARGS__)
#define nb_ones_like(...) NB__AT(nb_ones_like, __VA_ARGS__)
#define nb_rand(...) NB__AT(nb_rand, __VA_ARGS__)
#define nb_randn(...) NB__AT(nb_randn, __VA_ARGS__)
#define nb_add(...) NB__AT(nb_add, __VA_ARGS__)
#define nb_sub(...) NB__AT(nb_sub, __VA_ARGS__)
#define nb_mul(...) NB__AT(nb_mul, __VA_ARGS__)
#define nb_div(...) NB__AT(nb_div, __VA_ARGS__)
#define nb_pow(...) NB__AT(nb_pow, __VA_ARGS__)
#define nb_maximum(...) NB__AT(nb_maximum, __VA_ARGS__)
#define nb_minimum(...) NB__AT(nb_minimum, __VA_ARGS__)
#define nb_atan2(...) NB__AT(nb_atan2, __VA_ARGS__)
#define nb_eq(...) NB__AT(nb_eq, __VA_ARGS__)
#define nb_ne(...) NB__AT(nb_ne, __VA_ARGS__)
#define nb_lt(...) NB__AT(nb_lt, __VA_ARGS__)
#define nb_le(...) NB__AT(nb_le, __VA_ARGS__)
#define nb_gt(...) NB__AT(nb_gt, __VA_ARGS__)
#define nb_ge(...) NB__AT(nb_ge, __VA_ARGS__)
#define nb_where(...) NB__AT(nb_where, __VA_ARGS__)
#define nb_affine(...) NB__AT(nb_affine, __VA_ARGS__)
#define nb_add_scalar(...) NB__AT(nb_add_scalar, __VA_ARGS__)
#define nb_mul_scalar(...) NB__AT(nb_mul_scalar, __VA_ARGS__)
#define nb_pow_scalar(...) NB__AT(nb_pow_scalar, __VA_ARGS__)
#define nb_neg(...) NB__AT(nb_neg, __VA_ARGS__)
#define nb_exp(...) NB__AT(nb_exp, __VA_ARGS__)
#define nb_expm1(...) NB__AT(nb_expm1, __VA_ARGS__)
#define nb_log(...) NB__AT(nb_log, __VA_ARGS__)
#define nb_log1p(...) NB__AT(nb_log1p, __VA_ARGS__)
#define nb_log2(...) NB__AT(nb_log2, __VA_ARGS__)
#define nb_log10(...) NB__AT(nb_log10, __VA_ARGS__)
#define nb_sqrt(...) NB__AT(nb_sqrt, __VA_ARGS__)
#define nb_rsqrt(...) NB__AT(nb_rsqrt, __VA_ARGS__)
#define nb_square(...) NB__AT(nb_square, __VA_ARGS__)
#define nb_reciprocal(...) NB__AT(nb_reciprocal, __VA_ARGS__)
#define nb_abs(...) NB__AT(nb_abs, __VA_ARGS__)
#define nb_sign(...) NB__AT(nb_sign, __VA_ARGS__)
#define nb_floor(...) NB__AT(nb_floor, __VA_ARGS__)
#define nb_ceil(...) NB__AT(nb_ceil, __VA_ARGS__)
#define nb_round(...) NB__AT(nb_round, __VA_ARGS__)
#define nb_erf(...) NB__AT(nb_erf, __VA_ARGS__)
#define nb_erfc(...) NB__AT(nb_erfc, __VA_ARGS__)
#define nb_sin(...) NB__AT(nb_sin, __VA_ARGS__)
#define nb_cos(...) NB__AT(nb_cos, __VA_ARGS__)
#define nb_tan(...) NB__AT(nb_tan, __VA_ARGS__)
#define nb_asin(...) NB__AT(nb_asin, __VA_ARGS__)
#define nb_acos(...) NB__AT(nb_acos, __VA_ARGS__)
#define nb_atan(...) NB__AT(nb_atan, __VA_ARGS__)
#define nb_sinh(...) NB__AT(nb_sinh, __VA_ARGS__)
#define nb_cosh(...) NB__AT(nb_cosh, __VA_ARGS__)
#define nb_clamp(...) NB__AT(nb_clamp, __VA_ARGS__)
#define nb_relu(...) NB__AT(nb_relu, __VA_ARGS__)
#define nb_leaky_relu(...) NB__AT(nb_leaky_relu, __VA_ARGS__)
#define nb_elu(...) NB__AT(nb_elu, __VA_ARGS__)
#define nb_selu(...) NB__AT(nb_selu, __VA_ARGS__)
#define nb_celu(...) NB__AT(nb_celu, __VA_ARGS__)
#define nb_sigmoid(...) NB__AT(nb_sigmoid, __VA_ARGS__)
#define nb_logsigmoid(...) NB__AT(nb_logsigmoid, __VA_ARGS__)
#define nb_tanh(...) NB__AT(nb_tanh, __VA_ARGS__)
#define nb_gelu(...) NB__AT(nb_gelu, __VA_ARGS__)
#define nb_gelu_tanh(...) NB__AT(nb_gelu_tanh, __VA_ARGS__)
#define nb_silu(...) NB__AT(nb_silu, __VA_ARGS__)
#define nb_mish(...) NB__AT(nb_mish, __VA_ARGS__)
#define nb_softsign(...) NB__AT(nb_softsign, __VA_ARGS__)
#define nb_softplus(...) NB__AT(nb_softplus, __VA_ARGS__)
#define nb_softplus_ex(...) NB__AT(nb_softplus_ex, __VA_ARGS__)
#define nb_hardtanh(...) NB__AT(nb_hardtanh, __VA_ARGS__)
#define nb_hardsigmoid(...) NB__AT(nb_hardsigmoid, __VA_ARGS__)
#define nb_hardswish(...) NB__AT(nb_hardswish, __VA_ARGS__)
#define nb_softmax(...) NB__AT(nb_softmax, __VA_ARGS__)
#define nb_log_softmax(...) NB__AT(nb_log_softmax, __VA_ARGS__)
#define nb_sum(...) NB__AT(nb_sum, __VA_ARGS__)
#define nb_mean(...) NB__AT(nb_mean, __VA_ARGS__)
#define nb_max(...) NB__AT(nb_max, __VA_ARGS__)
#define nb_min(...) NB__AT(nb_min, __VA_ARGS__)
#define nb_var(...) NB__AT(nb_var, __VA_ARGS__)
#define nb_logsumexp(...) NB__AT(nb_logsumexp, __VA_ARGS__)
#define nb_sum_all(...) NB__AT(nb_sum_all, __VA_ARGS__)
#define nb_mean_all(...) NB__AT(nb_mean_all, __VA_ARGS__)
#define nb_argmax(...) NB__AT(nb_argmax, __VA_ARGS__)
#define nb_sum_to(...) NB__AT(nb_sum_to, __VA_ARGS__)
#define nb_reshape(...) NB__AT(nb_reshape, __VA_ARGS__)
#define nb_permute(...) NB__AT(nb_permute, __VA_ARGS__)
#define nb_transpose(...) NB__AT(nb_transpose, __VA_ARGS__)
#define nb_slice(...) NB__AT(nb_slice, __VA_ARGS__)
#define nb_expand(...) NB__AT(nb_expand, __VA_ARGS__)
#define nb_contiguous(...) NB__AT(nb_contiguous, __VA_ARGS__)
#define nb_squeeze(...) NB__AT(nb_squeeze, __VA_ARGS__)
#define nb_unsqueeze(...) NB__AT(nb_unsqueeze, __VA_ARGS__)
#define nb_flatten(...) NB__AT(nb_flatten, __VA_ARGS__)
#define nb_concat(...) NB__AT(nb_concat, __VA_ARGS__)
#define nb_stack(...) NB__AT(nb_stack, __VA_ARGS__)
#define nb_index_select(...) NB__AT(nb_index_select, __VA_ARGS__)
#define nb_index_add(...) NB__AT(nb_index_add, __VA_ARGS__)
#define nb_gather(...) NB__AT(nb_gather, __VA_ARGS__)
#define nb_scatter_add(...) NB__AT(nb_scatter_add, __VA_ARGS__)
#define nb_cast(...) NB__AT(nb_cast, __VA_ARGS__)
#define nb_tril(...) NB__AT(nb_tril, __VA_ARGS__)
#define nb_triu(...) NB__AT(nb_triu, __VA_ARGS__)
#define nb_masked_fill(...) NB__AT(nb_masked_fill, __VA_ARGS__)
#define nb_flip(...) NB__AT(nb_flip, __VA_ARGS__)
#define nb_roll(...) NB__AT(nb_roll, __VA_ARGS__)
#define nb_outer(...) NB__AT(nb_outer, __VA_ARGS__)
#define nb_one_hot(...) NB__AT(nb_one_hot, __VA_ARGS__)
#define nb_matmul(...) NB__AT(nb_matmul, __VA_ARGS__)
#define nb_linear(...) NB__AT(nb_linear, __VA_ARGS__)
#define nb_linear_act(...) NB__AT(nb_linear_act, __VA_ARGS__)
#define nb_cross_entropy(...) NB__AT(nb_cross_entropy, __VA_ARGS__)
#define nb_cross_entropy_smooth(...) NB__AT(nb_cross_entropy_smooth, __VA_ARGS__)
#define nb_nll_loss(...) NB__AT(nb_nll_loss, __VA_ARGS__)
#define nb_mse_loss(...) NB__AT(nb_mse_loss, __VA_ARGS__)
#define nb_bce_with_logits(...) NB__AT(nb_bce_with_logits, __VA_ARGS__)
#endif

#endif
