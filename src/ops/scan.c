/* Scans along an axis. One primitive, the first-order linear recurrence
 *     y = scan(a, b):  y_0 = b_0,  y_i = b_i + a_i y_{i-1}          (forward)
 *                      y_n = b_n,  y_i = b_i + a_{i+1} y_{i+1}       (reverse, n the last index)
 * whose adjoint is the same scan run the other way: with lambda = scan(a, g) reversed,
 * db = lambda and da_i = lambda_i y_{i-1} (forward) or lambda_{i-1} y_i (reverse). The backward
 * is made of scans, shifts (pads) and products, so every order of derivative works, and it
 * never divides: cumprod's gradient is exact with zeros in x (PyTorch needs an O(n^2) path for
 * the second derivative there). cumsum is the scan with a = 1, cumprod with a = x and b = x_0
 * then zeros, prod the last element of a cumprod. */
#include "../internal.h"

typedef struct {
    const nb_tensor *a, *y;
    int axis;
    bool reverse;
} scan_arg;

static inline double ld(const char *p, bool f32, int64_t i) { return f32 ? ((const float *)p)[i] : ((const double *)p)[i]; }

/* one line of b into the same line of y (y is contiguous, so its offset is the line's flat index;
 * a's line is found from it); accumulated in double as PyTorch's CPU kernels do */
static void scan_line(int64_t len, const char *bp, int64_t bs, char *yp, int64_t ys, const void *argp) {
    const scan_arg *A = argp;
    const bool f32 = A->y->dtype == NB_F32;
    const size_t es = nb_dtype_size(A->y->dtype);
    const char *ap = (const char *)A->a->data + nb__offset(A->a, (yp - (const char *)A->y->data) / (int64_t)es) * (int64_t)es;
    const int64_t as = A->a->stride[A->axis];
    double acc = 0;
    for (int64_t k = 0; k < len; k++) {
        const int64_t i = A->reverse ? len - 1 - k : k;
        const double coef = k == 0 ? 0 : ld(ap, f32, (A->reverse ? i + 1 : i) * as); /* a_0 (a_n reversed) is unused */
        acc = ld(bp, f32, i * bs) + (k == 0 ? 0 : coef * acc);
        if (f32) ((float *)yp)[i * ys] = (float)acc;
        else ((double *)yp)[i * ys] = acc;
    }
}

static nb_tensor *scan(nb_ctx *ctx, nb_tensor *a, nb_tensor *b, int axis, bool reverse);

/* t moved one place along axis (towards the end), a zero entering at the front */
static nb_tensor *shift(nb_ctx *ctx, nb_tensor *t, int axis) {
    int64_t pad[2 * NB_MAX_DIMS] = {0};
    const int k = t->ndim - 1 - axis;
    pad[2 * k] = 1, pad[2 * k + 1] = -1;
    return nb_pad(ctx, t, 2 * (k + 1), pad, NB_PAD_CONSTANT, 0.0);
}

static nb_status scan_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *a = n->in[0], *y = n->out;
    const int axis = (int)n->iattr[0];
    const bool reverse = n->iattr[1];
    nb_tensor *lambda = scan(ctx, a, g, axis, !reverse);
    if (n->in[1]->requires_grad) gin[1] = lambda;
    if (a->requires_grad && lambda)
        gin[0] = reverse ? nb_mul(ctx, shift(ctx, lambda, axis), y) : nb_mul(ctx, lambda, shift(ctx, y, axis));
    return NB_OK;
}
static const nb_op OP_SCAN = {"scan", scan_bw, NB_DIFFERENTIABLE};

/* a and b of the same shape and dtype (checked by the callers) */
static nb_tensor *scan(nb_ctx *ctx, nb_tensor *a, nb_tensor *b, int axis, bool reverse) {
    if (!a || !b) return NULL;
    nb_tensor *y = nb__new(ctx, b->dtype, b->ndim, b->shape);
    if (!y) return NULL;
    const scan_arg arg = {a, y, axis, reverse};
    nb__lines(b, y, axis, scan_line, &arg);
    nb_tensor *in[2] = {a, b};
    nb_node *n;
    y = nb__finish(ctx, &OP_SCAN, y, 2, in, &n);
    if (n) n->iattr[0] = axis, n->iattr[1] = reverse;
    return y;
}

/* checks shared by cumsum and cumprod; a 0-d x is scanned as a 1-element vector, as in PyTorch */
static nb_tensor *cumulative(nb_ctx *ctx, const char *op, nb_tensor *x, int axis, bool product) {
    if (nb__null(ctx, op, 1, x)) return NULL;
    char s[128];
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64, got i64", op);
    const int a = nb__axis(axis, x->ndim > 0 ? x->ndim : 1);
    if (a < 0) return nb__fail(ctx, NB_ERR_AXIS, "%s: axis %d out of range for %s", op, axis, nb_shape_str(x, s, sizeof s));
    if (x->ndim == 0) return nb_reshape(ctx, cumulative(ctx, op, nb_reshape(ctx, x, 1, (int64_t[]){1}), 0, product), 0, NULL);
    const int64_t n = x->shape[a];
    if (!product) return scan(ctx, nb_expand(ctx, nb_scalar(ctx, x->dtype, 1.0), x->ndim, x->shape), x, a, false);
    nb_tensor *first = x; /* b = (x_0, 0, ..., 0) along the axis */
    if (n > 1) {
        int64_t pad[2 * NB_MAX_DIMS] = {0};
        const int k = x->ndim - 1 - a;
        pad[2 * k + 1] = -(n - 1);
        first = nb_pad(ctx, x, 2 * (k + 1), pad, NB_PAD_CONSTANT, 0.0); /* crop to x_0 ... */
        pad[2 * k + 1] = n - 1;
        first = first ? nb_pad(ctx, first, 2 * (k + 1), pad, NB_PAD_CONSTANT, 0.0) : NULL; /* ... and zero-fill */
    }
    return scan(ctx, x, first, a, false);
}

nb_tensor *nb_cumsum(nb_ctx *ctx, nb_tensor *x, int axis) { return cumulative(ctx, "cumsum", x, axis, false); }
nb_tensor *nb_cumprod(nb_ctx *ctx, nb_tensor *x, int axis) { return cumulative(ctx, "cumprod", x, axis, true); }

/* The last element of a cumprod per reduced axis: O(n) extra memory, exact gradients with zeros. */
nb_tensor *nb_prod(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim) {
    if (nb__null(ctx, "prod", 1, x)) return NULL;
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "prod: expected f32 or f64, got i64");
    unsigned mask;
    if (!nb__axes_mask(ctx, "prod", x, naxes, axes, &mask)) return NULL;
    nb_tensor *y = x;
    for (int d = 0; d < x->ndim && y; d++) {
        if (!(mask >> d & 1)) continue;
        const int64_t n = y->shape[d];
        if (n == 0) { /* the empty product, 1: as 1 + the empty sum, so it stays on the graph (x's
                       * gradient is empty, and backward from it works, as in torch) */
            y = nb_add_scalar(ctx, nb_sum(ctx, y, 1, &d, true), 1.0);
        } else {
            y = nb_slice(ctx, nb_cumprod(ctx, y, d), d, n - 1, n, 1);
        }
    }
    if (!y || keepdim) return y;
    int on;
    int64_t os[NB_MAX_DIMS];
    nb__reduced_shape(x, mask, false, &on, os);
    return nb_reshape(ctx, y, on, os);
}
