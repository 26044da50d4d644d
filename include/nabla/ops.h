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
/* Random integers and events (no grad), as the torch functions of the same name. Draw i of a
 * call comes from the generator's counter offset + i alone: the same values for any thread count. */
nb_tensor *nb_randint(nb_ctx *ctx, int64_t low, int64_t high, int ndim, const int64_t *shape); /* i64 in [low, high) */
nb_tensor *nb_bernoulli(nb_ctx *ctx, nb_tensor *p); /* 1 with probability p (each in [0, 1]), else 0; p's dtype */
/* Category indices (i64, (num_samples) or (N, num_samples)) drawn from the weights probs (C) or
 * (N, C): finite, >= 0, a positive sum per row, not necessarily normalised. Without replacement a
 * row holds distinct categories in the order drawn and needs num_samples positive weights
 * (PyTorch 1.13 would fill the rest with zero-weight categories instead). */
nb_tensor *nb_multinomial(nb_ctx *ctx, nb_tensor *probs, int64_t num_samples, bool replacement);
nb_tensor *nb_randperm(nb_ctx *ctx, int64_t n); /* a uniformly random permutation of 0..n-1, i64 */

/* ---- element-wise, broadcasting --------------------------------------------------------- */
nb_tensor *nb_add(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
/* relu(a + b) in one op (a residual block's end): one value instead of two, its backward reads
 * only the output, so a training step keeps the sum once. Same bits as nb_relu(nb_add(a, b)). */
nb_tensor *nb_add_relu(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_sub(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_mul(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_div(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_pow(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);      /* a^b, a > 0 where b is not an integer */
nb_tensor *nb_maximum(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);  /* NaN wins; ties split the gradient evenly */
nb_tensor *nb_minimum(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_atan2(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);    /* angle of the point (b, a), torch.atan2 */
/* Masks: nabla has no bool dtype. A mask is a tensor of any dtype (f32, f64 or i64) read as true
 * where nonzero (NaN is true, as bool(nan) in PyTorch); the comparisons below make 0/1 masks.
 * nb_where and nb_masked_fill accept a mask of any dtype, broadcast. The one exception is
 * nb_scaled_dot_product_attention (nn.h), where an i64 mask is boolean and a float mask additive
 * (PyTorch's bool / float attn_mask): nb_cast(ctx, m, NB_I64) turns a 0/1 float mask into the former.
 * Comparisons (no grad, f32 or f64 inputs: nb_cast an i64 first): 1 where true, 0 where false,
 * in the inputs' dtype. */
nb_tensor *nb_eq(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_ne(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_lt(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_le(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_gt(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_ge(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
/* cond != 0 ? a : b, all three broadcast together; cond gets no gradient. */
nb_tensor *nb_where(nb_ctx *ctx, nb_tensor *cond, nb_tensor *a, nb_tensor *b);

/* With a scalar */
/* Scalars may be infinite (x + -inf, as torch), not NaN (NB_ERR_VALUE). */
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
/* Max/min over axes, as torch.amax / torch.amin: the gradient goes to the arg-max, split evenly
 * among exact ties (nb_max_dim below gives it to one index, as torch.max(x, dim)). */
nb_tensor *nb_max(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim);
nb_tensor *nb_min(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim);
/* torch.amax / torch.amin: nb_max / nb_min under PyTorch's names (ties split the gradient evenly,
 * as torch.amax and torch.max(x) without an axis do). */
nb_tensor *nb_amax(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim);
nb_tensor *nb_amin(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim);
/* torch.max(x, axis, keepdim) / torch.min(x, axis, keepdim): the values, and in *indices (if not
 * NULL) their NB_I64 positions, those of nb_argmax / nb_argmin; the whole gradient goes to
 * that one position, as in PyTorch (not split among ties as by nb_amax). */
nb_tensor *nb_max_dim(nb_ctx *ctx, nb_tensor *x, int axis, bool keepdim, nb_tensor **indices);
nb_tensor *nb_min_dim(nb_ctx *ctx, nb_tensor *x, int axis, bool keepdim, nb_tensor **indices);
/* Product over axes (naxes = 0: all; 1 over an empty axis). The gradient is exact where x has
 * zeros, to any order (torch.prod takes one axis or all; this takes any set). */
nb_tensor *nb_prod(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim);
/* torch.linalg.vector_norm(x, p, axes, keepdim): (sum |x|^p)^(1/p); p = 2 over all axes is the
 * Frobenius norm, p = INFINITY / -INFINITY the max / min of |x| (ties split the gradient), p = 0
 * the count of non-zeros (no grad). As in PyTorch, the gradient at a zero norm is 0 and |x|^p
 * for p < 1 contributes 0 at x = 0. p must not be NaN. */
nb_tensor *nb_norm(nb_ctx *ctx, nb_tensor *x, double p, int naxes, const int *axes, bool keepdim);
/* torch.cumsum / torch.cumprod along axis, accumulated in double. cumprod's gradient is exact
 * where x has zeros, to any order. */
nb_tensor *nb_cumsum(nb_ctx *ctx, nb_tensor *x, int axis);
nb_tensor *nb_cumprod(nb_ctx *ctx, nb_tensor *x, int axis);
/* Variance with `correction` subtracted from the count (1 = unbiased, PyTorch's default); no
 * degrees of freedom left (count <= correction) divides by 0: inf, or NaN for one sample, as torch. */
nb_tensor *nb_var(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, int correction, bool keepdim);
nb_tensor *nb_logsumexp(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim);
nb_tensor *nb_sum_all(nb_ctx *ctx, nb_tensor *x);   /* 0-d */
nb_tensor *nb_mean_all(nb_ctx *ctx, nb_tensor *x);  /* 0-d */
/* Index of the maximum / minimum along axis, NB_I64 (no grad): the first of ties, and the first
 * NaN if there is one, as torch.argmax / torch.argmin. */
nb_tensor *nb_argmax(nb_ctx *ctx, nb_tensor *x, int axis, bool keepdim);
nb_tensor *nb_argmin(nb_ctx *ctx, nb_tensor *x, int axis, bool keepdim);
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
/* torch.scatter: out = x, out[i][idx[i][j]] = src[i][j] (axis 1); src is at least idx's shape and
 * its leading idx-shaped block is used. x's gradient is zero where written; src's is g gathered.
 * Where idx repeats a target PyTorch leaves the result undefined: here the last write in idx's
 * row-major order wins, and only it gets a gradient. */
nb_tensor *nb_scatter(nb_ctx *ctx, nb_tensor *x, int axis, nb_tensor *idx, nb_tensor *src);
/* torch.take_along_dim(x, idx, axis): gather, with x and idx (same ndim) broadcast against each
 * other on every axis but axis. */
nb_tensor *nb_take_along_dim(nb_ctx *ctx, nb_tensor *x, nb_tensor *idx, int axis);
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
/* F.pad(x, pad, mode, value): pad[2k] and pad[2k+1] are added before and after axis ndim-1-k
 * (the last axis first); npad is even and at most 2 ndim; negative pads crop. For an axis of
 * length n: constant needs a result >= 0 long; reflect (about the edge, which is not repeated)
 * each pad < n and a result >= 1; replicate n >= 1 and a result >= 1; circular, as PyTorch's,
 * crops first and wraps what is left at most once (each pad <= that length). value is used by
 * the constant mode only. PyTorch 1.13 pads only the last 1-3 axes of a 2-D to 5-D input in
 * the non-constant modes; here every mode pads any axes, of a tensor of any rank. */
typedef enum { NB_PAD_CONSTANT = 0, NB_PAD_REFLECT = 1, NB_PAD_REPLICATE = 2, NB_PAD_CIRCULAR = 3 } nb_pad_mode;
nb_tensor *nb_pad(nb_ctx *ctx, nb_tensor *x, int npad, const int64_t *pad, nb_pad_mode mode, double value);
/* x.repeat(*repeats) for n >= ndim (extra leading axes), torch.tile(x, repeats) for n < ndim
 * (leading repeats of 1); repeats >= 0. */
nb_tensor *nb_repeat(nb_ctx *ctx, nb_tensor *x, int n, const int64_t *repeats);
/* torch.repeat_interleave(x, repeats, axis): each element repeated `repeats` >= 0 times in place. */
nb_tensor *nb_repeat_interleave(nb_ctx *ctx, nb_tensor *x, int64_t repeats, int axis);
/* torch.sort(x, axis, descending, stable=True): equal values keep their input order and NaN sorts
 * as the largest value. *indices (if not NULL) gets the NB_I64 positions; the values are x
 * gathered at them, so the gradient goes back to the sorted positions. */
nb_tensor *nb_sort(nb_ctx *ctx, nb_tensor *x, int axis, bool descending, nb_tensor **indices);
nb_tensor *nb_argsort(nb_ctx *ctx, nb_tensor *x, int axis, bool descending); /* (no grad) */
/* torch.topk: the k largest (largest = true) or smallest values along axis, in sorted order, ties
 * in input order, NaN the largest; 0 <= k <= the axis length. The result is sorted also for
 * sorted = false, where PyTorch leaves the order unspecified. */
nb_tensor *nb_topk(nb_ctx *ctx, nb_tensor *x, int64_t k, int axis, bool largest, bool sorted, nb_tensor **indices);
/* Convert dtype (F32 <-> F64 differentiable; to/from I64 no grad). */
nb_tensor *nb_cast(nb_ctx *ctx, nb_tensor *x, nb_dtype dt);

/* ---- linear algebra ------------------------------------------------------------------ */
/* Matrix product through BLIS. 2-D (M,K)x(K,N); N-D batched with batch dims broadcast;
 * a 1-D operand is treated as a row (left) or column (right) vector and its axis dropped.
 * Transposed / strided views are passed to BLIS by stride, not copied. */
nb_tensor *nb_matmul(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
/* x (..., in) times w (out, in) transposed, plus b (out) if not NULL: PyTorch's Linear. */
nb_tensor *nb_linear(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b);
/* torch.einsum: "ij,jk->ik" (matmul), "bij,bjk->bik" (batched), "...ij,...jk->...ik", "ij->ji",
 * "ii->i" (diagonal), "ii" (trace), "ij->" (sum), "i,j->ij" (outer), over n operands of one
 * float dtype. Letters name axes (a letter repeated in one operand takes its diagonal); "..."
 * stands for the axes no letter names, aligned from the right. Without "->" the output is the
 * ellipsis, then the letters used once in ASCII order. Labels missing from the output are summed;
 * axes of size 1 broadcast. Operands are contracted left to right, each pair one batched matmul
 * (no search for a cheaper order). Errors name the spec: a bad character or ellipsis, the wrong
 * number of operands or of subscripts for an operand's dims, sizes that do not broadcast, an
 * output label in no operand or repeated. */
nb_tensor *nb_einsum(nb_ctx *ctx, const char *spec, int n, nb_tensor *const *inputs);
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
/* As torch.nn.functional in PyTorch 1.13, composed from the ops above, so every loss is
 * differentiable to any order where it is smooth; inputs, targets, variances and class weights
 * all get gradients (labels and +-1 targets do not). reduction: mean (the default, the zero
 * value), sum, or none (the per-element losses, the loss's natural shape); batchmean (the sum
 * divided by the size of axis 0) is kl_div's only. Each family of losses has one options
 * struct; as for nb_conv_opts, zero fields take PyTorch's defaults, so a designated
 * initializer names only what differs, and opts NULL is all defaults. Errors name the loss:
 * a shape or dtype mismatch, a label out of range, a bad option (NB_ERR_VALUE), an option of
 * another loss of the family. Where PyTorch broadcasts a target of another shape (with a
 * warning), nabla refuses it: input and target have one shape. */
typedef enum { NB_REDUCE_MEAN = 0, NB_REDUCE_SUM = 1, NB_REDUCE_NONE = 2, NB_REDUCE_BATCHMEAN = 3 } nb_reduction;

/* cross_entropy and nll_loss. weight: (C) class weights of the logits' dtype, or NULL for all
 * 1; a weighted mean divides by the sum of the targets' weights. ignore_index: targets equal
 * to it add nothing to the loss nor to the mean's divisor (a mean over no target is NaN, as in
 * PyTorch); it is PyTorch's -100 unless has_ignore_index is set, so that class 0 can be
 * ignored too. label_smoothing in [0, 1] (cross_entropy only): the target becomes (1 - ls) on
 * the label plus ls / C on every class. */
typedef struct {
    nb_reduction reduction;
    nb_tensor *weight;
    int64_t ignore_index;
    bool has_ignore_index;
    double label_smoothing;
} nb_class_loss_opts;
/* F.cross_entropy: logits (N, C, d1, ..., dk) (or (C) unbatched) against either i64 labels
 * (N, d1, ..., dk) in [0, C) or == ignore_index, or class probabilities of the logits' shape
 * and dtype (then a mean divides by N d1 ... dk, and ignore_index must not be set). Stable:
 * through log_softmax over axis 1. reduction none gives (N, d1, ..., dk). */
nb_tensor *nb_cross_entropy_ex(nb_ctx *ctx, nb_tensor *logits, nb_tensor *target, const nb_class_loss_opts *opts);
/* F.nll_loss: log-probabilities (N, C, d1, ..., dk) (or (C)) and i64 labels, as above. */
nb_tensor *nb_nll_loss_ex(nb_ctx *ctx, nb_tensor *logp, nb_tensor *labels, const nb_class_loss_opts *opts);
/* The positional forms: cross-entropy of logits (N, C) and labels (N) with defaults; with label
 * smoothing eps; negative log-likelihood of log-probabilities. */
nb_tensor *nb_cross_entropy(nb_ctx *ctx, nb_tensor *logits, nb_tensor *labels, nb_reduction red);
nb_tensor *nb_cross_entropy_smooth(nb_ctx *ctx, nb_tensor *logits, nb_tensor *labels, double eps,
                                   nb_reduction red);
nb_tensor *nb_nll_loss(nb_ctx *ctx, nb_tensor *logp, nb_tensor *labels, nb_reduction red);

/* binary_cross_entropy and bce_with_logits. weight: rescales each element's loss, broadcast to
 * the input's shape. pos_weight (bce_with_logits only): the weight of the positive term,
 * broadcast along the last axis (C) like PyTorch's: loss = (1 - y) x + (1 + (pw - 1) y)
 * softplus(-x). */
typedef struct {
    nb_reduction reduction;
    nb_tensor *weight;
    nb_tensor *pos_weight;
} nb_bce_loss_opts;
/* F.binary_cross_entropy_with_logits: x logits, y targets in [0, 1] (differentiable), stable. */
nb_tensor *nb_bce_with_logits_ex(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, const nb_bce_loss_opts *opts);
nb_tensor *nb_bce_with_logits(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, nb_reduction red);
/* F.binary_cross_entropy: -(y log p + (1 - y) log(1 - p)) on probabilities p in [0, 1] (others,
 * and NaN, are an NB_ERR_VALUE error, as in PyTorch), each log clamped to >= -100. The gradient
 * is that of the clamped loss: PyTorch instead floors p (1 - p) at 1e-12 in its gradient, so the
 * two differ where p or 1 - p is below about 1e-12 (at p = 0 or 1 exactly nabla's is finite). */
nb_tensor *nb_binary_cross_entropy(nb_ctx *ctx, nb_tensor *p, nb_tensor *y, const nb_bce_loss_opts *opts);

/* Regression: F.mse_loss (x - y)^2 and F.l1_loss |x - y| (gradient 0 at x == y, as PyTorch). */
nb_tensor *nb_mse_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target, nb_reduction red);
nb_tensor *nb_l1_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target, nb_reduction red);
/* smooth_l1_loss and huber_loss. beta (smooth_l1, > 0, default 1; for beta 0, which PyTorch
 * allows, use l1_loss, its value then) and delta (huber, > 0, default 1): where the quadratic
 * part ends. Second derivatives are PyTorch's: 1/beta (1) inside, 0 outside. */
typedef struct {
    nb_reduction reduction;
    double beta;
    double delta;
} nb_regression_loss_opts;
/* F.smooth_l1_loss: with d = |x - y|, 0.5 d^2 / beta where d < beta, else d - 0.5 beta. */
nb_tensor *nb_smooth_l1_loss(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, const nb_regression_loss_opts *opts);
/* F.huber_loss: 0.5 d^2 where d < delta, else delta (d - 0.5 delta). */
nb_tensor *nb_huber_loss(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, const nb_regression_loss_opts *opts);

/* Losses on distributions (kl_div, poisson_nll_loss, gaussian_nll_loss). log_target (kl_div):
 * the target is given as log-probabilities. rate_input (poisson_nll): the input is the rate
 * itself, PyTorch's log_input=False (the default, log_input=True, is the zero value). full:
 * add the constant terms (poisson: Stirling's log(y!) where y > 1; gaussian: log(2 pi) / 2).
 * eps (>= 0; 0 takes the default): poisson's 1e-8 in log(x + eps) for rate inputs, gaussian's
 * 1e-6 floor on the variance. */
typedef struct {
    nb_reduction reduction;
    bool log_target;
    bool rate_input;
    bool full;
    double eps;
} nb_prob_loss_opts;
/* F.kl_div: input log q, target p (or log p with log_target): p (log p - input), 0 where p = 0
 * (xlogy). Reductions include batchmean (PyTorch's mean is per element, as here). The gradient
 * with respect to a target p = 0 takes p log p's slope there as 0, giving -input (the one-sided
 * limit of log p + 1 - input is -inf; PyTorch 1.13 gives NaN): learn a target through a
 * softmax or with log_target, where no p is exactly 0. */
nb_tensor *nb_kl_div(nb_ctx *ctx, nb_tensor *input, nb_tensor *target, const nb_prob_loss_opts *opts);
/* F.poisson_nll_loss: exp(x) - y x (log-rate input) or x - y log(x + eps) (rate input). */
nb_tensor *nb_poisson_nll_loss(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, const nb_prob_loss_opts *opts);
/* F.gaussian_nll_loss: 0.5 (log v + (x - y)^2 / v), v = max(var, eps) with PyTorch's gradient
 * (it passes var's gradient through the floor). var has the input's shape, or that shape with
 * the last axis 1 or dropped (one variance per sample); a negative var is an NB_ERR_VALUE error. */
nb_tensor *nb_gaussian_nll_loss(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, nb_tensor *var, const nb_prob_loss_opts *opts);

/* Margin losses. margin: PyTorch's default is 0 for cosine_embedding and margin_ranking and 1
 * for hinge_embedding and triplet_margin; the zero value takes it, and has_margin makes the
 * margin field count as given (so a margin of 0 is possible everywhere). triplet_margin: p (>
 * 0, default 2) of the p-norm distance, eps (>= 0, default 1e-6) added to the difference, swap
 * (use the smaller of d(a, n) and d(p, n)). The +-1 targets y of cosine_embedding,
 * hinge_embedding and soft_margin may be f32, f64 or i64; any other value than 1 or -1 is an
 * NB_ERR_VALUE error (PyTorch gives it a partial or zero loss). */
typedef struct {
    nb_reduction reduction;
    double margin;
    bool has_margin;
    double p;
    double eps;
    bool swap;
} nb_margin_loss_opts;
/* F.cosine_embedding_loss: x1, x2 (N, D) or (D), y (N) or (): 1 - cos where y = 1, max(0, cos -
 * margin) where y = -1; cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)) over the last axis. */
nb_tensor *nb_cosine_embedding_loss(nb_ctx *ctx, nb_tensor *x1, nb_tensor *x2, nb_tensor *y,
                                    const nb_margin_loss_opts *opts);
/* F.margin_ranking_loss: max(0, -y (x1 - x2) + margin); x1, x2, y of one float dtype and one
 * ndim, broadcast together; y (any real, not checked) gets a gradient. */
nb_tensor *nb_margin_ranking_loss(nb_ctx *ctx, nb_tensor *x1, nb_tensor *x2, nb_tensor *y, const nb_margin_loss_opts *opts);
/* F.hinge_embedding_loss: x where y = 1, max(0, margin - x) where y = -1; y of x's shape. */
nb_tensor *nb_hinge_embedding_loss(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, const nb_margin_loss_opts *opts);
/* F.soft_margin_loss: log(1 + exp(-y x)), y +-1 of x's shape; stable where PyTorch's overflows. */
nb_tensor *nb_soft_margin_loss(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, nb_reduction red);
/* F.triplet_margin_loss: anchor, positive, negative of one shape (..., D): max(0, margin +
 * d(a, p) - d(a, n)), d(u, v) = ||u - v + eps||_p over the last axis; (...) per element. */
nb_tensor *nb_triplet_margin_loss(nb_ctx *ctx, nb_tensor *anchor, nb_tensor *positive, nb_tensor *negative,
                                  const nb_margin_loss_opts *opts);

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
#define nb_randint(...) NB__AT(nb_randint, __VA_ARGS__)
#define nb_bernoulli(...) NB__AT(nb_bernoulli, __VA_ARGS__)
#define nb_multinomial(...) NB__AT(nb_multinomial, __VA_ARGS__)
#define nb_randperm(...) NB__AT(nb_randperm, __VA_ARGS__)
#define nb_add(...) NB__AT(nb_add, __VA_ARGS__)
#define nb_add_relu(...) NB__AT(nb_add_relu, __VA_ARGS__)
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
#define nb_scatter(...) NB__AT(nb_scatter, __VA_ARGS__)
#define nb_take_along_dim(...) NB__AT(nb_take_along_dim, __VA_ARGS__)
#define nb_pad(...) NB__AT(nb_pad, __VA_ARGS__)
#define nb_repeat(...) NB__AT(nb_repeat, __VA_ARGS__)
#define nb_repeat_interleave(...) NB__AT(nb_repeat_interleave, __VA_ARGS__)
#define nb_sort(...) NB__AT(nb_sort, __VA_ARGS__)
#define nb_argsort(...) NB__AT(nb_argsort, __VA_ARGS__)
#define nb_topk(...) NB__AT(nb_topk, __VA_ARGS__)
#define nb_amax(...) NB__AT(nb_amax, __VA_ARGS__)
#define nb_amin(...) NB__AT(nb_amin, __VA_ARGS__)
#define nb_max_dim(...) NB__AT(nb_max_dim, __VA_ARGS__)
#define nb_min_dim(...) NB__AT(nb_min_dim, __VA_ARGS__)
#define nb_prod(...) NB__AT(nb_prod, __VA_ARGS__)
#define nb_norm(...) NB__AT(nb_norm, __VA_ARGS__)
#define nb_cumsum(...) NB__AT(nb_cumsum, __VA_ARGS__)
#define nb_cumprod(...) NB__AT(nb_cumprod, __VA_ARGS__)
#define nb_argmin(...) NB__AT(nb_argmin, __VA_ARGS__)
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
#define nb_einsum(...) NB__AT(nb_einsum, __VA_ARGS__)
#define nb_cross_entropy_ex(...) NB__AT(nb_cross_entropy_ex, __VA_ARGS__)
#define nb_nll_loss_ex(...) NB__AT(nb_nll_loss_ex, __VA_ARGS__)
#define nb_linear_act(...) NB__AT(nb_linear_act, __VA_ARGS__)
#define nb_cross_entropy(...) NB__AT(nb_cross_entropy, __VA_ARGS__)
#define nb_cross_entropy_smooth(...) NB__AT(nb_cross_entropy_smooth, __VA_ARGS__)
#define nb_nll_loss(...) NB__AT(nb_nll_loss, __VA_ARGS__)
#define nb_bce_with_logits_ex(...) NB__AT(nb_bce_with_logits_ex, __VA_ARGS__)
#define nb_bce_with_logits(...) NB__AT(nb_bce_with_logits, __VA_ARGS__)
#define nb_binary_cross_entropy(...) NB__AT(nb_binary_cross_entropy, __VA_ARGS__)
#define nb_mse_loss(...) NB__AT(nb_mse_loss, __VA_ARGS__)
#define nb_l1_loss(...) NB__AT(nb_l1_loss, __VA_ARGS__)
#define nb_smooth_l1_loss(...) NB__AT(nb_smooth_l1_loss, __VA_ARGS__)
#define nb_huber_loss(...) NB__AT(nb_huber_loss, __VA_ARGS__)
#define nb_kl_div(...) NB__AT(nb_kl_div, __VA_ARGS__)
#define nb_poisson_nll_loss(...) NB__AT(nb_poisson_nll_loss, __VA_ARGS__)
#define nb_gaussian_nll_loss(...) NB__AT(nb_gaussian_nll_loss, __VA_ARGS__)
#define nb_cosine_embedding_loss(...) NB__AT(nb_cosine_embedding_loss, __VA_ARGS__)
#define nb_margin_ranking_loss(...) NB__AT(nb_margin_ranking_loss, __VA_ARGS__)
#define nb_hinge_embedding_loss(...) NB__AT(nb_hinge_embedding_loss, __VA_ARGS__)
#define nb_soft_margin_loss(...) NB__AT(nb_soft_margin_loss, __VA_ARGS__)
#define nb_triplet_margin_loss(...) NB__AT(nb_triplet_margin_loss, __VA_ARGS__)
#endif

#endif
