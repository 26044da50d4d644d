/* Binary element-wise ops with broadcasting, the fused tanh/sigmoid backward pair, where and
 * cast. Each binary op: its kernel (one expression for f32 and f64), its backward rule made of
 * ops, its table entry and its public function. Unary ops live in unary.c. */
#include "../internal.h"

/* ---- the front end every binary op shares ------------------------------------------------ */
static bool backward_skips_inputs(const nb_binary_def *d);

/* The output may take a's place (a donated, nb__out_like) when it has a's shape and b's elements
 * lie outside a's: element i of the output is then written after a[i] and b[i] are read. */
static bool over_a(const nb_tensor *a, const nb_tensor *b, int nd, const int64_t *shape) {
    if (a->ndim != nd || memcmp(a->shape, shape, (size_t)nd * sizeof *shape) != 0) return false;
    const char *a0 = a->data, *a1 = a0 + (size_t)a->numel * nb_dtype_size(a->dtype);
    const char *b0 = b->data, *b1 = b0;
    for (int i = 0; i < b->ndim; i++) {
        if (b->shape[i] == 0) return true;
        const int64_t span = (b->shape[i] - 1) * b->stride[i] * (int64_t)nb_dtype_size(b->dtype);
        if (span < 0) b0 += span;
        else b1 += span;
    }
    b1 += nb_dtype_size(b->dtype);
    return b1 <= a0 || b0 >= a1;
}

nb_tensor *nb__binary(nb_ctx *ctx, const nb_binary_def *d, nb_tensor *a, nb_tensor *b) {
    const char *op = d->op.name;
    if (nb__null(ctx, op, 2, a, b)) return NULL;
    if (a->dtype == NB_I64 || b->dtype == NB_I64)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64 inputs, got %s and %s", op, nb_dtype_name(a->dtype),
                        nb_dtype_name(b->dtype));
    if (a->dtype != b->dtype)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: dtypes differ (%s and %s); use nb_cast", op, nb_dtype_name(a->dtype),
                        nb_dtype_name(b->dtype));
    int nd;
    int64_t shape[NB_MAX_DIMS];
    if (!nb__broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &nd, shape)) {
        char sa[128], sb[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: shapes %s and %s cannot be broadcast together", op,
                        nb_shape_str(a, sa, sizeof sa), nb_shape_str(b, sb, sizeof sb));
    }
    nb_tensor *out = over_a(a, b, nd, shape) ? nb__out_like(ctx, a, !backward_skips_inputs(d)) : nb__new(ctx, a->dtype, nd, shape);
    if (!out) return NULL;
    nb__binary_map(d, out, a, b);
    if (!d->op.backward) return out; /* piecewise constant: a constant, zero gradient */
    nb_tensor *in[2] = {a, b};
    return nb__finish(ctx, &d->op, out, 2, in, NULL);
}

#define BACKWARD(name) static nb_status name##_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin)

/* ---- arithmetic --------------------------------------------------------------------------- */
NB_BINARY_KERNEL(add, u + v)
BACKWARD(add) {
    (void)ctx, (void)n;
    gin[0] = gin[1] = g;
    return NB_OK;
}
static const nb_binary_def ADD = {{"add", add_bw, NB_DIFFERENTIABLE}, add_f32, add_f64};
nb_tensor *nb_add(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &ADD, a, b); }
void nb__accumulate_kernel(nb_tensor *dst, const nb_tensor *src) { nb__binary_map(&ADD, dst, dst, src); }

/* relu(a + b) in one pass, the end of a residual block: the backward reads only the output
 * (the sum is > 0 exactly where the output is), so the sum itself is never kept */
NB_BINARY_KERNEL(add_relu, NB_M(nb__relu, u + v))
BACKWARD(add_relu) {
    gin[0] = gin[1] = nb_mul(ctx, g, nb__mask_gtz(ctx, n->out));
    return NB_OK;
}
static const nb_binary_def ADD_RELU = {{"add_relu", add_relu_bw, NB_DIFFERENTIABLE}, add_relu_f32, add_relu_f64};
nb_tensor *nb_add_relu(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &ADD_RELU, a, b); }
/* add and add_relu: their backward reads neither input (add_relu reads its output) */
static bool backward_skips_inputs(const nb_binary_def *d) { return d == &ADD || d == &ADD_RELU; }

NB_BINARY_KERNEL(sub, u - v)
BACKWARD(sub) {
    gin[0] = g;
    if (n->in[1]->requires_grad) gin[1] = nb_neg(ctx, g);
    return NB_OK;
}
static const nb_binary_def SUB = {{"sub", sub_bw, NB_DIFFERENTIABLE}, sub_f32, sub_f64};
nb_tensor *nb_sub(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &SUB, a, b); }

