/* Normalisation layers composed from ops (mean, sub, mul, sqrt, div), so every gradient and
 * second derivative comes from those ops' rules: batch norm, layer norm, group norm. */
#include "../internal.h"

/* (x - mean) / sqrt(var + eps) over the listed axes, biased variance; the statistics go to
 * mean_out and var_out (keepdim shape; either may be NULL). */
static nb_tensor *standardize(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, double eps, nb_tensor **mean_out,
                              nb_tensor **var_out) {
    nb_tensor *mean = nb_mean(ctx, x, naxes, axes, true);
    nb_tensor *d = nb_sub(ctx, x, mean);
    nb_tensor *var = nb_mean(ctx, nb_mul(ctx, d, d), naxes, axes, true);
    if (mean_out) *mean_out = mean;
    if (var_out) *var_out = var;
    return nb_div(ctx, d, nb_sqrt(ctx, nb_add_scalar(ctx, var, eps)));
}

/* y * weight + bias, with weight/bias reshaped to `ndim/shape` (NULLs skipped) */
static nb_tensor *affine_params(nb_ctx *ctx, nb_tensor *y, nb_tensor *weight, nb_tensor *bias, int ndim,
                                const int64_t *shape) {
    if (weight) y = nb_mul(ctx, y, nb_reshape(ctx, weight, ndim, shape));
    if (bias) y = nb_add(ctx, y, nb_reshape(ctx, bias, ndim, shape));
    return y;
}

/* a per-channel vector t must be float, 1-D of length C; NULL passes */
static bool channel_vec(nb_ctx *ctx, const char *op, const char *what, const nb_tensor *t, const nb_tensor *x,
                        int64_t C, bool same_dtype) {
    if (!t) return true;
    char a[128], b[128];
    if (t->ndim != 1 || t->shape[0] != C)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: %s %s must be (%lld) for input %s", op, what, nb_shape_str(t, a, sizeof a),
                        (long long)C, nb_shape_str(x, b, sizeof b)),
               false;
    if (t->dtype == NB_I64 || (same_dtype && t->dtype != x->dtype))
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: %s is %s, input is %s", op, what, nb_dtype_name(t->dtype), nb_dtype_name(x->dtype)),
               false;
    return true;
}

static bool float_x(nb_ctx *ctx, const char *op, const nb_tensor *x, int min_ndim) {
    char b[128];
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64 input, got i64", op), false;
    if (x->ndim < min_ndim)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: input %s needs at least %d dims", op, nb_shape_str(x, b, sizeof b), min_ndim),
               false;
    return true;
}

