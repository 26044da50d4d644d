/* Element-wise ops: binary with broadcasting, unary, activations, where, cast.
 * Each op: argument checks, kernel (kernels.c), backward rule written with ops. */
#include "../internal.h"

/* ---- shared front ends ------------------------------------------------------------------ */
static bool float_dtypes(nb_ctx *ctx, const char *op, const nb_tensor *a, const nb_tensor *b) {
    if (a->dtype == NB_I64 || (b && b->dtype == NB_I64))
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64 inputs, got %s%s%s", op, nb_dtype_name(a->dtype),
                        b ? " and " : "", b ? nb_dtype_name(b->dtype) : ""),
               false;
    if (b && a->dtype != b->dtype)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: dtypes differ (%s and %s); use nb_cast", op, nb_dtype_name(a->dtype),
                        nb_dtype_name(b->dtype)),
               false;
    return true;
}

static nb_tensor *binary(nb_ctx *ctx, const nb_op *op, nb_binary_kind k, nb_tensor *a, nb_tensor *b, bool record) {
    if (nb__null(ctx, op->name, 2, a, b) || !float_dtypes(ctx, op->name, a, b)) return NULL;
    int nd;
    int64_t shape[NB_MAX_DIMS];
    if (!nb__broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &nd, shape)) {
        char sa[128], sb[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: shapes %s and %s cannot be broadcast together", op->name,
                        nb_shape_str(a, sa, sizeof sa), nb_shape_str(b, sb, sizeof sb));
    }
    nb_tensor *out = nb__new(ctx, a->dtype, nd, shape);
    if (!out) return NULL;
    nb__binary_kernel(k, out, a, b);
    if (!record) return out;
    nb_tensor *in[2] = {a, b};
    return nb__finish(ctx, op, out, 2, in, NULL);
}

static nb_tensor *unary(nb_ctx *ctx, const nb_op *op, nb_unary_kind k, nb_tensor *x, double p0, double p1, bool record) {
    if (nb__null(ctx, op->name, 1, x) || !float_dtypes(ctx, op->name, x, NULL)) return NULL;
    nb_tensor *out = nb__new(ctx, x->dtype, x->ndim, x->shape);
    if (!out) return NULL;
    nb__unary_kernel(k, out, x, p0, p1);
    if (!record) return out;
    nb_node *n;
    out = nb__finish(ctx, op, out, 1, &x, &n);
    if (n) n->fattr[0] = p0, n->fattr[1] = p1;
    return out;
}

/* constant (no-grad) masks used by backward rules */
static nb_tensor *mask_gtz(nb_ctx *ctx, nb_tensor *x) {
    static const nb_op op = {"gt_zero", NULL, false};
    return unary(ctx, &op, NB_U_GTZ, x, 0, 0, false);
}

/* ---- binary ------------------------------------------------------------------------------ */
static nb_status add_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    (void)ctx, (void)n;
    gin[0] = gin[1] = g;
    return NB_OK;
}
static nb_status sub_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = g;
    if (n->in[1]->requires_grad) gin[1] = nb_neg(ctx, g);
    return NB_OK;
}
static nb_status mul_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    if (n->in[0] == n->in[1]) { /* x*x (L2 penalties): one 2*g*x instead of g*x twice and their sum */
        gin[0] = nb_mul(ctx, g, nb_mul_scalar(ctx, n->in[0], 2.0));
        return NB_OK;
    }
    if (n->in[0]->requires_grad) gin[0] = nb_mul(ctx, g, n->in[1]);
    if (n->in[1]->requires_grad) gin[1] = nb_mul(ctx, g, n->in[0]);
    return NB_OK;
}
static nb_status div_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *b = n->in[1];
    if (n->in[0]->requires_grad) gin[0] = nb_div(ctx, g, b);
    if (b->requires_grad) gin[1] = nb_neg(ctx, nb_div(ctx, nb_mul(ctx, g, n->out), b));
    return NB_OK;
}
static nb_status pow_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *a = n->in[0], *b = n->in[1];
    if (a->requires_grad) gin[0] = nb_mul(ctx, g, nb_mul(ctx, b, nb_pow(ctx, a, nb_add_scalar(ctx, b, -1.0))));
    if (b->requires_grad) gin[1] = nb_mul(ctx, g, nb_mul(ctx, n->out, nb_log(ctx, a)));
    return NB_OK;
}
/* maximum/minimum: the winner takes the gradient, exact ties split it */
static nb_status extremum_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin, nb_binary_kind win) {
    static const nb_op cmp = {"compare", NULL, false};
    nb_tensor *a = n->in[0], *b = n->in[1];
    nb_tensor *m = nb_add(ctx, binary(ctx, &cmp, win, a, b, false),
                          nb_mul_scalar(ctx, binary(ctx, &cmp, NB_B_EQ, a, b, false), 0.5));
    if (a->requires_grad) gin[0] = nb_mul(ctx, g, m);
    if (b->requires_grad) gin[1] = nb_mul(ctx, g, nb_affine(ctx, m, -1.0, 1.0));
    return NB_OK;
}
static nb_status max_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    return extremum_bw(ctx, n, g, gin, NB_B_GT);
}
static nb_status min_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    return extremum_bw(ctx, n, g, gin, NB_B_LT);
}