NB_BINARY_KERNEL(mul, u * v)
BACKWARD(mul) {
    if (n->in[0] == n->in[1]) { /* x*x (L2 penalties): one 2*g*x instead of g*x twice and their sum */
        gin[0] = nb_mul(ctx, g, nb_mul_scalar(ctx, n->in[0], 2.0));
        return NB_OK;
    }
    if (n->in[0]->requires_grad) gin[0] = nb_mul(ctx, g, n->in[1]);
    if (n->in[1]->requires_grad) gin[1] = nb_mul(ctx, g, n->in[0]);
    return NB_OK;
}
static const nb_binary_def MUL = {{"mul", mul_bw, NB_DIFFERENTIABLE}, mul_f32, mul_f64};
nb_tensor *nb_mul(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &MUL, a, b); }

NB_BINARY_KERNEL(div, u / v)
BACKWARD(div) {
    nb_tensor *b = n->in[1];
    if (n->in[0]->requires_grad) gin[0] = nb_div(ctx, g, b);
    if (b->requires_grad) gin[1] = nb_neg(ctx, nb_div(ctx, nb_mul(ctx, g, n->out), b));
    return NB_OK;
}
static const nb_binary_def DIV = {{"div", div_bw, NB_DIFFERENTIABLE}, div_f32, div_f64};
nb_tensor *nb_div(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &DIV, a, b); }

NB_BINARY_KERNEL(pow, NB_M2(pow, u, v))
/* torch's limits at a = 0: b = 0 adds nothing to d/da (b a^(b-1) is 0 * inf there), and
 * b >= 0 nothing to d/db (a^b log a is 0 * -inf, or 1 * -inf for b = 0: the one-sided limit
 * torch takes is 0) */
BACKWARD(pow) {
    nb_tensor *a = n->in[0], *b = n->in[1], *zero = nb_scalar(ctx, n->out->dtype, 0.0);
    if (a->requires_grad)
        gin[0] = nb_where(ctx, nb_eq(ctx, b, zero), zero,
                          nb_mul(ctx, g, nb_mul(ctx, b, nb_pow(ctx, a, nb_add_scalar(ctx, b, -1.0)))));
    if (b->requires_grad)
        gin[1] = nb_where(ctx, nb_mul(ctx, nb_eq(ctx, a, zero), nb_ge(ctx, b, zero)), zero,
                          nb_mul(ctx, g, nb_mul(ctx, n->out, nb_log(ctx, a))));
    return NB_OK;
}
static const nb_binary_def POW = {{"pow", pow_bw, NB_DIFFERENTIABLE}, pow_f32, pow_f64};
nb_tensor *nb_pow(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &POW, a, b); }

/* atan2(a, b): the angle of (b, a); d/da = b/(a^2+b^2), d/db = -a/(a^2+b^2) */
NB_BINARY_KERNEL(atan2, NB_M2(atan2, u, v))
BACKWARD(atan2) {
    nb_tensor *a = n->in[0], *b = n->in[1];
    nb_tensor *r2 = nb_add(ctx, nb_square(ctx, a), nb_square(ctx, b)), *gr = nb_div(ctx, g, r2);
    if (a->requires_grad) gin[0] = nb_mul(ctx, gr, b);
    if (b->requires_grad) gin[1] = nb_neg(ctx, nb_mul(ctx, gr, a));
    return NB_OK;
}
static const nb_binary_def ATAN2 = {{"atan2", atan2_bw, NB_DIFFERENTIABLE}, atan2_f32, atan2_f64};
nb_tensor *nb_atan2(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &ATAN2, a, b); }

/* ---- comparisons (piecewise constant) and maximum/minimum ------------------------------------ */
NB_BINARY_KERNEL(eq, u == v ? (T)1 : (T)0)
NB_BINARY_KERNEL(ne, u != v ? (T)1 : (T)0)
NB_BINARY_KERNEL(lt, u < v ? (T)1 : (T)0)
NB_BINARY_KERNEL(le, u <= v ? (T)1 : (T)0)
NB_BINARY_KERNEL(gt, u > v ? (T)1 : (T)0)
NB_BINARY_KERNEL(ge, u >= v ? (T)1 : (T)0)
static const nb_binary_def EQ = {{"eq", NULL, NB_NOT_DIFFERENTIABLE}, eq_f32, eq_f64},
                           NE = {{"ne", NULL, NB_NOT_DIFFERENTIABLE}, ne_f32, ne_f64},
                           LT = {{"lt", NULL, NB_NOT_DIFFERENTIABLE}, lt_f32, lt_f64},
                           LE = {{"le", NULL, NB_NOT_DIFFERENTIABLE}, le_f32, le_f64},
                           GT = {{"gt", NULL, NB_NOT_DIFFERENTIABLE}, gt_f32, gt_f64},
                           GE = {{"ge", NULL, NB_NOT_DIFFERENTIABLE}, ge_f32, ge_f64};
