/* Step tensors made from nothing: constants, ranges, random draws (never recorded). */
#include "../internal.h"

static bool check_new(nb_ctx *ctx, const char *op, nb_dtype dt, int ndim, const int64_t *shape) {
    nb__op_name = op;
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
    return nb__size_ok(ctx, op, ndim, shape, nb_dtype_size(dt), NULL);
}

nb_tensor *nb_empty(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) {
    if (!check_new(ctx, "empty", dt, ndim, shape)) return NULL;
    return nb__new(ctx, dt, ndim, shape);
}

/* nb_full and the constructors built on it, each failing under its own name */
static nb_tensor *full(nb_ctx *ctx, const char *op, nb_dtype dt, int ndim, const int64_t *shape, double v) {
    if (!check_new(ctx, op, dt, ndim, shape)) return NULL;
    int64_t iv;
    if (dt == NB_I64 && !nb__f2i(v, &iv)) return nb__fail(ctx, NB_ERR_VALUE, "%s: %g is not representable as an i64", op, v);
    nb_tensor *t = nb__new(ctx, dt, ndim, shape);
    if (t) nb_fill(t, v);
    return t;
}

nb_tensor *nb_full(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, double v) {
    return full(ctx, "full", dt, ndim, shape, v);
}
nb_tensor *nb_zeros(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) { return full(ctx, "zeros", dt, ndim, shape, 0.0); }
nb_tensor *nb_ones(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) { return full(ctx, "ones", dt, ndim, shape, 1.0); }
nb_tensor *nb_scalar(nb_ctx *ctx, nb_dtype dt, double v) { return full(ctx, "scalar", dt, 0, NULL, v); }

nb_tensor *nb_zeros_like(nb_ctx *ctx, const nb_tensor *t) {
    if (nb__null(ctx, "zeros_like", 1, t)) return NULL;
    return full(ctx, "zeros_like", t->dtype, t->ndim, t->shape, 0.0);
}
nb_tensor *nb_ones_like(nb_ctx *ctx, const nb_tensor *t) {
    if (nb__null(ctx, "ones_like", 1, t)) return NULL;
    return full(ctx, "ones_like", t->dtype, t->ndim, t->shape, 1.0);
}

nb_tensor *nb_from(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, const void *data) {
    if (!check_new(ctx, "from", dt, ndim, shape)) return NULL;
    if (!data) return nb__fail(ctx, NB_ERR_NULL, "from: data is NULL");
    nb_tensor *t = nb__new(ctx, dt, ndim, shape);
    if (t) memcpy(t->data, data, (size_t)t->numel * nb_dtype_size(dt));
    return t;
}

nb_tensor *nb_arange(nb_ctx *ctx, nb_dtype dt, double start, double stop, double step) {
    nb__op_name = "arange";
    if (!ctx) return nb_set_error(NB_ERR_NULL, "arange: context is NULL"), NULL;
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
        return nb__fail(ctx, NB_ERR_VALUE, "arange: invalid range start=%g stop=%g step=%g", start, stop, step);
    double cnt = ceil((stop - start) / step);
    int64_t n = 0, last;
    if (cnt > 0 && !nb__f2i(cnt, &n))
        return nb__fail(ctx, NB_ERR_VALUE, "arange: start=%g stop=%g step=%g gives %g elements", start, stop, step, cnt);
    /* an i64 range must hold its end points (the values in between lie between them) */
    if (dt == NB_I64 && n > 0 && (!nb__f2i(start, &last) || !nb__f2i(start + (double)(n - 1) * step, &last)))
        return nb__fail(ctx, NB_ERR_VALUE, "arange: values from %g with step %g are not representable as i64", start, step);
    if (!check_new(ctx, "arange", dt, 1, &n)) return NULL;
    nb_tensor *t = nb__new(ctx, dt, 1, &n);
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