static const nb_op OP_ADD = {"add", add_bw, false}, OP_SUB = {"sub", sub_bw, false}, OP_MUL = {"mul", mul_bw, false},
                   OP_DIV = {"div", div_bw, false}, OP_POW = {"pow", pow_bw, false},
                   OP_MAXIMUM = {"maximum", max_bw, false}, OP_MINIMUM = {"minimum", min_bw, false};
static const nb_op OP_EQ = {"eq", NULL, false}, OP_NE = {"ne", NULL, false}, OP_LT = {"lt", NULL, false},
                   OP_LE = {"le", NULL, false}, OP_GT = {"gt", NULL, false}, OP_GE = {"ge", NULL, false};

nb_tensor *nb_add(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return binary(ctx, &OP_ADD, NB_B_ADD, a, b, true); }
nb_tensor *nb_sub(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return binary(ctx, &OP_SUB, NB_B_SUB, a, b, true); }
nb_tensor *nb_mul(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return binary(ctx, &OP_MUL, NB_B_MUL, a, b, true); }
nb_tensor *nb_div(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return binary(ctx, &OP_DIV, NB_B_DIV, a, b, true); }
nb_tensor *nb_pow(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return binary(ctx, &OP_POW, NB_B_POW, a, b, true); }
nb_tensor *nb_maximum(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return binary(ctx, &OP_MAXIMUM, NB_B_MAX, a, b, true); }
nb_tensor *nb_minimum(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return binary(ctx, &OP_MINIMUM, NB_B_MIN, a, b, true); }
nb_tensor *nb_eq(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return binary(ctx, &OP_EQ, NB_B_EQ, a, b, false); }
nb_tensor *nb_ne(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return binary(ctx, &OP_NE, NB_B_NE, a, b, false); }
nb_tensor *nb_lt(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return binary(ctx, &OP_LT, NB_B_LT, a, b, false); }
nb_tensor *nb_le(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return binary(ctx, &OP_LE, NB_B_LE, a, b, false); }
nb_tensor *nb_gt(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return binary(ctx, &OP_GT, NB_B_GT, a, b, false); }
nb_tensor *nb_ge(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return binary(ctx, &OP_GE, NB_B_GE, a, b, false); }

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
static const nb_op OP_WHERE = {"where", where_bw, false};

nb_tensor *nb_where(nb_ctx *ctx, nb_tensor *cond, nb_tensor *a, nb_tensor *b) {
    if (nb__null(ctx, "where", 3, cond, a, b) || !float_dtypes(ctx, "where", a, b)) return NULL;
    int nd, nd2;
    int64_t s1[NB_MAX_DIMS], shape[NB_MAX_DIMS];
    if (!nb__broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &nd, s1) ||
        !nb__broadcast_shape(cond->ndim, cond->shape, nd, s1, &nd2, shape)) {
        char sc[128], sa[128], sb[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "where: shapes %s, %s and %s cannot be broadcast together",
                        nb_shape_str(cond, sc, sizeof sc), nb_shape_str(a, sa, sizeof sa), nb_shape_str(b, sb, sizeof sb));
    }
    nb_tensor *c = cond;
    if (cond->dtype != a->dtype) {  /* masks of another dtype are converted once */
        c = nb__new(ctx, a->dtype, cond->ndim, cond->shape);
        if (!c) return NULL;
        nb__copy_kernel(c, cond);
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

/* ---- unary ------------------------------------------------------------------------------- */
#define X(n) (n->in[0])
static nb_status neg_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    (void)n;
    gin[0] = nb_neg(ctx, g);
    return NB_OK;
}
static nb_status exp_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_mul(ctx, g, n->out);
    return NB_OK;
}
static nb_status log_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_div(ctx, g, X(n));
    return NB_OK;
}
static nb_status sqrt_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_div(ctx, g, nb_mul_scalar(ctx, n->out, 2.0));
    return NB_OK;
}
static nb_status abs_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_mul(ctx, g, nb_sign(ctx, X(n)));
    return NB_OK;
}
static nb_status erf_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *x = X(n);
    gin[0] = nb_mul(ctx, g, nb_mul_scalar(ctx, nb_exp(ctx, nb_neg(ctx, nb_mul(ctx, x, x))), 1.1283791670955126));
    return NB_OK;
}
static nb_status relu_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_mul(ctx, g, mask_gtz(ctx, X(n)));
    return NB_OK;
}
static nb_status leaky_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    double s = n->fattr[0];
    gin[0] = nb_mul(ctx, g, nb_affine(ctx, mask_gtz(ctx, X(n)), 1.0 - s, s));
    return NB_OK;
}
static nb_status elu_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_where(ctx, mask_gtz(ctx, X(n)), g, nb_mul(ctx, g, nb_add_scalar(ctx, n->out, n->fattr[0])));
    return NB_OK;
}
/* tanh and sigmoid backward are one fused op each, (g, y) -> g*f'(y), since the three-op
 * composition dominated chains of small ops (bench/ chain row); the fused ops have backward
 * rules of their own, so second derivatives still work. */