nb_tensor *nb_eq(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &EQ, a, b); }
nb_tensor *nb_ne(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &NE, a, b); }
nb_tensor *nb_lt(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &LT, a, b); }
nb_tensor *nb_le(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &LE, a, b); }
nb_tensor *nb_gt(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &GT, a, b); }
nb_tensor *nb_ge(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &GE, a, b); }

/* maximum/minimum: NaN wins (as torch.maximum: unordered, u + v is NaN); equal values, equal
 * infinities too, give that value; the winner takes the gradient, exact ties split it evenly */
NB_BINARY_KERNEL(maximum, u > v ? u : (u < v ? v : (u == v ? u : u + v)))
NB_BINARY_KERNEL(minimum, u < v ? u : (u > v ? v : (u == v ? u : u + v)))
static nb_status extremum_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin, const nb_binary_def *win) {
    nb_tensor *a = n->in[0], *b = n->in[1];
    nb_tensor *m = nb_add(ctx, nb__binary(ctx, win, a, b), nb_mul_scalar(ctx, nb__binary(ctx, &EQ, a, b), 0.5));
    if (a->requires_grad) gin[0] = nb_mul(ctx, g, m);
    if (b->requires_grad) gin[1] = nb_mul(ctx, g, nb_affine(ctx, m, -1.0, 1.0));
    return NB_OK;
}
BACKWARD(maximum) { return extremum_bw(ctx, n, g, gin, &GT); }
BACKWARD(minimum) { return extremum_bw(ctx, n, g, gin, &LT); }
static const nb_binary_def MAXIMUM = {{"maximum", maximum_bw, NB_DIFFERENTIABLE}, maximum_f32, maximum_f64},
                           MINIMUM = {{"minimum", minimum_bw, NB_DIFFERENTIABLE}, minimum_f32, minimum_f64};
nb_tensor *nb_maximum(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &MAXIMUM, a, b); }
nb_tensor *nb_minimum(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return nb__binary(ctx, &MINIMUM, a, b); }

/* ---- fused backward of tanh and sigmoid: (g, y) -> g f'(y) in one pass, each a
 * differentiable op in its own right, so second derivatives still work ----------------------- */
NB_BINARY_KERNEL(tanh_grad, u * ((T)1 - v * v))
NB_BINARY_KERNEL(sigmoid_grad, u * (v * ((T)1 - v))) /* g times f'(y), so that g = 1 gives f'(y) itself */
static nb_status tanh_grad_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *gg, nb_tensor **gin);
static nb_status sigmoid_grad_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *gg, nb_tensor **gin);
static const nb_binary_def TANH_GRAD = {{"tanh_backward", tanh_grad_bw, NB_DIFFERENTIABLE}, tanh_grad_f32, tanh_grad_f64},
                           SIGMOID_GRAD = {{"sigmoid_backward", sigmoid_grad_bw, NB_DIFFERENTIABLE}, sigmoid_grad_f32,
                                           sigmoid_grad_f64};
nb_tensor *nb__tanh_backward(nb_ctx *ctx, nb_tensor *g, nb_tensor *y) { return nb__binary(ctx, &TANH_GRAD, g, y); }
nb_tensor *nb__sigmoid_backward(nb_ctx *ctx, nb_tensor *g, nb_tensor *y) { return nb__binary(ctx, &SIGMOID_GRAD, g, y); }
static nb_status tanh_grad_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *gg, nb_tensor **gin) {
    nb_tensor *g = n->in[0], *y = n->in[1]; /* out = g (1 - y^2) */
    if (g->requires_grad) gin[0] = nb__tanh_backward(ctx, gg, y);
    if (y->requires_grad) gin[1] = nb_mul(ctx, gg, nb_mul_scalar(ctx, nb_mul(ctx, g, y), -2.0));
    return NB_OK;
}
static nb_status sigmoid_grad_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *gg, nb_tensor **gin) {
    nb_tensor *g = n->in[0], *y = n->in[1]; /* out = g y (1 - y) */
    if (g->requires_grad) gin[0] = nb__sigmoid_backward(ctx, gg, y);
    if (y->requires_grad) gin[1] = nb_mul(ctx, gg, nb_mul(ctx, g, nb_affine(ctx, y, -2.0, 1.0)));
    return NB_OK;
}

