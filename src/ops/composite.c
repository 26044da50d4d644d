/* Tensor ops built from other ops (no kernel and no backward rule of their own: autodiff
 * derives both orders from the parts): triangular masks, masked_fill, flip, roll, outer,
 * one_hot. Each checks its arguments and names itself in errors. */
#include "../internal.h"

/* A constant (rows, cols) i64 mask: 1 where (col - row) is in [lo, hi]. */
static nb_tensor *band_mask(nb_ctx *ctx, int64_t rows, int64_t cols, int64_t lo, int64_t hi) {
    nb_tensor *m = nb__new(ctx, NB_I64, 2, (int64_t[]){rows, cols});
    if (!m) return NULL;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) nb_set(m, r * cols + c, (c - r >= lo && c - r <= hi) ? 1.0 : 0.0);
    return m;
}

static nb_tensor *triangle(nb_ctx *ctx, const char *op, nb_tensor *x, int64_t lo, int64_t hi) {
    if (nb__null(ctx, op, 1, x)) return NULL;
    char s[128];
    if (x->ndim < 2 || x->dtype == NB_I64)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: x %s %s must be a float tensor with at least 2 dimensions", op,
                        nb_dtype_name(x->dtype), nb_shape_str(x, s, sizeof s));
    nb_tensor *m = band_mask(ctx, x->shape[x->ndim - 2], x->shape[x->ndim - 1], lo, hi);
    /* selected, not multiplied: what is cut away may be inf or NaN (a causal mask of -inf) */
    return m ? nb_where(ctx, m, x, nb_scalar(ctx, x->dtype, 0.0)) : NULL;
}

nb_tensor *nb_tril(nb_ctx *ctx, nb_tensor *x, int64_t diagonal) {
    return triangle(ctx, "tril", x, INT64_MIN / 2, diagonal);
}
nb_tensor *nb_triu(nb_ctx *ctx, nb_tensor *x, int64_t diagonal) {
    return triangle(ctx, "triu", x, diagonal, INT64_MAX / 2);
}

nb_tensor *nb_masked_fill(nb_ctx *ctx, nb_tensor *x, nb_tensor *mask, double value) {
    if (nb__null(ctx, "masked_fill", 2, x, mask)) return NULL;
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "masked_fill: x must be f32 or f64, got i64");
    int nd;
    int64_t shape[NB_MAX_DIMS];
    char sx[128], sm[128];
    if (!nb__broadcast_shape(x->ndim, x->shape, mask->ndim, mask->shape, &nd, shape) || nd != x->ndim ||
        nb__numel(nd, shape) != x->numel)
        return nb__fail(ctx, NB_ERR_SHAPE, "masked_fill: mask %s does not broadcast to x %s", nb_shape_str(mask, sm, sizeof sm),
                        nb_shape_str(x, sx, sizeof sx));
    return nb_where(ctx, mask, nb_scalar(ctx, x->dtype, value), x);
}

/* index (n) along an axis: i -> (i * sign + shift) mod n */
static nb_tensor *axis_index(nb_ctx *ctx, int64_t n, int64_t shift, bool reverse) {
    nb_tensor *idx = nb__new(ctx, NB_I64, 1, &n);
    if (!idx) return NULL;
    int64_t *v = idx->data;
    for (int64_t i = 0; i < n; i++) {
        const int64_t j = reverse ? n - 1 - i : i - shift;
        v[i] = ((j % n) + n) % n;
    }
    return idx;
}

static bool axis_arg(nb_ctx *ctx, const char *op, const nb_tensor *x, int *axis) {
    const int a = nb__axis(*axis, x->ndim);
    char s[128];
    if (a < 0)
        return nb__fail(ctx, NB_ERR_AXIS, "%s: axis %d out of range for %s", op, *axis, nb_shape_str(x, s, sizeof s)), false;
    *axis = a;
    return true;
}

nb_tensor *nb_flip(nb_ctx *ctx, nb_tensor *x, int axis) {
    if (nb__null(ctx, "flip", 1, x) || !axis_arg(ctx, "flip", x, &axis)) return NULL;
    if (x->shape[axis] == 0) return x;
    return nb_index_select(ctx, x, axis, axis_index(ctx, x->shape[axis], 0, true));
}

nb_tensor *nb_roll(nb_ctx *ctx, nb_tensor *x, int64_t shift, int axis) {
    if (nb__null(ctx, "roll", 1, x) || !axis_arg(ctx, "roll", x, &axis)) return NULL;
    if (x->shape[axis] == 0) return x;
    return nb_index_select(ctx, x, axis, axis_index(ctx, x->shape[axis], shift % x->shape[axis], false));
}

nb_tensor *nb_outer(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) {
    if (nb__null(ctx, "outer", 2, a, b)) return NULL;
    char sa[128], sb[128];
    if (a->ndim != 1 || b->ndim != 1)
        return nb__fail(ctx, NB_ERR_SHAPE, "outer: a %s and b %s must be 1-D", nb_shape_str(a, sa, sizeof sa),
                        nb_shape_str(b, sb, sizeof sb));
    return nb_mul(ctx, nb_unsqueeze(ctx, a, 1), nb_unsqueeze(ctx, b, 0));
}

nb_tensor *nb_one_hot(nb_ctx *ctx, nb_tensor *labels, int64_t num_classes, nb_dtype dt) {
    if (nb__null(ctx, "one_hot", 1, labels)) return NULL;
    if (labels->dtype != NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "one_hot: labels must be i64, got %s", nb_dtype_name(labels->dtype));
    if (dt == NB_I64 || (unsigned)dt > NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "one_hot: the result must be f32 or f64");
    if (num_classes < 1 || labels->ndim + 1 > NB_MAX_DIMS)
        return nb__fail(ctx, NB_ERR_VALUE, "one_hot: num_classes %lld must be >= 1", (long long)num_classes);
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, labels->shape, (size_t)labels->ndim * sizeof *shape);
    shape[labels->ndim] = num_classes;
    nb_tensor *out = nb__new(ctx, dt, labels->ndim + 1, shape);
    if (!out) return NULL;
    nb__fill_kernel(out, 0.0);
    for (int64_t i = 0; i < labels->numel; i++) {
        const double l = nb_get(labels, i);
        if (l < 0 || l >= (double)num_classes)
            return nb__fail(ctx, NB_ERR_INDEX, "one_hot: label %g at %lld is outside [0, %lld)", l, (long long)i,
                            (long long)num_classes);
        nb_set(out, i * num_classes + (int64_t)l, 1.0);
    }
    return out;
}
