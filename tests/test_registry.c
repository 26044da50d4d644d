/* The op registry: every public op of ops.h, nn.h and regularize.h is either here, where
 * nb_opcheck runs every property on it (gradcheck and gradgradcheck in f64 on contiguous,
 * transposed, sliced and broadcast inputs, f32 against f64, the same bits at 1 and 2 threads,
 * NaN propagation where every input element reaches the output, the bad-shape error naming
 * the op, no arena growth), or in the list of ops without a gradient, with the reason. A test
 * fails when a header declares an op that is in neither: an op is tested the moment it is
 * added. The family tests (tests/ops/...) add values against PyTorch and special cases. */
#include "common.h"

#include <stdio.h>
#include <string.h>

TestSuite(registry, .init = ctx_setup, .fini = ctx_teardown);

typedef struct {
    int ndim;
    int64_t s[5];
} shp;
typedef nb_tensor *(*u1_fn)(nb_ctx *, nb_tensor *);
typedef nb_tensor *(*b2_fn)(nb_ctx *, nb_tensor *, nb_tensor *);

typedef struct reg {
    const char *name;  /* the op as declared (nb_<name>) */
    int n_in;
    shp c[2][4];       /* the input shapes of cases 0 and 1 */
    shp bad[4];        /* a case the op must refuse (ndim 0 in bad[0]: none) */
    double lo, hi;     /* input values */
    bool smooth, nan;
    u1_fn u1;          /* the op itself when it is unary / binary, else f */
    b2_fn b2;
    nb_fn f;
} reg;

static nb_tensor *call(nb_ctx *c, nb_tensor *const *in, void *u) {
    const reg *r = u;
    if (r->u1) return r->u1(c, in[0]);
    if (r->b2) return r->b2(c, in[0], in[1]);
    return r->f(c, in, NULL);
}
static bool shapes(int k, int n_in, int *ndim, int64_t shape[][NB_MAX_DIMS], void *u) {
    const reg *r = u;
    const shp *src = k == -1 ? r->bad : (k >= 0 && k < 2 ? r->c[k] : NULL);
    if (!src || src[0].ndim == 0) return false;
    for (int i = 0; i < n_in; i++) {
        ndim[i] = src[i].ndim;
        for (int d = 0; d < src[i].ndim; d++) shape[i][d] = src[i].s[d];
    }
    return true;
}

/* ---- wrappers: the op with its non-tensor arguments fixed ------------------------------------ */
#define W(name, expr) \
    static nb_tensor *w_##name(nb_ctx *c, nb_tensor *const *in, void *u) { (void)u; return (expr); }
static int ax1[] = {1}, ax02[] = {0, 2}, perm[] = {2, 0, 1};
static nb_tensor *labels(nb_ctx *c, int64_t n, int64_t classes) {
    if (classes < 1) classes = 1; /* a bad-shape case: the op is to refuse the logits */
    nb_tensor *y = nb_empty(c, NB_I64, 1, &n);
    for (int64_t i = 0; i < n; i++) nb_set(y, i, (double)((i * 7 + 3) % classes));
    return y;
}
static nb_tensor *index_of(nb_ctx *c, const nb_tensor *x, int axis, int64_t n) {
    nb_tensor *y = nb_empty(c, NB_I64, 1, &n);
    for (int64_t i = 0; i < n; i++) nb_set(y, i, (double)((i * 5 + 1) % x->shape[axis]));
    return y;
}
static nb_tensor *gather_index(nb_ctx *c, const nb_tensor *x) { /* x's shape, values along axis 1 */
    nb_tensor *y = nb_empty(c, NB_I64, x->ndim, x->shape);
    for (int64_t i = 0; i < y->numel; i++) nb_set(y, i, (double)((i * 3 + 1) % x->shape[1]));
    return y;
}

W(affine, nb_affine(c, in[0], 1.5, -0.5))
W(add_scalar, nb_add_scalar(c, in[0], 0.7))
W(mul_scalar, nb_mul_scalar(c, in[0], -1.3))
W(pow_scalar, nb_pow_scalar(c, in[0], 2.5))
W(clamp, nb_clamp(c, in[0], 0.4, 1.2))
W(leaky_relu, nb_leaky_relu(c, in[0], 0.1))
W(elu, nb_elu(c, in[0], 0.8))
W(celu, nb_celu(c, in[0], 0.7))
W(softplus_ex, nb_softplus_ex(c, in[0], 2.0, 1.5))
W(hardtanh, nb_hardtanh(c, in[0], -0.5, 0.5))
W(softmax, nb_softmax(c, in[0], 1))
W(log_softmax, nb_log_softmax(c, in[0], -1))
W(where, nb_where(c, nb_gt(c, in[0], nb_scalar(c, in[0]->dtype, 0.5)), in[0], in[1]))
W(sum, nb_sum(c, in[0], 1, ax1, false))
W(mean, nb_mean(c, in[0], 2, ax02, true))
W(max, nb_max(c, in[0], 1, ax1, false))
W(min, nb_min(c, in[0], 1, ax1, true))
W(var, nb_var(c, in[0], 1, ax1, 1, false))
W(logsumexp, nb_logsumexp(c, in[0], 1, ax1, false))
W(sum_to, nb_sum_to(c, in[0], 2, (int64_t[]){1, in[0]->shape[in[0]->ndim - 1]}))
W(reshape, nb_reshape(c, in[0], 2, (int64_t[]){-1, 2}))
W(permute, nb_permute(c, in[0], perm))
W(transpose, nb_transpose(c, in[0], 0, -1))
W(slice, nb_slice(c, in[0], -1, 1, 4, 2))
W(expand, nb_expand(c, in[0], 3, (int64_t[]){2, in[0]->shape[0], in[0]->shape[1]}))
W(contiguous, nb_contiguous(c, nb_transpose(c, in[0], 0, 1)))
W(squeeze, nb_squeeze(c, nb_unsqueeze(c, in[0], 1), 1))
W(unsqueeze, nb_unsqueeze(c, in[0], -1))
W(flatten, nb_flatten(c, in[0], 1))
W(concat, nb_concat(c, 2, in, 0))
W(stack, nb_stack(c, 2, in, 1))
W(index_select, nb_index_select(c, in[0], 0, index_of(c, in[0], 0, 5)))
W(index_add, nb_index_add(c, in[0], 0, index_of(c, in[0], 0, in[1]->shape[0]), in[1]))
W(gather, nb_gather(c, in[0], 1, gather_index(c, in[0])))
W(scatter_add, nb_scatter_add(c, in[0], 1, gather_index(c, in[1]), in[1]))
W(matmul, nb_matmul(c, in[0], in[1]))
W(tril, nb_tril(c, in[0], 0))
W(triu, nb_triu(c, in[0], 1))
W(masked_fill, nb_masked_fill(c, in[0], nb_gt(c, in[1], nb_scalar(c, in[1]->dtype, 0.5)), -2.5))
W(flip, nb_flip(c, in[0], -1))
W(roll, nb_roll(c, in[0], 2, 0))
W(outer, nb_outer(c, in[0], in[1]))
W(linear, nb_linear(c, in[0], in[1], in[2]))
W(einsum, nb_einsum(c, "bij,bjk->bki", 2, in))
#define CLASSES(x) ((x)->ndim > 1 ? (x)->shape[1] : 0)
W(cross_entropy, nb_cross_entropy(c, in[0], labels(c, in[0]->shape[0], CLASSES(in[0])), NB_REDUCE_MEAN))
W(cross_entropy_smooth, nb_cross_entropy_smooth(c, in[0], labels(c, in[0]->shape[0], CLASSES(in[0])), 0.1, NB_REDUCE_SUM))
W(nll_loss, nb_nll_loss(c, in[0], labels(c, in[0]->shape[0], CLASSES(in[0])), NB_REDUCE_NONE))
W(mse_loss, nb_mse_loss(c, in[0], in[1], NB_REDUCE_MEAN))
W(bce_with_logits, nb_bce_with_logits(c, in[0], in[1], NB_REDUCE_MEAN))
/* labels of scores x (N, C, d1..dk): x's shape without axis 1, every third one `ignore` */
static nb_tensor *nd_labels(nb_ctx *c, const nb_tensor *x, int64_t ignore) {
    int64_t s[NB_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != 1) s[n++] = x->shape[d];
    nb_tensor *y = nb_empty(c, NB_I64, n, s);
    for (int64_t i = 0; i < y->numel; i++) nb_set(y, i, i % 3 == 2 ? (double)ignore : (double)((i * 7 + 3) % x->shape[1]));
    return y;
}
static nb_tensor *signs(nb_ctx *c, const nb_tensor *x, int ndim) { /* +-1 of x's leading ndim axes */
    nb_tensor *y = nb_empty(c, x->dtype, ndim, x->shape);
    for (int64_t i = 0; i < y->numel; i++) nb_set(y, i, (i * 5 + 1) % 3 ? 1.0 : -1.0);
    return y;
}
W(cross_entropy_ex, nb_cross_entropy_ex(c, in[0], nd_labels(c, in[0], 1),
                                        &(nb_class_loss_opts){.weight = in[1], .ignore_index = 1, .has_ignore_index = true,
                                                              .label_smoothing = 0.1}))
