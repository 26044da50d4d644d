/* Step tensors made from nothing: constants, ranges, random draws (never recorded). */
#include "../internal.h"

static bool check_new(nb_ctx *ctx, const char *op, nb_dtype dt, int ndim, const int64_t *shape) {
    if (!ctx) {
        nb_set_error(NB_ERR_NULL, "%s: context is NULL", op);
        return false;
    }
    if ((unsigned)dt > NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: unknown dtype %d", op, (int)dt), false;
    if (ndim < 0 || ndim > NB_MAX_DIMS)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: %d dimensions (at most %d)", op, ndim, NB_MAX_DIMS), false;
    if (ndim > 0 && !shape) return nb__fail(ctx, NB_ERR_NULL, "%s: shape is NULL", op), false;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) {
            char b[128];
            return nb__fail(ctx, NB_ERR_SHAPE, "%s: negative size in shape %s", op, nb__dims_str(ndim, shape, b, sizeof b)),
                   false;
        }
    return true;
}

nb_tensor *nb_empty(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) {
    if (!check_new(ctx, "empty", dt, ndim, shape)) return NULL;
    return nb__new(ctx, dt, ndim, shape);
}

nb_tensor *nb_full(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, double v) {
    if (!check_new(ctx, "full", dt, ndim, shape)) return NULL;
    nb_tensor *t = nb__new(ctx, dt, ndim, shape);
    if (t) nb_fill(t, v);
    return t;
}

nb_tensor *nb_zeros(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) { return nb_full(ctx, dt, ndim, shape, 0.0); }
nb_tensor *nb_ones(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) { return nb_full(ctx, dt, ndim, shape, 1.0); }
nb_tensor *nb_scalar(nb_ctx *ctx, nb_dtype dt, double v) { return nb_full(ctx, dt, 0, NULL, v); }

nb_tensor *nb_zeros_like(nb_ctx *ctx, const nb_tensor *t) {
    if (nb__null(ctx, "zeros_like", 1, t)) return NULL;
    return nb_full(ctx, t->dtype, t->ndim, t->shape, 0.0);
}
nb_tensor *nb_ones_like(nb_ctx *ctx, const nb_tensor *t) {
    if (nb__null(ctx, "ones_like", 1, t)) return NULL;
    return nb_full(ctx, t->dtype, t->ndim, t->shape, 1.0);
}

nb_tensor *nb_from(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, const void *data) {
    if (!check_new(ctx, "from", dt, ndim, shape)) return NULL;
    if (!data) return nb__fail(ctx, NB_ERR_NULL, "from: data is NULL");
    nb_tensor *t = nb__new(ctx, dt, ndim, shape);
    if (t) memcpy(t->data, data, (size_t)t->numel * nb_dtype_size(dt));
    return t;
}

nb_tensor *nb_arange(nb_ctx *ctx, nb_dtype dt, double start, double stop, double step) {
    if (!ctx) return nb_set_error(NB_ERR_NULL, "arange: context is NULL"), NULL;
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
        return nb__fail(ctx, NB_ERR_VALUE, "arange: invalid range start=%g stop=%g step=%g", start, stop, step);
    double cnt = ceil((stop - start) / step);
    int64_t n = cnt > 0 ? (int64_t)cnt : 0;
    nb_tensor *t = nb_empty(ctx, dt, 1, &n);
    for (int64_t i = 0; t && i < n; i++) nb_set(t, i, start + (double)i * step);
    return t;
}

static nb_tensor *random_tensor(nb_ctx *ctx, const char *op, nb_dtype dt, int ndim, const int64_t *shape, bool normal) {
    if (!check_new(ctx, op, dt, ndim, shape)) return NULL;
    if (dt == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: dtype must be f32 or f64", op);
    nb_tensor *t = nb__new(ctx, dt, ndim, shape);
    if (!t) return NULL;
    if (normal) nb_rng_normal(&ctx->rng, t, 0.0, 1.0);
    else nb_rng_uniform(&ctx->rng, t, 0.0, 1.0);
    return t;
}

nb_tensor *nb_rand(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) {
    return random_tensor(ctx, "rand", dt, ndim, shape, false);
}
nb_tensor *nb_randn(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) {
    return random_tensor(ctx, "randn", dt, ndim, shape, true);
}