static nb_status tanh_grad_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *gg, nb_tensor **gin);
static nb_status sigmoid_grad_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *gg, nb_tensor **gin);
static const nb_op OP_TANH_GRAD = {"tanh_backward", tanh_grad_bw, false},
                   OP_SIGMOID_GRAD = {"sigmoid_backward", sigmoid_grad_bw, false};

static nb_status tanh_grad_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *gg, nb_tensor **gin) {
    nb_tensor *g = n->in[0], *y = n->in[1];  /* out = g (1 - y^2) */
    if (g->requires_grad) gin[0] = binary(ctx, &OP_TANH_GRAD, NB_B_TANH_GRAD, gg, y, true);
    if (y->requires_grad) gin[1] = nb_mul(ctx, gg, nb_mul_scalar(ctx, nb_mul(ctx, g, y), -2.0));
    return NB_OK;
}
static nb_status sigmoid_grad_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *gg, nb_tensor **gin) {
    nb_tensor *g = n->in[0], *y = n->in[1];  /* out = g y (1 - y) */
    if (g->requires_grad) gin[0] = binary(ctx, &OP_SIGMOID_GRAD, NB_B_SIGMOID_GRAD, gg, y, true);
    if (y->requires_grad) gin[1] = nb_mul(ctx, gg, nb_mul(ctx, g, nb_affine(ctx, y, -2.0, 1.0)));
    return NB_OK;
}
static nb_status sigmoid_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = binary(ctx, &OP_SIGMOID_GRAD, NB_B_SIGMOID_GRAD, g, n->out, true);
    return NB_OK;
}
static nb_status tanh_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = binary(ctx, &OP_TANH_GRAD, NB_B_TANH_GRAD, g, n->out, true);
    return NB_OK;
}
static nb_status gelu_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    /* d/dx x*Phi(x) = Phi(x) + x*phi(x) */
    nb_tensor *x = X(n);
    nb_tensor *Phi = nb_affine(ctx, nb_erf(ctx, nb_mul_scalar(ctx, x, 0.70710678118654752440)), 0.5, 0.5);
    nb_tensor *phi = nb_mul_scalar(ctx, nb_exp(ctx, nb_mul_scalar(ctx, nb_mul(ctx, x, x), -0.5)), 0.39894228040143267794);
    gin[0] = nb_mul(ctx, g, nb_add(ctx, Phi, nb_mul(ctx, x, phi)));
    return NB_OK;
}
static nb_status softplus_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_mul(ctx, g, nb_sigmoid(ctx, X(n)));
    return NB_OK;
}
static nb_status affine_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_mul_scalar(ctx, g, n->fattr[0]);
    return NB_OK;
}
static nb_status pows_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    double p = n->fattr[0];
    if (p == 0.0) gin[0] = nb_zeros_like(ctx, g);
    else if (p == 1.0) gin[0] = g;
    else gin[0] = nb_mul(ctx, g, nb_mul_scalar(ctx, nb_pow_scalar(ctx, X(n), p - 1.0), p));
    return NB_OK;
}
static nb_status clamp_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    static const nb_op op = {"in_range", NULL, false};
    gin[0] = nb_mul(ctx, g, unary(ctx, &op, NB_U_INRANGE, X(n), n->fattr[0], n->fattr[1], false));
    return NB_OK;
}
#undef X

static const nb_op OP_NEG = {"neg", neg_bw, false}, OP_EXP = {"exp", exp_bw, false}, OP_LOG = {"log", log_bw, false},
                   OP_SQRT = {"sqrt", sqrt_bw, false}, OP_ABS = {"abs", abs_bw, false}, OP_SIGN = {"sign", NULL, false},
                   OP_ERF = {"erf", erf_bw, false}, OP_RELU = {"relu", relu_bw, false},
                   OP_LEAKY = {"leaky_relu", leaky_bw, false}, OP_ELU = {"elu", elu_bw, false},
                   OP_SIGMOID = {"sigmoid", sigmoid_bw, false}, OP_TANH = {"tanh", tanh_bw, false},
                   OP_GELU = {"gelu", gelu_bw, false}, OP_SOFTPLUS = {"softplus", softplus_bw, false},
                   OP_AFFINE = {"affine", affine_bw, false}, OP_POWS = {"pow_scalar", pows_bw, false},
                   OP_CLAMP = {"clamp", clamp_bw, false};