W(cross_entropy_probs, nb_cross_entropy_ex(c, in[0], in[1], &(nb_class_loss_opts){.weight = in[2], .label_smoothing = 0.2}))
W(nll_loss_ex, nb_nll_loss_ex(c, in[0], nd_labels(c, in[0], 0),
                              &(nb_class_loss_opts){.reduction = NB_REDUCE_SUM, .weight = in[1], .has_ignore_index = true}))
W(bce_with_logits_ex, nb_bce_with_logits_ex(c, in[0], in[1], &(nb_bce_loss_opts){.weight = in[2], .pos_weight = in[3]}))
W(binary_cross_entropy, nb_binary_cross_entropy(c, in[0], in[1], &(nb_bce_loss_opts){.reduction = NB_REDUCE_SUM, .weight = in[2]}))
W(l1_loss, nb_l1_loss(c, in[0], in[1], NB_REDUCE_MEAN))
W(smooth_l1_loss, nb_smooth_l1_loss(c, in[0], in[1], &(nb_regression_loss_opts){.beta = 0.5}))
W(huber_loss, nb_huber_loss(c, in[0], in[1], &(nb_regression_loss_opts){.reduction = NB_REDUCE_NONE, .delta = 0.7}))
W(kl_div, nb_kl_div(c, in[0], in[1], &(nb_prob_loss_opts){.reduction = NB_REDUCE_BATCHMEAN}))
W(poisson_nll_loss, nb_poisson_nll_loss(c, in[0], in[1], &(nb_prob_loss_opts){.rate_input = true, .full = true}))
W(gaussian_nll_loss, nb_gaussian_nll_loss(c, in[0], in[1], in[2], &(nb_prob_loss_opts){.full = true}))
W(cosine_embedding_loss, nb_cosine_embedding_loss(c, in[0], in[1], signs(c, in[0], in[0]->ndim - 1),
                                                  &(nb_margin_loss_opts){.margin = 0.2}))
W(margin_ranking_loss, nb_margin_ranking_loss(c, in[0], in[1], in[2], &(nb_margin_loss_opts){.margin = 0.1}))
W(hinge_embedding_loss, nb_hinge_embedding_loss(c, in[0], signs(c, in[0], in[0]->ndim),
                                                &(nb_margin_loss_opts){.reduction = NB_REDUCE_SUM, .margin = 1.5}))
W(soft_margin_loss, nb_soft_margin_loss(c, in[0], signs(c, in[0], in[0]->ndim), NB_REDUCE_MEAN))
W(triplet_margin_loss, nb_triplet_margin_loss(c, in[0], in[1], in[2], &(nb_margin_loss_opts){.margin = 0.5, .swap = true}))
W(unfold, nb_unfold(c, in[0], NB_WINDOW2D(2, 1, 1, 1), 0.0))
W(fold, nb_fold(c, in[0], 3, 3, NB_WINDOW2D(2, 1, 0, 1)))
W(conv2d, nb_conv2d(c, in[0], in[1], in[2], 1, 1, 1, 1))
W(conv_transpose2d, nb_conv_transpose2d(c, in[0], in[1], in[2], 2, 1, 1, 1, 1))
W(conv2d_ex, nb_conv2d_ex(c, in[0], in[1], NULL, &(nb_conv_opts){.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}}))
W(conv_transpose2d_ex, nb_conv_transpose2d_ex(c, in[0], in[1], NULL,
                                              &(nb_conv_opts){.stride = {2, 1}, .padding = {0, 1}, .output_padding = {1, 0},
                                                              .dilation = {1, 2}}))
W(max_pool2d, nb_max_pool2d(c, in[0], 2, 2, 0))
W(avg_pool2d, nb_avg_pool2d(c, in[0], 2, 1, 1))
W(adaptive_avg_pool2d, nb_adaptive_avg_pool2d(c, in[0], 2, 2))
W(max_pool2d_ex, nb_max_pool2d_ex(c, in[0], &(nb_pool_opts){.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1},
                                                            .dilation = {1, 2}, .ceil_mode = true}))
W(avg_pool2d_ex, nb_avg_pool2d_ex(c, in[0], &(nb_pool_opts){.kernel = {3, 2}, .stride = {2, 3}, .padding = {1, 1},
                                                            .ceil_mode = true, .exclude_pad = true}))
W(max_pool1d, nb_max_pool1d(c, in[0], &(nb_pool_opts){.kernel = {3}, .stride = {2}, .dilation = {2}, .ceil_mode = true}))
W(avg_pool1d, nb_avg_pool1d(c, in[0], &(nb_pool_opts){.kernel = {4}, .stride = {3}, .padding = {2}, .ceil_mode = true,
                                                      .exclude_pad = true}))