/* ---- where ------------------------------------------------------------------------------- */
#define DEFINE_WHERE_ROW(T, SUF)                                                                  \
    static void where_row_##SUF(int64_t n, char **p, const int64_t *s, const void *arg) {         \
        (void)arg;                                                                                \
        T *o = (T *)p[0];                                                                         \
        const T *c = (const T *)p[1], *a = (const T *)p[2], *b = (const T *)p[3];                 \
        for (int64_t i = 0; i < n; i++) o[i * s[0]] = c[i * s[1]] != 0 ? a[i * s[2]] : b[i * s[3]]; \
    }
DEFINE_WHERE_ROW(float, f32)
DEFINE_WHERE_ROW(double, f64)

static nb_status where_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *zero = nb_scalar(ctx, g->dtype, 0.0);
    if (n->in[1]->requires_grad) gin[1] = nb_where(ctx, n->in[0], g, zero);
    if (n->in[2]->requires_grad) gin[2] = nb_where(ctx, n->in[0], zero, g);
    return NB_OK;
}
static const nb_op OP_WHERE = {"where", where_bw, NB_DIFFERENTIABLE};

nb_tensor *nb_where(nb_ctx *ctx, nb_tensor *cond, nb_tensor *a, nb_tensor *b) {
    if (nb__null(ctx, "where", 3, cond, a, b)) return NULL;
    if (a->dtype == NB_I64 || a->dtype != b->dtype)
        return nb__fail(ctx, NB_ERR_DTYPE, "where: a and b must both be f32 or both f64 (got %s and %s)",
                        nb_dtype_name(a->dtype), nb_dtype_name(b->dtype));
    int nd, nd2;
    int64_t s1[NB_MAX_DIMS], shape[NB_MAX_DIMS];
    if (!nb__broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &nd, s1) ||
        !nb__broadcast_shape(cond->ndim, cond->shape, nd, s1, &nd2, shape)) {
        char sc[128], sa[128], sb[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "where: shapes %s, %s and %s cannot be broadcast together",
                        nb_shape_str(cond, sc, sizeof sc), nb_shape_str(a, sa, sizeof sa), nb_shape_str(b, sb, sizeof sb));
    }
    nb_tensor *c = cond;
    if (cond->dtype != a->dtype) {  /* masks of another dtype, as 0/1: an f64 1e-300 is no f32 0 */
        c = nb__new(ctx, a->dtype, cond->ndim, cond->shape);
        if (!c) return NULL;
        for (int64_t i = 0; i < c->numel; i++) nb_set(c, i, nb_get(cond, i) != 0);
    }
    nb_tensor *out = nb__new(ctx, a->dtype, nd2, shape);
    if (!out) return NULL;
    nb_iter it;
    const nb_tensor *ts[4] = {out, c, a, b};
    nb__iter_init(&it, nd2, shape, 4, ts);
    nb__iter_run(&it, a->dtype == NB_F32 ? where_row_f32 : where_row_f64, NULL);
    nb_tensor *in[3] = {cond, a, b};
    return nb__finish(ctx, &OP_WHERE, out, 3, in, NULL);
}

/* ---- cast ------------------------------------------------------------------------------- */
static nb_status cast_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_cast(ctx, g, n->in[0]->dtype);
    return NB_OK;
}
static const nb_op OP_CAST = {"cast", cast_bw, NB_DIFFERENTIABLE};

nb_tensor *nb_cast(nb_ctx *ctx, nb_tensor *x, nb_dtype dt) {
    if (nb__null(ctx, "cast", 1, x)) return NULL;
    if ((unsigned)dt > NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "cast: unknown dtype %d", (int)dt);
    if (dt == x->dtype) return x;
    int64_t bad;
    double v;
    if (dt == NB_I64 && !nb__i64_convertible(x, &bad, &v))
        return nb__fail(ctx, NB_ERR_VALUE, "cast: element %lld (%g) is not representable as an i64", (long long)bad, v);
    nb_tensor *out = nb__new(ctx, dt, x->ndim, x->shape);
    if (!out) return NULL;
    nb__copy_kernel(out, x);
    if (dt == NB_I64 || x->dtype == NB_I64) return out;
    return nb__finish(ctx, &OP_CAST, out, 1, &x, NULL);
}