nb_tensor *nb_neg(nb_ctx *ctx, nb_tensor *x) { return unary(ctx, &OP_NEG, NB_U_NEG, x, 0, 0, true); }
nb_tensor *nb_exp(nb_ctx *ctx, nb_tensor *x) { return unary(ctx, &OP_EXP, NB_U_EXP, x, 0, 0, true); }
nb_tensor *nb_log(nb_ctx *ctx, nb_tensor *x) { return unary(ctx, &OP_LOG, NB_U_LOG, x, 0, 0, true); }
nb_tensor *nb_sqrt(nb_ctx *ctx, nb_tensor *x) { return unary(ctx, &OP_SQRT, NB_U_SQRT, x, 0, 0, true); }
nb_tensor *nb_abs(nb_ctx *ctx, nb_tensor *x) { return unary(ctx, &OP_ABS, NB_U_ABS, x, 0, 0, true); }
nb_tensor *nb_sign(nb_ctx *ctx, nb_tensor *x) { return unary(ctx, &OP_SIGN, NB_U_SIGN, x, 0, 0, false); }
nb_tensor *nb_erf(nb_ctx *ctx, nb_tensor *x) { return unary(ctx, &OP_ERF, NB_U_ERF, x, 0, 0, true); }
nb_tensor *nb_relu(nb_ctx *ctx, nb_tensor *x) { return unary(ctx, &OP_RELU, NB_U_RELU, x, 0, 0, true); }
nb_tensor *nb_leaky_relu(nb_ctx *ctx, nb_tensor *x, double slope) {
    if (!isfinite(slope)) return nb__fail(ctx, NB_ERR_VALUE, "leaky_relu: slope %g must be finite", slope);
    return unary(ctx, &OP_LEAKY, NB_U_LEAKY, x, slope, 0, true);
}
nb_tensor *nb_elu(nb_ctx *ctx, nb_tensor *x, double alpha) {
    if (!isfinite(alpha)) return nb__fail(ctx, NB_ERR_VALUE, "elu: alpha %g must be finite", alpha);
    return unary(ctx, &OP_ELU, NB_U_ELU, x, alpha, 0, true);
}
nb_tensor *nb_sigmoid(nb_ctx *ctx, nb_tensor *x) { return unary(ctx, &OP_SIGMOID, NB_U_SIGMOID, x, 0, 0, true); }
nb_tensor *nb_tanh(nb_ctx *ctx, nb_tensor *x) { return unary(ctx, &OP_TANH, NB_U_TANH, x, 0, 0, true); }
nb_tensor *nb_gelu(nb_ctx *ctx, nb_tensor *x) { return unary(ctx, &OP_GELU, NB_U_GELU, x, 0, 0, true); }
nb_tensor *nb_softplus(nb_ctx *ctx, nb_tensor *x) { return unary(ctx, &OP_SOFTPLUS, NB_U_SOFTPLUS, x, 0, 0, true); }
nb_tensor *nb_affine(nb_ctx *ctx, nb_tensor *x, double scale, double shift) {
    if (!isfinite(scale) || !isfinite(shift))
        return nb__fail(ctx, NB_ERR_VALUE, "affine: scale %g and shift %g must be finite", scale, shift);
    return unary(ctx, &OP_AFFINE, NB_U_AFFINE, x, scale, shift, true);
}
nb_tensor *nb_add_scalar(nb_ctx *ctx, nb_tensor *x, double s) { return nb_affine(ctx, x, 1.0, s); }
nb_tensor *nb_mul_scalar(nb_ctx *ctx, nb_tensor *x, double s) { return nb_affine(ctx, x, s, 0.0); }
nb_tensor *nb_pow_scalar(nb_ctx *ctx, nb_tensor *x, double p) {
    if (isnan(p)) return nb__fail(ctx, NB_ERR_VALUE, "pow_scalar: exponent is NaN");
    return unary(ctx, &OP_POWS, NB_U_POW, x, p, 0, true);
}
nb_tensor *nb_clamp(nb_ctx *ctx, nb_tensor *x, double lo, double hi) {
    if (isnan(lo) || isnan(hi) || lo > hi) return nb__fail(ctx, NB_ERR_VALUE, "clamp: invalid range [%g, %g]", lo, hi);
    return unary(ctx, &OP_CLAMP, NB_U_CLAMP, x, lo, hi, true);
}

/* ---- cast ------------------------------------------------------------------------------- */
static nb_status cast_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_cast(ctx, g, n->in[0]->dtype);
    return NB_OK;
}
static const nb_op OP_CAST = {"cast", cast_bw, false};

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