W(conv1d, nb_conv1d(c, in[0], in[1], in[2], &(nb_conv_opts){.stride = {2}, .padding = {1}, .groups = 2}))
W(conv3d, nb_conv3d(c, in[0], in[1], in[2], &(nb_conv3d_opts){.stride = {2, 1, 1}, .padding = {1, 0, 1}, .groups = 2}))
W(interpolate, nb_interpolate(c, in[0], &(nb_interp_opts){.size = {5, 7}, .mode = NB_INTERP_BILINEAR}))
W(interpolate_nearest, nb_interpolate(c, in[0], &(nb_interp_opts){.scale_factor = {2, 1.5}}))
W(pixel_shuffle, nb_pixel_shuffle(c, in[0], 2))
W(pixel_unshuffle, nb_pixel_unshuffle(c, in[0], 2))
W(batch_norm, nb_batch_norm(c, in[0], in[1], in[2], NULL, NULL, 0.1, 1e-5))
W(batch_norm_relu, nb_batch_norm_relu(c, in[0], in[1], in[2], NULL, NULL, 0.1, 1e-5))
W(layer_norm, nb_layer_norm(c, in[0], 1, in[1], in[2], 1e-5))
W(group_norm, nb_group_norm(c, in[0], 2, in[1], in[2], 1e-5))
W(embedding, nb_embedding(c, in[0], index_of(c, in[0], 0, 6)))
/* rows 1.. only: finite differences would see the padding row 0 change, which its (PyTorch's)
 * zero gradient ignores; that zero is checked in tests/nn/test_layers.c */
static nb_tensor *w_embedding_padded(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_tensor *idx = index_of(c, in[0], 0, 6);
    for (int64_t i = 0; i < idx->numel; i++) nb_set(idx, i, 1 + (int64_t)nb_get(idx, i) % (in[0]->shape[0] - 1));
    return nb_embedding_padded(c, in[0], idx, 0);
}
W(rnn_cell, nb_rnn_cell(c, in[0], in[1], in[2], in[3], NULL, NULL))
W(gru_cell, nb_gru_cell(c, in[0], in[1], in[2], in[3], NULL, NULL))
static nb_tensor *w_lstm_cell(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_tensor *cell, *h = nb_lstm_cell(c, in[0], in[1], in[1], in[2], in[3], NULL, NULL, &cell);
    return h ? nb_concat(c, 2, (nb_tensor *[]){h, cell}, 1) : NULL;
}
W(rnn_unroll, nb_rnn_unroll(c, NB_GRU, in[0], NULL, NULL, in[1], in[2], NULL, NULL, NULL, NULL))
W(l2_penalty, nb_l2_penalty(c, 2, in, 0.3))
W(l1_penalty, nb_l1_penalty(c, 2, in, 0.3))
W(elastic_net_penalty, nb_elastic_net_penalty(c, 2, in, 0.2, 0.4))
W(group_lasso_penalty, nb_group_lasso_penalty(c, 2, in, 0.5, 0))
static nb_tensor *w_gradient_penalty(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u; /* out depends on x through a weight: the penalty on d out / d x, differentiated w.r.t. both */
    nb_tensor *out = nb_sum(c, nb_tanh(c, nb_matmul(c, in[0], in[1])), 1, ax1, false);
    return nb_gradient_penalty(c, out, in[0], 1.0, 0.5);
}
/* the fused forms reseed, so that every evaluation draws the same dropout mask */
static nb_tensor *w_linear_act(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_ctx_seed(c, 3);
    return nb_linear_act(c, in[0], in[1], in[2], NB_ACT_GELU, 0.3);
}
static nb_tensor *w_linear_layer_forward(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_linear_layer l = {.weight = in[1], .bias = in[2], .in = in[1]->shape[1], .out = in[1]->shape[0],
                         .act = NB_ACT_SIGMOID, .dropout = 0.25};
    nb_ctx_seed(c, 4);
    return nb_linear_layer_forward(c, &l, in[0]);
}
static nb_tensor *w_conv2d_layer_forward(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_conv2d_layer l = {in[1], NULL, 1, 0, 1, 1};
    return nb_conv2d_layer_forward(c, &l, in[0]);
}
static nb_tensor *w_layer_norm_layer_forward(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_layer_norm_layer l = {in[1], in[2], 1e-5};
    return nb_layer_norm_layer_forward(c, &l, in[0]);
}
static nb_tensor *w_embedding_layer_forward(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_embedding_layer l = {.weight = in[0]};
    return nb_embedding_layer_forward(c, &l, index_of(c, in[0], 0, 4));
}
/* pad, repeat, scans, norms, sorting, scatter (src/ops/pad.c, scan.c, sort.c, reduce.c, shape.c) */
W(pad, nb_pad(c, in[0], 4, (int64_t[]){1, 2, -1, 1}, NB_PAD_CONSTANT, 0.5))
W(pad_reflect, nb_pad(c, in[0], 4, (int64_t[]){2, 1, 1, 2}, NB_PAD_REFLECT, 0))
W(pad_replicate, nb_pad(c, in[0], 4, (int64_t[]){3, 1, 0, 2}, NB_PAD_REPLICATE, 0))
W(pad_circular, nb_pad(c, in[0], 4, (int64_t[]){1, 2, 2, -1}, NB_PAD_CIRCULAR, 0))
W(repeat, nb_repeat(c, in[0], 3, (int64_t[]){2, 1, 3}))
W(repeat_interleave, nb_repeat_interleave(c, in[0], 3, 0))
W(cumsum, nb_cumsum(c, in[0], 1))
W(cumprod, nb_cumprod(c, in[0], -1))
W(prod, nb_prod(c, in[0], 1, ax1, false))
W(norm, nb_norm(c, in[0], 2, 1, ax1, false))
W(norm_p3, nb_norm(c, in[0], 3, 2, ax02, true))
W(norm_inf, nb_norm(c, in[0], INFINITY, 0, NULL, false))
W(amax, nb_amax(c, in[0], 1, ax1, false))
W(amin, nb_amin(c, in[0], 2, ax02, true))
W(max_dim, nb_max_dim(c, in[0], 1, false, NULL))
W(min_dim, nb_min_dim(c, in[0], 0, true, NULL))
W(sort, nb_sort(c, in[0], 1, true, NULL))
W(topk, nb_topk(c, in[0], 2, -1, true, true, NULL))
W(take_along_dim, nb_take_along_dim(c, in[0], nb_argsort(c, in[0], 1, false), 1))
W(scatter, nb_scatter(c, in[0], 1, gather_index(c, in[1]), in[1]))
W(scaled_dot_product_attention, nb_scaled_dot_product_attention(c, in[0], in[1], in[2], NULL, true, 0.0, 0.0))
W(sdpa_additive_mask, nb_scaled_dot_product_attention(c, in[0], in[1], in[2], in[3], false, 0.0, 0.7))
W(multi_head_attention, nb_multi_head_attention(c, in[0], in[0], in[0], in[1], in[2], in[3], NULL, 2, NULL, false, 0.0))
static nb_tensor *mha_weights(nb_ctx *c, nb_tensor *const *in, bool average) {
    nb_tensor *w = NULL;
    nb_multi_head_attention_need_weights(c, in[0], in[0], in[0], in[1], in[2], in[3], NULL, 2, NULL, false, 0.0, average, &w);
    return w;
}
W(multi_head_attention_need_weights, mha_weights(c, in, true))
W(mha_weights_per_head, mha_weights(c, in, false))
#undef W