nb_tensor *nb_batch_norm(nb_ctx *ctx, nb_tensor *x, nb_tensor *weight, nb_tensor *bias, nb_tensor *running_mean,
                         nb_tensor *running_var, double momentum, double eps) {
    if (nb__null(ctx, "batch_norm", 1, x) || !float_x(ctx, "batch_norm", x, 2)) return NULL;
    const int64_t C = x->shape[1];
    if (!channel_vec(ctx, "batch_norm", "weight", weight, x, C, true) ||
        !channel_vec(ctx, "batch_norm", "bias", bias, x, C, true) ||
        !channel_vec(ctx, "batch_norm", "running_mean", running_mean, x, C, false) ||
        !channel_vec(ctx, "batch_norm", "running_var", running_var, x, C, false))
        return NULL;
    if ((running_mean == NULL) != (running_var == NULL))
        return nb__fail(ctx, NB_ERR_NULL, "batch_norm: give both running_mean and running_var, or neither");
    if (!(eps >= 0) || !isfinite(eps) || !(momentum >= 0 && momentum <= 1))
        return nb__fail(ctx, NB_ERR_VALUE, "batch_norm: momentum %g must be in [0, 1] and eps %g >= 0", momentum, eps);
    /* statistics over every axis but 1; per-channel tensors broadcast as (C, 1, ..., 1) */
    int axes[NB_MAX_DIMS], na = 0;
    int64_t cshape[NB_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        if (d != 1) axes[na++] = d;
    cshape[0] = C;
    for (int d = 1; d < x->ndim - 1; d++) cshape[d] = 1;
    const int cnd = x->ndim - 1;
    const int64_t count = x->numel / (C ? C : 1);
    const bool use_batch = nb_ctx_is_train(ctx) || !running_mean;
    if (use_batch && count < 2) {
        char b[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "batch_norm: input %s has %lld value per channel; training needs more than 1",
                        nb_shape_str(x, b, sizeof b), (long long)count);
    }
    nb_tensor *y;
    if (use_batch) {
        nb_tensor *mean, *var;
        y = standardize(ctx, x, na, axes, eps, &mean, &var);
        if (!y) return NULL;
        if (nb_ctx_is_train(ctx) && running_mean) { /* state update, outside the graph */
            const double unbias = (double)count / (double)(count - 1);
            for (int64_t c = 0; c < C; c++) {
                nb_set(running_mean, c, (1 - momentum) * nb_get(running_mean, c) + momentum * nb_get(mean, c));
                nb_set(running_var, c, (1 - momentum) * nb_get(running_var, c) + momentum * nb_get(var, c) * unbias);
            }
        }
    } else {
        nb_tensor *mean = nb_reshape(ctx, nb_cast(ctx, running_mean, x->dtype), cnd, cshape);
        nb_tensor *var = nb_reshape(ctx, nb_cast(ctx, running_var, x->dtype), cnd, cshape);
        y = nb_div(ctx, nb_sub(ctx, x, mean), nb_sqrt(ctx, nb_add_scalar(ctx, var, eps)));
    }
    return affine_params(ctx, y, weight, bias, cnd, cshape);
}

nb_tensor *nb_layer_norm(nb_ctx *ctx, nb_tensor *x, int ndims, nb_tensor *weight, nb_tensor *bias, double eps) {
    if (nb__null(ctx, "layer_norm", 1, x) || !float_x(ctx, "layer_norm", x, 1)) return NULL;
    if (!(eps >= 0) || !isfinite(eps)) return nb__fail(ctx, NB_ERR_VALUE, "layer_norm: eps %g must be finite and >= 0", eps);
    char a[128], b[128], c[128];
    if (ndims < 1 || ndims > x->ndim)
        return nb__fail(ctx, NB_ERR_AXIS, "layer_norm: cannot normalise the last %d axes of %s", ndims, nb_shape_str(x, a, sizeof a));
    const int64_t *nshape = x->shape + (x->ndim - ndims);
    nb_tensor *ps[2] = {weight, bias};
    for (int i = 0; i < 2; i++)
        if (ps[i] && (ps[i]->ndim != ndims || memcmp(ps[i]->shape, nshape, (size_t)ndims * sizeof *nshape) != 0 ||
                      ps[i]->dtype != x->dtype))
            return nb__fail(ctx, NB_ERR_SHAPE, "layer_norm: %s %s %s must be %s %s for input %s", i ? "bias" : "weight",
                            nb_dtype_name(ps[i]->dtype), nb_shape_str(ps[i], a, sizeof a), nb_dtype_name(x->dtype),
                            nb__dims_str(ndims, nshape, b, sizeof b), nb_shape_str(x, c, sizeof c));
    int axes[NB_MAX_DIMS];
    for (int i = 0; i < ndims; i++) axes[i] = x->ndim - ndims + i;
    nb_tensor *y = standardize(ctx, x, ndims, axes, eps, NULL, NULL);
    return affine_params(ctx, y, weight, bias, ndims, nshape);
}

nb_tensor *nb_group_norm(nb_ctx *ctx, nb_tensor *x, int groups, nb_tensor *weight, nb_tensor *bias, double eps) {
    if (nb__null(ctx, "group_norm", 1, x) || !float_x(ctx, "group_norm", x, 2)) return NULL;
    if (!(eps >= 0) || !isfinite(eps)) return nb__fail(ctx, NB_ERR_VALUE, "group_norm: eps %g must be finite and >= 0", eps);
    const int64_t N = x->shape[0], C = x->shape[1];
    if (groups < 1 || C % groups != 0) {
        char b[128];
        return nb__fail(ctx, NB_ERR_VALUE, "group_norm: groups %d must divide the %lld channels of %s", groups, (long long)C,
                        nb_shape_str(x, b, sizeof b));
    }
    if (!channel_vec(ctx, "group_norm", "weight", weight, x, C, true) || !channel_vec(ctx, "group_norm", "bias", bias, x, C, true))
        return NULL;
    int axis = 2;
    nb_tensor *y = standardize(ctx, nb_reshape(ctx, x, NB_SHAPE(N, groups, -1)), 1, &axis, eps, NULL, NULL);
    y = nb_reshape(ctx, y, x->ndim, x->shape);
    int64_t cshape[NB_MAX_DIMS];
    cshape[0] = C;
    for (int d = 1; d < x->ndim - 1; d++) cshape[d] = 1;
    return affine_params(ctx, y, weight, bias, x->ndim - 1, cshape);
}