/* ---- the registry ------------------------------------------------------------------------------ */
#define S1(a) {1, {a}}
#define S2(a, b) {2, {a, b}}
#define S3(a, b, c) {3, {a, b, c}}
#define S4(a, b, c, d) {4, {a, b, c, d}}
#define S5(a, b, c, d, e) {5, {a, b, c, d, e}}
#define UNARY(op, lo, hi, smooth) {#op, 1, {{S2(3, 4)}, {S3(2, 3, 2)}}, {{0}}, lo, hi, smooth, true, nb_##op, NULL, NULL}
#define BINARY(op, lo, hi, smooth) \
    {#op, 2, {{S2(3, 4), S2(3, 4)}, {S3(2, 1, 4), S2(3, 4)}}, {S2(3, 4), S2(2, 4)}, lo, hi, smooth, true, NULL, nb_##op, NULL}
#define OP(op, n, c0, c1, bad, lo, hi, smooth, nan) {#op, n, {c0, c1}, bad, lo, hi, smooth, nan, NULL, NULL, w_##op}
/* a second configuration of op, run by the wrapper w_variant */
#define OPV(op, variant, n, c0, c1, bad, lo, hi, smooth, nan) {#op, n, {c0, c1}, bad, lo, hi, smooth, nan, NULL, NULL, w_##variant}
#define NONE {{0}}
/* another configuration of an op already listed (the errors still name the op) */
#define OPV(op, variant, n, c0, c1, bad, lo, hi, smooth, nan) {#op, n, {c0, c1}, bad, lo, hi, smooth, nan, NULL, NULL, w_##variant}
#define COMMA ,

static const reg REGISTRY[] = {
    /* element-wise (values against PyTorch: tests/ops/test_elementwise.c) */
    UNARY(neg, -2, 2, true), UNARY(exp, -2, 2, true), UNARY(expm1, -2, 2, true), UNARY(log, 0.2, 3, true),
    UNARY(log1p, 0.2, 3, true), UNARY(log2, 0.2, 3, true), UNARY(log10, 0.2, 3, true), UNARY(sqrt, 0.2, 3, true),
    UNARY(rsqrt, 0.2, 3, true), UNARY(square, -2, 2, true), UNARY(reciprocal, 0.3, 2, true), UNARY(abs, 0.2, 2, true),
    UNARY(erf, -2, 2, true), UNARY(erfc, -2, 2, true), UNARY(sin, -2, 2, true), UNARY(cos, -2, 2, true),
    UNARY(tan, -1, 1, true), UNARY(asin, -0.8, 0.8, true), UNARY(acos, -0.8, 0.8, true), UNARY(atan, -2, 2, true),
    UNARY(sinh, -2, 2, true), UNARY(cosh, -2, 2, true), UNARY(relu, 0.1, 2, true), UNARY(selu, 0.1, 2, true),
    UNARY(sigmoid, -3, 3, true), UNARY(logsigmoid, -3, 3, true), UNARY(tanh, -2, 2, true), UNARY(gelu, -2, 2, true),
    UNARY(gelu_tanh, -2, 2, true), UNARY(silu, -2, 2, true), UNARY(mish, -2, 2, true), UNARY(softsign, 0.1, 2, true),
    UNARY(softplus, -2, 2, true), UNARY(hardsigmoid, -2.5, 2.5, true), UNARY(hardswish, -2.5, 2.5, true),
    OP(affine, 1, {S2(3, 4)}, {S1(5)}, NONE, -2, 2, true, true),
    OP(add_scalar, 1, {S2(3, 4)}, {S1(5)}, NONE, -2, 2, true, true),
    OP(mul_scalar, 1, {S2(3, 4)}, {S1(5)}, NONE, -2, 2, true, true),
    OP(pow_scalar, 1, {S2(3, 4)}, {S1(5)}, NONE, 0.3, 2, true, true),
    OP(clamp, 1, {S2(3, 4)}, {S1(5)}, NONE, 0.5, 1.1, true, true),
    OP(leaky_relu, 1, {S2(3, 4)}, {S1(5)}, NONE, 0.1, 2, true, true),
    OP(elu, 1, {S2(3, 4)}, {S1(5)}, NONE, -2, -0.1, true, true),
    OP(celu, 1, {S2(3, 4)}, {S1(5)}, NONE, -2, -0.1, true, true),
    OP(softplus_ex, 1, {S2(3, 4)}, {S1(5)}, NONE, -1, 0.7, true, true),
    OP(hardtanh, 1, {S2(3, 4)}, {S1(5)}, NONE, -0.45, 0.45, true, true),
    BINARY(add, -2, 2, true), BINARY(add_relu, -2, 2, true), BINARY(sub, -2, 2, true), BINARY(mul, -2, 2, true), BINARY(div, 0.3, 2, true),
    BINARY(pow, 0.3, 2, true), BINARY(maximum, -2, 2, true), BINARY(minimum, -2, 2, true), BINARY(atan2, 0.2, 2, true),
    OP(where, 2, {S2(3, 4) COMMA S2(3, 4)}, {S2(2, 3) COMMA S1(3)}, NONE, 0, 1, true, false),
    OP(softmax, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, true, true),
    OP(log_softmax, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, true, true),
    /* reductions */
    OP(sum, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, true, true),
    OP(mean, 1, {S3(2, 3, 2)}, {S3(3, 1, 2)}, NONE, -2, 2, true, true),
    OP(max, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, false, false),
    OP(min, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, false, false),
    OP(var, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, true, true),
    OP(logsumexp, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, true, true),
    UNARY(sum_all, -2, 2, true), UNARY(mean_all, -2, 2, true),
    OP(sum_to, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, true, true),
    /* shapes and views (selection ops drop elements: no NaN property) */
    OP(reshape, 1, {S2(3, 4)}, {S3(2, 3, 2)}, {S1(5)}, -2, 2, true, true),
    OP(permute, 1, {S3(2, 3, 2)}, {S3(1, 2, 3)}, {S2(3, 4)}, -2, 2, true, true),
    OP(transpose, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, true, true),
    OP(slice, 1, {S2(3, 5)}, {S3(2, 3, 6)}, NONE, -2, 2, true, false),
    OP(expand, 1, {S2(1, 4)}, {S2(3, 1)}, NONE, -2, 2, true, true),
    OP(contiguous, 1, {S2(3, 4)}, {S2(1, 5)}, NONE, -2, 2, true, true),
    OP(squeeze, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, true, true),
    OP(unsqueeze, 1, {S2(3, 4)}, {S1(5)}, NONE, -2, 2, true, true),
    OP(flatten, 1, {S3(2, 3, 2)}, {S4(2, 1, 2, 3)}, NONE, -2, 2, true, true),
    OP(concat, 2, {S2(3, 4) COMMA S2(2, 4)}, {S1(3) COMMA S1(5)}, {S2(3, 4) COMMA S2(2, 5)}, -2, 2, true, true),
    OP(stack, 2, {S2(3, 4) COMMA S2(3, 4)}, {S1(3) COMMA S1(3)}, {S2(3, 4) COMMA S2(2, 4)}, -2, 2, true, true),
    OP(index_select, 1, {S2(3, 4)}, {S2(5, 2)}, NONE, -2, 2, true, false),
    OP(index_add, 2, {S2(3, 4) COMMA S2(5, 4)}, {S2(4, 2) COMMA S2(2, 2)}, NONE, -2, 2, true, true),
    OP(gather, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, true, false),
    OP(scatter_add, 2, {S2(3, 4) COMMA S2(3, 4)}, {S2(2, 5) COMMA S2(2, 5)}, NONE, -2, 2, true, true),
    /* padding, repetition, scans, norms, sorting, scatter (tests/ops/test_pad.c, test_scan.c,
     * test_sort.c, test_reduce.c, test_shape.c) */
    OP(pad, 1, {S2(3, 4)}, {S3(2, 3, 3)}, {S1(4)}, -2, 2, true, false),
    OPV(pad, pad_reflect, 1, {S2(3, 4)}, {S3(2, 3, 3)}, {S2(1, 4)}, -2, 2, true, true),
    OPV(pad, pad_replicate, 1, {S2(3, 4)}, {S3(2, 1, 2)}, {S2(0, 4)}, -2, 2, true, true),
    OPV(pad, pad_circular, 1, {S2(3, 4)}, {S3(2, 3, 3)}, {S2(3, 1)}, -2, 2, true, false),
    OP(repeat, 1, {S2(3, 4)}, {S3(2, 1, 2)}, NONE, -2, 2, true, true),
    OP(repeat_interleave, 1, {S2(3, 4)}, {S1(2)}, NONE, -2, 2, true, true),
    OP(cumsum, 1, {S2(3, 4)}, {S3(2, 3, 2)}, {S1(3)}, -2, 2, true, true),
    OP(cumprod, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, true, true),
    OP(prod, 1, {S2(3, 4)}, {S3(2, 3, 2)}, {S1(3)}, -2, 2, true, true),
    OP(norm, 1, {S2(3, 4)}, {S3(2, 3, 2)}, {S1(3)}, 0.2, 2, true, true),
    OPV(norm, norm_p3, 1, {S3(2, 3, 2)}, {S3(3, 1, 2)}, {S2(3, 4)}, -2, -0.2, true, true),
    OPV(norm, norm_inf, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, false, true),
    OP(amax, 1, {S2(3, 4)}, {S3(2, 3, 2)}, {S1(3)}, -2, 2, false, false),
    OP(amin, 1, {S3(2, 3, 2)}, {S3(2, 1, 4)}, {S2(3, 4)}, -2, 2, false, false),
    OP(max_dim, 1, {S2(3, 4)}, {S3(2, 3, 2)}, {S1(3)}, -2, 2, true, false),
    OP(min_dim, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, true, false),
    OP(sort, 1, {S2(3, 4)}, {S3(2, 3, 2)}, {S1(3)}, -2, 2, true, true),
    OP(topk, 1, {S2(3, 4)}, {S3(2, 3, 2)}, {S1(1)}, -2, 2, true, false),
    OP(take_along_dim, 1, {S2(3, 4)}, {S3(2, 3, 2)}, NONE, -2, 2, true, false),
    OP(scatter, 2, {S2(3, 4) COMMA S2(3, 4)}, {S2(2, 5) COMMA S2(2, 5)}, {S2(3, 4) COMMA S2(4, 4)}, -2, 2, true, false),
    /* composites (src/ops/composite.c) */
    OP(tril, 1, {S2(3, 4)}, {S3(2, 3, 3)}, {S1(4)}, -2, 2, true, false),
    OP(triu, 1, {S2(3, 4)}, {S3(2, 3, 3)}, {S1(4)}, -2, 2, true, false),
    OP(masked_fill, 2, {S2(3, 4) COMMA S2(3, 4)}, {S3(2, 3, 4) COMMA S1(4)}, {S2(3, 4) COMMA S2(2, 4)}, 0, 1, true, false),
    OP(flip, 1, {S2(3, 4)}, {S1(5)}, NONE, -2, 2, true, true),
    OP(roll, 1, {S2(3, 4)}, {S3(4, 2, 2)}, NONE, -2, 2, true, true),
    OP(outer, 2, {S1(3) COMMA S1(4)}, {S1(1) COMMA S1(5)}, {S2(3, 4) COMMA S1(4)}, -2, 2, true, true),
    /* linear algebra */
    OP(matmul, 2, {S2(3, 4) COMMA S2(4, 2)}, {S3(2, 3, 4) COMMA S1(4)}, {S2(3, 4) COMMA S2(3, 4)}, -1, 1, true, true),
    OP(linear, 3, {S2(3, 4) COMMA S2(2, 4) COMMA S1(2)}, {S3(2, 3, 2) COMMA S2(3, 2) COMMA S1(3)},
       {S2(3, 4) COMMA S2(2, 3) COMMA S1(2)}, -1, 1, true, true),
    OP(einsum, 2, {S3(2, 3, 4) COMMA S3(2, 4, 2)}, {S3(1, 2, 3) COMMA S3(3, 3, 2)}, {S3(2, 3, 4) COMMA S3(2, 5, 2)}, -1, 1,
       true, true),
    OP(linear_act, 3, {S2(3, 4) COMMA S2(2, 4) COMMA S1(2)}, {S3(2, 3, 2) COMMA S2(3, 2) COMMA S1(3)},
       {S2(3, 4) COMMA S2(2, 3) COMMA S1(2)}, -1, 1, true, true),
    /* losses (values against PyTorch, options and errors: tests/ops/test_loss.c) */
    OP(cross_entropy, 1, {S2(4, 3)}, {S2(2, 5)}, {S1(3)}, -2, 2, true, true),
    OP(cross_entropy_smooth, 1, {S2(4, 3)}, {S2(2, 5)}, {S1(3)}, -2, 2, true, true),
    OP(nll_loss, 1, {S2(4, 3)}, {S2(2, 5)}, {S1(3)}, -2, 2, true, false),
    OP(mse_loss, 2, {S2(3, 4) COMMA S2(3, 4)}, {S1(5) COMMA S1(5)}, {S2(3, 4) COMMA S2(2, 4)}, -2, 2, true, true),
    OP(bce_with_logits, 2, {S2(3, 4) COMMA S2(3, 4)}, {S1(5) COMMA S1(5)}, {S2(3, 4) COMMA S2(2, 4)}, 0.1, 0.9, true,
       true),
    OP(cross_entropy_ex, 2, {S2(4, 3) COMMA S1(3)}, {S3(2, 4, 3) COMMA S1(4)}, {S2(4, 3) COMMA S1(4)}, 0.5, 2, true, true),
    OPV(cross_entropy_ex, cross_entropy_probs, 3, {S2(4, 3) COMMA S2(4, 3) COMMA S1(3)},
        {S3(2, 3, 2) COMMA S3(2, 3, 2) COMMA S1(3)}, {S2(4, 3) COMMA S2(4, 2) COMMA S1(3)}, 0.1, 2, true, true),
    OP(nll_loss_ex, 2, {S2(4, 3) COMMA S1(3)}, {S3(2, 3, 2) COMMA S1(3)}, {S2(4, 3) COMMA S1(2)}, 0.5, 2, true, false),
    OP(bce_with_logits_ex, 4, {S2(3, 4) COMMA S2(3, 4) COMMA S2(3, 1) COMMA S1(4)},
       {S3(2, 2, 3) COMMA S3(2, 2, 3) COMMA S1(3) COMMA S1(3)}, {S2(3, 4) COMMA S2(3, 4) COMMA S2(3, 4) COMMA S1(3)}, 0.1,
       0.9, true, true),
    OP(binary_cross_entropy, 3, {S2(3, 4) COMMA S2(3, 4) COMMA S1(4)}, {S1(5) COMMA S1(5) COMMA S1(1)},
       {S2(3, 4) COMMA S2(3, 4) COMMA S1(3)}, 0.1, 0.9, true, false),
    OP(l1_loss, 2, {S2(3, 4) COMMA S2(3, 4)}, {S1(5) COMMA S1(5)}, {S2(3, 4) COMMA S2(4, 3)}, -2, 2, true, true),
    OP(smooth_l1_loss, 2, {S2(3, 4) COMMA S2(3, 4)}, {S3(2, 1, 3) COMMA S3(2, 1, 3)}, {S2(3, 4) COMMA S1(4)}, -2, 2, true,
       true),
    OP(huber_loss, 2, {S2(3, 4) COMMA S2(3, 4)}, {S1(5) COMMA S1(5)}, {S2(3, 4) COMMA S2(3, 1)}, -2, 2, true, true),
    OP(kl_div, 2, {S2(3, 4) COMMA S2(3, 4)}, {S1(5) COMMA S1(5)}, {S2(3, 4) COMMA S2(2, 4)}, 0.1, 2, true, true),
    OP(poisson_nll_loss, 2, {S2(3, 4) COMMA S2(3, 4)}, {S1(5) COMMA S1(5)}, {S2(3, 4) COMMA S2(2, 4)}, 0.1, 2, true, true),
    OP(gaussian_nll_loss, 3, {S2(3, 4) COMMA S2(3, 4) COMMA S2(3, 4)}, {S2(2, 3) COMMA S2(2, 3) COMMA S1(2)},
       {S2(3, 4) COMMA S2(3, 4) COMMA S1(4)}, 0.1, 2, true, true),
    OP(cosine_embedding_loss, 2, {S2(4, 3) COMMA S2(4, 3)}, {S1(5) COMMA S1(5)}, {S2(4, 3) COMMA S2(4, 2)}, -2, 2, true,
       true),
    OP(margin_ranking_loss, 3, {S2(3, 4) COMMA S2(3, 4) COMMA S2(3, 4)}, {S2(3, 1) COMMA S2(3, 4) COMMA S2(1, 4)},
       {S2(3, 4) COMMA S2(3, 4) COMMA S1(4)}, -2, 2, true, true),
    OP(hinge_embedding_loss, 1, {S2(3, 4)}, {S1(5)}, NONE, -2, 2, true, true),
    OP(soft_margin_loss, 1, {S2(3, 4)}, {S3(2, 1, 3)}, NONE, -3, 3, true, true),
    OP(triplet_margin_loss, 3, {S2(4, 3) COMMA S2(4, 3) COMMA S2(4, 3)}, {S1(5) COMMA S1(5) COMMA S1(5)},
       {S2(4, 3) COMMA S2(4, 3) COMMA S2(4, 2)}, -2, 2, true, true),
    /* convolution, pooling, normalisation, embeddings, recurrent cells (nn.h) */
    OP(unfold, 1, {S4(1, 2, 3, 3)}, {S4(2, 1, 2, 4)}, {S2(3, 4)}, -2, 2, true, false),
    OP(fold, 1, {S3(1, 8, 4)}, {S3(2, 4, 4)}, {S3(1, 8, 5)}, -2, 2, true, true),
    OP(conv2d, 3, {S4(1, 2, 4, 4) COMMA S4(3, 2, 3, 3) COMMA S1(3)}, {S4(2, 1, 3, 3) COMMA S4(2, 1, 3, 3) COMMA S1(2)},
       {S4(1, 2, 4, 4) COMMA S4(3, 4, 3, 3) COMMA S1(3)}, -1, 1, true, true),
    OP(conv_transpose2d, 3, {S4(1, 2, 3, 3) COMMA S4(2, 3, 3, 3) COMMA S1(3)},
       {S4(2, 1, 2, 2) COMMA S4(1, 2, 3, 3) COMMA S1(2)}, {S4(1, 2, 3, 3) COMMA S4(3, 3, 3, 3) COMMA S1(3)}, -1, 1,
       true, true),
    OP(conv2d_ex, 2, {S4(1, 2, 5, 6) COMMA S4(3, 2, 3, 2)}, {S4(2, 1, 4, 4) COMMA S4(2, 1, 2, 2)},
       {S4(1, 2, 5, 6) COMMA S4(3, 3, 3, 2)}, -1, 1, true, true),
    OP(conv_transpose2d_ex, 2, {S4(1, 2, 3, 3) COMMA S4(2, 3, 2, 3)}, {S4(2, 1, 2, 2) COMMA S4(1, 2, 3, 2)},
       {S4(1, 2, 3, 3) COMMA S4(3, 3, 2, 3)}, -1, 1, true, true),
    OP(max_pool2d, 1, {S4(1, 2, 4, 4)}, {S4(2, 1, 4, 2)}, {S2(4, 4)}, -2, 2, false, false),
    OP(avg_pool2d, 1, {S4(1, 2, 4, 4)}, {S4(2, 1, 3, 2)}, {S2(4, 4)}, -2, 2, true, true),
    OP(adaptive_avg_pool2d, 1, {S4(1, 2, 4, 4)}, {S4(2, 1, 6, 6)}, {S2(4, 4)}, -2, 2, true, true),
    OP(max_pool2d_ex, 1, {S4(1, 2, 5, 6)}, {S4(2, 1, 4, 5)}, {S3(2, 4, 4)}, -2, 2, false, false),
    OP(avg_pool2d_ex, 1, {S4(1, 2, 5, 6)}, {S4(2, 1, 4, 5)}, {S3(2, 4, 4)}, -2, 2, true, false),
    OP(max_pool1d, 1, {S3(1, 2, 9)}, {S3(2, 1, 7)}, {S2(3, 4)}, -2, 2, false, false),
    OP(avg_pool1d, 1, {S3(1, 2, 9)}, {S3(2, 1, 7)}, {S2(3, 4)}, -2, 2, true, false),
    OP(conv1d, 3, {S3(1, 4, 7) COMMA S3(4, 2, 3) COMMA S1(4)}, {S3(2, 2, 6) COMMA S3(2, 1, 2) COMMA S1(2)},
       {S3(1, 4, 7) COMMA S3(4, 3, 3) COMMA S1(4)}, -1, 1, true, true),
    OP(conv3d, 3, {S5(1, 4, 3, 3, 3) COMMA S5(2, 2, 2, 2, 2) COMMA S1(2)}, {S5(2, 2, 2, 3, 2) COMMA S5(4, 1, 1, 2, 2) COMMA S1(4)},
       {S5(1, 4, 3, 3, 3) COMMA S5(2, 3, 2, 2, 2) COMMA S1(2)}, -1, 1, true, true),
    OP(interpolate, 1, {S4(1, 2, 3, 4)}, {S4(2, 1, 2, 2)}, {S3(2, 3, 4)}, -2, 2, true, false),
    OPV(interpolate, interpolate_nearest, 1, {S4(1, 2, 3, 4)}, {S4(2, 1, 2, 2)}, {S3(2, 3, 4)}, -2, 2, true, false),
    OP(pixel_shuffle, 1, {S4(1, 8, 2, 3)}, {S3(4, 1, 2)}, {S4(1, 6, 2, 2)}, -2, 2, true, true),
    OP(pixel_unshuffle, 1, {S4(1, 2, 4, 6)}, {S3(1, 2, 2)}, {S4(1, 2, 3, 4)}, -2, 2, true, true),
    OP(batch_norm, 3, {S4(3, 2, 2, 2) COMMA S1(2) COMMA S1(2)}, {S2(4, 3) COMMA S1(3) COMMA S1(3)},
       {S4(3, 2, 2, 2) COMMA S1(3) COMMA S1(3)}, -2, 2, true, true),
    OP(batch_norm_relu, 3, {S4(3, 2, 2, 2) COMMA S1(2) COMMA S1(2)}, {S2(4, 3) COMMA S1(3) COMMA S1(3)},
       {S4(3, 2, 2, 2) COMMA S1(3) COMMA S1(3)}, -2, 2, true, true),
    OP(layer_norm, 3, {S2(3, 4) COMMA S1(4) COMMA S1(4)}, {S3(2, 2, 3) COMMA S1(3) COMMA S1(3)},
       {S2(3, 4) COMMA S1(3) COMMA S1(3)}, -2, 2, true, true),
    OP(group_norm, 3, {S3(2, 4, 3) COMMA S1(4) COMMA S1(4)}, {S4(1, 2, 2, 2) COMMA S1(2) COMMA S1(2)},
       {S3(2, 3, 3) COMMA S1(3) COMMA S1(3)}, -2, 2, true, true),
    OP(embedding, 1, {S2(4, 3)}, {S2(3, 2)}, NONE, -2, 2, true, false),
    OP(embedding_padded, 1, {S2(4, 3)}, {S2(3, 2)}, NONE, -2, 2, true, false),
    OP(rnn_cell, 4, {S2(2, 3) COMMA S2(2, 4) COMMA S2(4, 3) COMMA S2(4, 4)},
       {S2(1, 2) COMMA S2(1, 3) COMMA S2(3, 2) COMMA S2(3, 3)}, {S2(2, 3) COMMA S2(2, 4) COMMA S2(4, 2) COMMA S2(4, 4)},
       -1, 1, true, true),
    OP(lstm_cell, 4, {S2(2, 3) COMMA S2(2, 2) COMMA S2(8, 3) COMMA S2(8, 2)},
       {S2(1, 2) COMMA S2(1, 1) COMMA S2(4, 2) COMMA S2(4, 1)}, {S2(2, 3) COMMA S2(2, 2) COMMA S2(8, 2) COMMA S2(8, 2)},
       -1, 1, true, true),
    OP(gru_cell, 4, {S2(2, 3) COMMA S2(2, 2) COMMA S2(6, 3) COMMA S2(6, 2)},
       {S2(1, 2) COMMA S2(1, 1) COMMA S2(3, 2) COMMA S2(3, 1)}, {S2(2, 3) COMMA S2(2, 2) COMMA S2(6, 2) COMMA S2(6, 2)},
       -1, 1, true, true),
    OP(rnn_unroll, 3, {S3(3, 2, 2) COMMA S2(6, 2) COMMA S2(6, 2)}, {S3(2, 1, 3) COMMA S2(3, 3) COMMA S2(3, 1)},
       {S2(3, 2) COMMA S2(6, 2) COMMA S2(6, 2)}, -1, 1, true, true),
    OP(linear_layer_forward, 3, {S2(3, 4) COMMA S2(2, 4) COMMA S1(2)}, {S1(3) COMMA S2(2, 3) COMMA S1(2)},
       {S2(3, 4) COMMA S2(2, 3) COMMA S1(2)}, -1, 1, true, true),
    OP(conv2d_layer_forward, 2, {S4(1, 2, 4, 4) COMMA S4(3, 2, 3, 3)}, {S4(2, 1, 3, 3) COMMA S4(2, 1, 2, 2)},
       {S4(1, 2, 4, 4) COMMA S4(3, 3, 3, 3)}, -1, 1, true, true),
    OP(layer_norm_layer_forward, 3, {S2(3, 4) COMMA S1(4) COMMA S1(4)}, {S3(2, 2, 3) COMMA S1(3) COMMA S1(3)},
       {S2(3, 4) COMMA S1(3) COMMA S1(3)}, -2, 2, true, true),
    OP(embedding_layer_forward, 1, {S2(4, 3)}, {S2(3, 2)}, NONE, -2, 2, true, false),
    /* attention (values: tests/nn/test_attention.c) */
    OP(scaled_dot_product_attention, 3, {S3(2, 3, 4) COMMA S3(2, 5, 4) COMMA S3(2, 5, 3)},
       {S2(3, 2) COMMA S4(2, 1, 4, 2) COMMA S2(4, 3)}, {S2(3, 4) COMMA S2(5, 3) COMMA S2(5, 2)}, -1, 1, true, false),
    OPV(scaled_dot_product_attention, sdpa_additive_mask, 4,
        {S3(2, 3, 4) COMMA S3(2, 5, 4) COMMA S3(2, 5, 3) COMMA S2(3, 5)},
        {S2(3, 2) COMMA S3(2, 4, 2) COMMA S2(4, 3) COMMA S3(2, 1, 4)},
        {S2(3, 4) COMMA S2(5, 4) COMMA S2(5, 2) COMMA S2(2, 5)}, -1, 1, true, true),
    OP(multi_head_attention, 4, {S3(2, 3, 4) COMMA S2(12, 4) COMMA S1(12) COMMA S2(4, 4)},
       {S2(3, 4) COMMA S2(12, 4) COMMA S1(12) COMMA S2(4, 4)}, {S3(2, 3, 4) COMMA S2(12, 3) COMMA S1(12) COMMA S2(4, 4)},
       -1, 1, true, true),
    /* the weights do not depend on out_proj_weight (input 3): no NaN propagation from it */
    OP(multi_head_attention_need_weights, 4, {S3(2, 3, 4) COMMA S2(12, 4) COMMA S1(12) COMMA S2(4, 4)},
       {S2(3, 4) COMMA S2(12, 4) COMMA S1(12) COMMA S2(4, 4)}, {S3(2, 3, 4) COMMA S2(12, 3) COMMA S1(12) COMMA S2(4, 4)},
       -1, 1, true, false),
    OPV(multi_head_attention_need_weights, mha_weights_per_head, 4, {S3(2, 3, 4) COMMA S2(12, 4) COMMA S1(12) COMMA S2(4, 4)},
        {S2(3, 4) COMMA S2(12, 4) COMMA S1(12) COMMA S2(4, 4)}, {S3(2, 3, 4) COMMA S2(12, 3) COMMA S1(12) COMMA S2(4, 4)},
        -1, 1, true, false),
    /* penalties (regularize.h) */
    OP(l2_penalty, 2, {S2(3, 4) COMMA S1(3)}, {S1(2) COMMA S3(2, 1, 2)}, NONE, -2, 2, true, true),
    OP(l1_penalty, 2, {S2(3, 4) COMMA S1(3)}, {S1(2) COMMA S3(2, 1, 2)}, NONE, 0.2, 2, true, true),
    OP(elastic_net_penalty, 2, {S2(3, 4) COMMA S1(3)}, {S1(2) COMMA S3(2, 1, 2)}, NONE, 0.2, 2, true, true),
    OP(group_lasso_penalty, 2, {S2(3, 4) COMMA S2(2, 3)}, {S2(2, 2) COMMA S2(3, 1)}, NONE, 0.2, 2, true, true),
    OP(gradient_penalty, 2, {S2(3, 2) COMMA S2(2, 4)}, {S2(2, 3) COMMA S2(3, 2)}, NONE, -1, 1, true, true),
};

/* Ops with no gradient (or not checkable this way), and where they are tested instead. */
static const char *const WITHOUT_GRADIENT[][2] = {
    {"empty", "constructor"}, {"zeros", "constructor"}, {"ones", "constructor"}, {"full", "constructor"},
    {"scalar", "constructor"}, {"from", "constructor"}, {"arange", "constructor"}, {"zeros_like", "constructor"},
    {"ones_like", "constructor"}, {"rand", "random constructor"}, {"randn", "random constructor"},
    {"randint", "random integers: tests/ops/test_create.c"}, {"randperm", "random permutation: tests/ops/test_create.c"},
    {"bernoulli", "random 0/1 events (zero gradient almost everywhere): tests/ops/test_create.c"},
    {"multinomial", "random integer categories: tests/ops/test_create.c"},
    {"eq", "comparison (zero gradient)"}, {"ne", "comparison"}, {"lt", "comparison"}, {"le", "comparison"},
    {"gt", "comparison"}, {"ge", "comparison"}, {"sign", "piecewise constant"}, {"floor", "piecewise constant"},
    {"ceil", "piecewise constant"}, {"round", "piecewise constant"}, {"argmax", "integer result"},
    {"argmin", "integer result: tests/ops/test_reduce.c"}, {"argsort", "integer result: tests/ops/test_sort.c"},
    {"detach", "cuts the graph"},
    {"one_hot", "integer labels in: tests/ops/test_composite.c"},
    {"cast", "an f32 round trip is below finite differences' step: tests/ops/test_elementwise.c checks its gradient"},
    {"dropout", "random mask per call: tests/regularize/test_dropout.c checks mask, scale and gradient"},
    {"conv_transpose2d_layer_forward", "layer wrapper of conv_transpose2d (registered above)"},
    {"batch_norm_layer_forward", "layer wrapper of batch_norm with running statistics: tests/nn/test_layers.c"},
    {"rnn_layer_forward", "layer wrapper of rnn_unroll (registered above)"},
    {"multi_head_attention_layer_forward", "layer wrapper of multi_head_attention (registered above): tests/nn/test_attention.c"},
    {"multi_head_attention_layer_forward_need_weights", "layer wrapper of multi_head_attention_need_weights (registered above)"},
    {"l2_penalty_params", "over an nb_params: tests/regularize/test_penalty.c"},
    {"l1_penalty_params", "over an nb_params: tests/regularize/test_penalty.c"},
    {"elastic_net_penalty_params", "over an nb_params: tests/regularize/test_penalty.c"},
    {"group_lasso_penalty_params", "over an nb_params: tests/regularize/test_penalty.c"},
};

static bool registered(const char *name, const char **why) {
    for (size_t i = 0; i < sizeof REGISTRY / sizeof *REGISTRY; i++)
        if (!strcmp(REGISTRY[i].name, name)) return true;
    for (size_t i = 0; i < sizeof WITHOUT_GRADIENT / sizeof *WITHOUT_GRADIENT; i++)
        if (!strcmp(WITHOUT_GRADIENT[i][0], name)) {
            if (why) *why = WITHOUT_GRADIENT[i][1];
            return true;
        }
    return false;
}

Test(registry, every_op_of_the_headers_is_registered) {
    static const char *headers[] = {"ops.h", "nn.h", "regularize.h"};
    int seen = 0;
    for (size_t h = 0; h < sizeof headers / sizeof *headers; h++) {
        char path[512];
        snprintf(path, sizeof path, "%s/include/nabla/%s", NB_SOURCE_DIR, headers[h]);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        char line[1024], name[128];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "nb_tensor *nb_%127[a-z0-9_](nb_ctx *ctx", name) == 1 && strstr(line, "(nb_ctx *ctx")) {
                cr_assert(registered(name, NULL), "%s declares nb_%s, which is not in tests/test_registry.c", headers[h], name);
                seen++;
            }
        fclose(f);
    }
    cr_assert_gt(seen, 130, "only %d ops found", seen);
}

Test(registry, every_registered_op_passes_opcheck) {
    for (size_t i = 0; i < sizeof REGISTRY / sizeof *REGISTRY; i++) {
        const reg *r = &REGISTRY[i];
        nb_opcheck_def d = {.name = r->name, .f = call, .n_in = r->n_in, .shapes = shapes, .lo = r->lo, .hi = r->hi,
                            .smooth = r->smooth, .check_nan = r->nan, .user = (void *)r};
        nb_opcheck_report rep;
        nb_status st = nb_opcheck(ctx, &d, &rep);
        cr_assert_eq(st, NB_OK, "%s: %s: %s", r->name, rep.property, rep.message);
    }
}
