/* Element-wise ops (src/ops/elementwise.c): forward values against PyTorch, gradients and
 * second derivatives by finite differences over shapes, broadcasting and strided layouts. */
#include "common.h"
#include "ref/torch_refs.h"

TestSuite(elementwise, .init = ctx_setup, .fini = ctx_teardown);

/* ---- unary ops ------------------------------------------------------------------------------ */
typedef nb_tensor *(*unary_fn)(nb_ctx *, nb_tensor *);

static nb_tensor *leaky(nb_ctx *c, nb_tensor *x) { return nb_leaky_relu(c, x, 0.1); }
static nb_tensor *elu1(nb_ctx *c, nb_tensor *x) { return nb_elu(c, x, 1.0); }
static nb_tensor *clamp_(nb_ctx *c, nb_tensor *x) { return nb_clamp(c, x, -0.5, 0.8); }
static nb_tensor *pow15(nb_ctx *c, nb_tensor *x) { return nb_pow_scalar(c, x, 1.5); }
static nb_tensor *cube(nb_ctx *c, nb_tensor *x) { return nb_pow_scalar(c, x, 3.0); }
static nb_tensor *affine(nb_ctx *c, nb_tensor *x) { return nb_affine(c, x, 2.0, -1.0); }
static nb_tensor *celu07(nb_ctx *c, nb_tensor *x) { return nb_celu(c, x, 0.7); }
static nb_tensor *softplus_b2(nb_ctx *c, nb_tensor *x) { return nb_softplus_ex(c, x, 2.0, 1.5); }
static nb_tensor *hardtanh1(nb_ctx *c, nb_tensor *x) { return nb_hardtanh(c, x, -1.0, 1.0); }

typedef struct {
    const char *name;
    unary_fn f;
    test_domain dom;      /* of the random inputs of the gradient checks */
    const double *in;     /* the (3,4) input of the forward check */
    const double *ref;    /* PyTorch's values there */
} unary_case;

/* Every differentiable unary op of ops.h; the piecewise-constant ones (sign, floor, ceil,
 * round) are in constant_ops_do_not_record. */
static const unary_case UNARY[] = {
    {"neg", nb_neg, DOM_ANY, REF_X, REF_U_NEG},
    {"exp", nb_exp, DOM_ANY, REF_X, REF_U_EXP},
    {"expm1", nb_expm1, DOM_ANY, REF_X, REF_U_EXPM1},
    {"log", nb_log, DOM_POS, REF_P, REF_U_LOG},
    {"log1p", nb_log1p, DOM_POS, REF_P, REF_U_LOG1P},
    {"log2", nb_log2, DOM_POS, REF_P, REF_U_LOG2},
    {"log10", nb_log10, DOM_POS, REF_P, REF_U_LOG10},
    {"sqrt", nb_sqrt, DOM_POS, REF_P, REF_U_SQRT},
    {"rsqrt", nb_rsqrt, DOM_POS, REF_P, REF_U_RSQRT},
    {"square", nb_square, DOM_ANY, REF_X, REF_U_SQUARE},
    {"reciprocal", nb_reciprocal, DOM_AWAY0, REF_X, REF_U_RECIPROCAL},
    {"abs", nb_abs, DOM_AWAY0, REF_X, REF_U_ABS},
    {"erf", nb_erf, DOM_ANY, REF_X, REF_U_ERF},
    {"erfc", nb_erfc, DOM_ANY, REF_X, REF_U_ERFC},
    {"sin", nb_sin, DOM_ANY, REF_X, REF_U_SIN},
    {"cos", nb_cos, DOM_ANY, REF_X, REF_U_COS},
    {"tan", nb_tan, DOM_UNIT, REF_UX, REF_U_TAN},
    {"asin", nb_asin, DOM_UNIT, REF_UX, REF_U_ASIN},
    {"acos", nb_acos, DOM_UNIT, REF_UX, REF_U_ACOS},
    {"atan", nb_atan, DOM_ANY, REF_X, REF_U_ATAN},
    {"sinh", nb_sinh, DOM_ANY, REF_X, REF_U_SINH},
    {"cosh", nb_cosh, DOM_ANY, REF_X, REF_U_COSH},
    {"relu", nb_relu, DOM_AWAY0, REF_X, REF_U_RELU},
    {"leaky_relu", leaky, DOM_AWAY0, REF_X, REF_U_LEAKY_RELU},
    {"elu", elu1, DOM_AWAY0, REF_X, REF_U_ELU},
    {"selu", nb_selu, DOM_AWAY0, REF_X, REF_U_SELU},
    {"celu", celu07, DOM_AWAY0, REF_X, REF_U_CELU},
    {"sigmoid", nb_sigmoid, DOM_ANY, REF_X, REF_U_SIGMOID},
    {"logsigmoid", nb_logsigmoid, DOM_ANY, REF_X, REF_U_LOGSIGMOID},
    {"tanh", nb_tanh, DOM_ANY, REF_X, REF_U_TANH},
    {"gelu", nb_gelu, DOM_ANY, REF_X, REF_U_GELU},
    {"gelu_tanh", nb_gelu_tanh, DOM_ANY, REF_X, REF_U_GELU_TANH},
    {"silu", nb_silu, DOM_ANY, REF_X, REF_U_SILU},
    {"mish", nb_mish, DOM_ANY, REF_X, REF_U_MISH},
    {"softsign", nb_softsign, DOM_AWAY0, REF_X, REF_U_SOFTSIGN},
    {"softplus", nb_softplus, DOM_ANY, REF_X, REF_U_SOFTPLUS},
    {"softplus(beta 2, threshold 1.5)", softplus_b2, DOM_AWAY0, REF_X, REF_U_SOFTPLUS_EX},
    {"hardtanh", hardtanh1, DOM_AWAY0, REF_X, REF_U_HARDTANH},
    {"hardsigmoid", nb_hardsigmoid, DOM_ANY, REF_H, REF_U_HARDSIGMOID},
    {"hardswish", nb_hardswish, DOM_ANY, REF_H, REF_U_HARDSWISH},
    {"clamp", clamp_, DOM_ANY, REF_X, REF_U_CLAMP},
    {"pow_scalar", pow15, DOM_POS, REF_P, REF_U_POW_SCALAR},
    {"cube", cube, DOM_ANY, REF_X, REF_U_CUBE},
    {"affine", affine, DOM_ANY, REF_X, REF_U_AFFINE},
};
#define N_UNARY (int)(sizeof UNARY / sizeof *UNARY)

typedef struct {
    const unary_case *c;
    bool transpose_inside;  /* apply the op to a transposed view made inside the function */
} unary_user;

static nb_tensor *unary_f(nb_ctx *c, nb_tensor *const *in, void *user) {
    const unary_user *u = user;
    nb_tensor *x = u->transpose_inside ? nb_transpose(c, in[0], 0, 1) : in[0];
    return u->c->f(c, x);
}

Test(elementwise, unary_forward_matches_torch) {
    int64_t s[2] = {3, 4};
    for (int k = 0; k < N_UNARY; k++) {
        const unary_case *c = &UNARY[k];
        nb_tensor *x = test_from(ctx, c->in, 2, s);
        nb_tensor *y = c->f(ctx, x);
        cr_assert_not_null(y, "%s: %s", c->name, nb_ctx_error(ctx));
        for (int64_t i = 0; i < 12; i++)
            assert_close(nb_get(y, i), c->ref[i], 1e-12, 1e-12, "(%s element %lld)", c->name, (long long)i);
        /* f32 agrees to f32 precision */
        nb_tensor *y32 = c->f(ctx, nb_cast(ctx, x, NB_F32));
        cr_assert_eq(y32->dtype, NB_F32);
        for (int64_t i = 0; i < 12; i++)
            assert_close(nb_get(y32, i), c->ref[i], 1e-6, 1e-5, "(%s f32 element %lld)", c->name, (long long)i);
    }
}

Test(elementwise, unary_gradients_all_shapes_and_layouts) {
    static const int64_t shapes[][3] = {{5}, {3, 4}, {2, 3, 4}};
    static const int ndims[] = {1, 2, 3};
    for (int k = 0; k < N_UNARY; k++) {
        unary_user u = {&UNARY[k], false};
        for (int si = 0; si < 3; si++)
            for (int lay = LAYOUT_CONTIG; lay <= LAYOUT_SLICE; lay++) {
                nb_mark m = nb_ctx_mark(ctx);
                nb_tensor *x = test_leaf(ctx, ndims[si], shapes[si], (test_layout)lay, UNARY[k].dom);
                char what[96];
                snprintf(what, sizeof what, "%s shape %d layout %d", UNARY[k].name, si, lay);
                check_grads_named(unary_f, 1, &x, &u, si == 1, what);  /* second order on (3,4), all layouts */
                nb_ctx_release(ctx, m);
            }
        /* a transposed view taken inside the function */
        u.transpose_inside = true;
        nb_tensor *x = test_leaf(ctx, NB_SHAPE(4, 3), LAYOUT_CONTIG, UNARY[k].dom);
        check_grads_named(unary_f, 1, &x, &u, true, UNARY[k].name);
    }
}

Test(elementwise, constant_ops_do_not_record) {
    nb_tensor *x = test_leaf(ctx, NB_SHAPE(3, 4), LAYOUT_CONTIG, DOM_AWAY0);
    nb_tensor *s = nb_sign(ctx, x);
    cr_assert(!s->requires_grad && !s->node);
    for (int64_t i = 0; i < 12; i++) cr_assert_eq(nb_get(s, i), nb_get(x, i) > 0 ? 1.0 : -1.0);
    nb_tensor *y = test_from(ctx, REF_X, NB_SHAPE(3, 4));
    static const double sign_ref[12] = {-1, -1, -1, 1, 1, 1, 1, 1, -1, 1, -1, 1};
    assert_values(nb_sign(ctx, y), sign_ref, 12, 0);
    assert_values(nb_sign(ctx, y), REF_U_SIGN, 12, 0);
    /* rounding: PyTorch's values (round: half to even), constants with zero gradient */
    nb_tensor *h = test_from(ctx, REF_H, NB_SHAPE(3, 4));
    nb_requires_grad(h, true);
    nb_tensor *(*rnd[])(nb_ctx *, nb_tensor *) = {nb_floor, nb_ceil, nb_round};
    const double *rref[] = {REF_U_FLOOR, REF_U_CEIL, REF_U_ROUND};
    for (int k = 0; k < 3; k++) {
        nb_tensor *r = rnd[k](ctx, h);
        assert_values(r, rref[k], 12, 0);
        cr_assert(!r->requires_grad && !r->node, "rounding op %d is a constant", k);
        assert_values(rnd[k](ctx, nb_cast(ctx, h, NB_F32)), rref[k], 12, 0);
    }
    nb_tensor *(*cmp[])(nb_ctx *, nb_tensor *, nb_tensor *) = {nb_eq, nb_ne, nb_lt, nb_le, nb_gt, nb_ge};
    nb_tensor *z = nb_scalar(ctx, NB_F64, 0.1);
    for (int k = 0; k < 6; k++) {
        nb_tensor *c = cmp[k](ctx, x, z);
        cr_assert(c && !c->requires_grad && c->dtype == NB_F64);
    }
    /* closed forms of the comparisons at a few points */
    nb_tensor *a = test_from(ctx, (double[]){1, 2, 3}, NB_SHAPE(3)), *b = test_from(ctx, (double[]){2, 2, 2}, NB_SHAPE(3));
    assert_values(nb_eq(ctx, a, b), (double[]){0, 1, 0}, 3, 0);
    assert_values(nb_ne(ctx, a, b), (double[]){1, 0, 1}, 3, 0);
    assert_values(nb_lt(ctx, a, b), (double[]){1, 0, 0}, 3, 0);
    assert_values(nb_le(ctx, a, b), (double[]){1, 1, 0}, 3, 0);
    assert_values(nb_gt(ctx, a, b), (double[]){0, 0, 1}, 3, 0);
    assert_values(nb_ge(ctx, a, b), (double[]){0, 1, 1}, 3, 0);
}

/* ---- binary ops ----------------------------------------------------------------------------- */
typedef nb_tensor *(*binary_fn)(nb_ctx *, nb_tensor *, nb_tensor *);
typedef struct {
    const char *name;
    binary_fn f;
    test_domain da, db;
    const double *ref;  /* at REF_A (3,1,4) (|A|+0.1 for pow) and REF_B (2,4) */
} binary_case;

static const binary_case BINARY[] = {
    {"add", nb_add, DOM_ANY, DOM_ANY, REF_B_ADD},
    {"sub", nb_sub, DOM_ANY, DOM_ANY, REF_B_SUB},
    {"mul", nb_mul, DOM_ANY, DOM_ANY, REF_B_MUL},
    {"div", nb_div, DOM_ANY, DOM_AWAY0, REF_B_DIV},
    {"pow", nb_pow, DOM_POS, DOM_ANY, REF_B_POW},
    {"maximum", nb_maximum, DOM_ANY, DOM_ANY, REF_B_MAXIMUM},
    {"minimum", nb_minimum, DOM_ANY, DOM_ANY, REF_B_MINIMUM},
    {"atan2", nb_atan2, DOM_ANY, DOM_AWAY0, REF_B_ATAN2},
};
#define N_BINARY (int)(sizeof BINARY / sizeof *BINARY)

static nb_tensor *binary_f(nb_ctx *c, nb_tensor *const *in, void *user) {
    return ((const binary_case *)user)->f(c, in[0], in[1]);
}

Test(elementwise, binary_forward_broadcast_matches_torch) {
    double ap[12];
    for (int i = 0; i < 12; i++) ap[i] = fabs(REF_A[i]) + 0.1;
    for (int k = 0; k < N_BINARY; k++) {
        const binary_case *c = &BINARY[k];
        nb_tensor *a = test_from(ctx, c->f == nb_pow ? ap : REF_A, NB_SHAPE(3, 1, 4));
        nb_tensor *b = test_from(ctx, REF_B, NB_SHAPE(2, 4));
        nb_tensor *y = c->f(ctx, a, b);
        cr_assert_not_null(y, "%s: %s", c->name, nb_ctx_error(ctx));
        cr_assert(y->ndim == 3 && y->shape[0] == 3 && y->shape[1] == 2 && y->shape[2] == 4, "%s", c->name);
        for (int64_t i = 0; i < 24; i++)
            assert_close(nb_get(y, i), c->ref[i], 1e-12, 1e-12, "(%s element %lld)", c->name, (long long)i);
    }
}

Test(elementwise, binary_gradients_broadcast_and_layouts) {
    struct {
        int na, nb;
        int64_t sa[3], sb[3];
        test_layout la, lb;
    } shapes[] = {
        {2, 2, {3, 4}, {3, 4}, LAYOUT_CONTIG, LAYOUT_CONTIG},
        {2, 2, {3, 4}, {3, 4}, LAYOUT_T, LAYOUT_SLICE},
        {3, 2, {3, 1, 4}, {2, 4}, LAYOUT_CONTIG, LAYOUT_T},
        {1, 3, {4}, {2, 3, 4}, LAYOUT_SLICE, LAYOUT_CONTIG},
        {0, 2, {0}, {2, 3}, LAYOUT_CONTIG, LAYOUT_T},
        {2, 1, {2, 3}, {1}, LAYOUT_CONTIG, LAYOUT_CONTIG},
        {2, 2, {3, 1}, {1, 4}, LAYOUT_CONTIG, LAYOUT_CONTIG},
    };
    for (int k = 0; k < N_BINARY; k++)
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            nb_mark m = nb_ctx_mark(ctx);
            nb_tensor *in[2] = {test_leaf(ctx, shapes[si].na, shapes[si].sa, shapes[si].la, BINARY[k].da),
                                test_leaf(ctx, shapes[si].nb, shapes[si].sb, shapes[si].lb, BINARY[k].db)};
            char what[64];
            snprintf(what, sizeof what, "%s shapes %zu", BINARY[k].name, si);
            check_grads_named(binary_f, 2, in, (void *)&BINARY[k], si < 3, what);
            nb_ctx_release(ctx, m);
        }
}

/* add_relu is relu(add) in one op: the same bits, and gradients (first and second order) through
 * its output's mask, broadcasting included */
static nb_tensor *add_relu_f(nb_ctx *c, nb_tensor *const *in, void *user) {
    (void)user;
    return nb_add_relu(c, in[0], in[1]);
}

Test(elementwise, add_relu_is_relu_of_add) {
    nb_tensor *a = test_from(ctx, REF_A, NB_SHAPE(3, 1, 4)), *b = test_from(ctx, REF_B, NB_SHAPE(2, 4));
    nb_tensor *y = nb_add_relu(ctx, a, b), *want = nb_relu(ctx, nb_add(ctx, a, b));
    cr_assert(y && want, "%s", nb_ctx_error(ctx));
    cr_assert(nb_same_shape(y, want));
    for (int64_t i = 0; i < 24; i++) {
        cr_assert_eq(nb_get(y, i), nb_get(want, i), "element %lld", (long long)i);
        cr_assert_eq(nb_get(y, i), REF_B_ADD[i] > 0 ? REF_B_ADD[i] : 0.0, "element %lld vs torch's add", (long long)i);
    }
    struct {
        int na, nb;
        int64_t sa[3], sb[3];
        test_layout la, lb;
    } shapes[] = {
        {2, 2, {3, 4}, {3, 4}, LAYOUT_CONTIG, LAYOUT_CONTIG},
        {2, 2, {3, 4}, {3, 4}, LAYOUT_T, LAYOUT_SLICE},
        {3, 2, {3, 1, 4}, {2, 4}, LAYOUT_CONTIG, LAYOUT_T},
    };
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        nb_mark m = nb_ctx_mark(ctx);
        nb_tensor *in[2] = {test_leaf(ctx, shapes[si].na, shapes[si].sa, shapes[si].la, DOM_ANY),
                            test_leaf(ctx, shapes[si].nb, shapes[si].sb, shapes[si].lb, DOM_ANY)};
        char what[64];
        snprintf(what, sizeof what, "add_relu shapes %zu", si);
        check_grads_named(add_relu_f, 2, in, NULL, true, what);
        nb_ctx_release(ctx, m);
    }
}

Test(elementwise, maximum_tie_splits_gradient) {
    nb_tensor *a = test_from(ctx, (double[]){1, 5, 3}, NB_SHAPE(3)), *b = test_from(ctx, (double[]){1, 2, 4}, NB_SHAPE(3));
    nb_requires_grad(a, true);
    nb_requires_grad(b, true);
    nb_tensor *y = nb_sum_all(ctx, nb_maximum(ctx, a, b));
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(a->grad, (double[]){0.5, 1, 0}, 3, 0);
    assert_values(b->grad, (double[]){0.5, 0, 1}, 3, 0);
}

/* equal infinities are a tie, not NaN (inf - inf); NaN on either side wins; f32 and f64 */
Test(elementwise, maximum_minimum_of_infinities_and_nan) {
    const double a[] = {INFINITY, -INFINITY, INFINITY, -INFINITY, NAN, 1.0, 2.0};
    const double b[] = {INFINITY, -INFINITY, -INFINITY, 3.0, 1.0, NAN, 2.0};
    const double mx[] = {INFINITY, -INFINITY, INFINITY, 3.0, NAN, NAN, 2.0};
    const double mn[] = {INFINITY, -INFINITY, -INFINITY, -INFINITY, NAN, NAN, 2.0};
    for (int d = 0; d < 2; d++) {
        const nb_dtype dt = d ? NB_F64 : NB_F32;
        nb_tensor *x = nb_cast(ctx, test_from(ctx, a, NB_SHAPE(7)), dt), *y = nb_cast(ctx, test_from(ctx, b, NB_SHAPE(7)), dt);
        nb_tensor *hi = nb_maximum(ctx, x, y), *lo = nb_minimum(ctx, x, y);
        cr_assert(hi && lo, "%s", nb_ctx_error(ctx));
        for (int i = 0; i < 7; i++) {
            cr_assert(isnan(mx[i]) ? isnan(nb_get(hi, i)) : nb_get(hi, i) == mx[i], "maximum %d: %g", i, nb_get(hi, i));
            cr_assert(isnan(mn[i]) ? isnan(nb_get(lo, i)) : nb_get(lo, i) == mn[i], "minimum %d: %g", i, nb_get(lo, i));
        }
    }
}

/* pow's gradients at a = 0, torch's values: d/da = b a^(b-1) with b = 0 giving 0 (not 0 * inf),
 * d/db = a^b log a giving 0 for b >= 0 (not 0 * -inf); first and second order finite */
Test(elementwise, pow_gradients_at_zero_base) {
    nb_tensor *a = test_from(ctx, (double[]){0, 0, 0, 0, 0}, NB_SHAPE(5));
    nb_tensor *b = test_from(ctx, (double[]){0, 1, 2, 0.5, 3}, NB_SHAPE(5));
    nb_requires_grad(a, true);
    nb_requires_grad(b, true);
    nb_tensor *in[2] = {a, b}, *g[2];
    nb_tensor *y = nb_sum_all(ctx, nb_pow(ctx, a, b));
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 2, in, g, true), NB_OK, "%s", nb_ctx_error(ctx));
    const double ga[] = {0, 1, 0, INFINITY, 0};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(nb_get(g[0], i), ga[i], "d/da at b = %g: %g", nb_get(b, i), nb_get(g[0], i));
        cr_assert_eq(nb_get(g[1], i), 0.0, "d/db at b = %g: %g", nb_get(b, i), nb_get(g[1], i));
    }
}

/* ---- where, cast ---------------------------------------------------------------------------- */
static nb_tensor *where_f(nb_ctx *c, nb_tensor *const *in, void *user) { return nb_where(c, user, in[0], in[1]); }

Test(elementwise, where_values_and_gradients) {
    nb_tensor *cond = nb_gt(ctx, nb_randn(ctx, NB_F64, NB_SHAPE(2, 3, 4)), nb_scalar(ctx, NB_F64, 0.0));
    nb_tensor *in[2] = {test_leaf(ctx, NB_SHAPE(3, 1), LAYOUT_CONTIG, DOM_ANY),
                        test_leaf(ctx, NB_SHAPE(3, 4), LAYOUT_T, DOM_ANY)};
    nb_tensor *y = nb_where(ctx, cond, in[0], in[1]);
    cr_assert(y && y->ndim == 3 && y->shape[0] == 2);
    for (int64_t i = 0; i < 24; i++) {
        int64_t r = (i / 4) % 3, col = i % 4;
        double want = nb_get(cond, i) != 0 ? nb_get(in[0], r) : nb_get(in[1], r * 4 + col);
        cr_assert_eq(nb_get(y, i), want);
    }
    check_grads_named(where_f, 2, in, cond, true, "where");
    /* an i64 mask works too */
    nb_tensor *ic = nb_cast(ctx, cond, NB_I64);
    check_grads_named(where_f, 2, in, ic, false, "where (i64 mask)");
}

Test(elementwise, cast_gradient_keeps_input_dtype) {
    nb_tensor *x = nb_from(ctx, NB_F32, NB_SHAPE(3), (float[]){1.5f, -2.0f, 0.25f});
    nb_requires_grad(x, true);
    nb_tensor *x64 = nb_cast(ctx, x, NB_F64);
    cr_assert_eq(x64->dtype, NB_F64);
    nb_tensor *y = nb_sum_all(ctx, nb_mul(ctx, x64, x64));  /* d/dx = 2x */
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(x->grad->dtype, NB_F32);
    assert_values(x->grad, (double[]){3.0, -4.0, 0.5}, 3, 1e-7);
    /* to i64 truncates and is a constant */
    nb_tensor *i = nb_cast(ctx, x, NB_I64);
    cr_assert(!i->requires_grad);
    assert_values(i, (double[]){1, -2, 0}, 3, 0);
}

/* tanh/sigmoid backward are fused ops with rules of their own: check them through nested
 * activations (the incoming gradient then depends on x) and a third derivative. */
static nb_tensor *nested_tanh(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_tanh(c, nb_mul(c, nb_tanh(c, in[0]), in[1]));
}
static nb_tensor *nested_sigmoid(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_sigmoid(c, nb_mul(c, nb_sigmoid(c, in[0]), in[1]));
}

Test(elementwise, fused_activation_backward_is_differentiable) {
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(3, 4)), *w = rand_leaf(ctx, NB_SHAPE(4));
    check_grads_named(nested_tanh, 2, (nb_tensor *[]){x, w}, NULL, true, "tanh(tanh(x)*w)");
    check_grads_named(nested_sigmoid, 2, (nb_tensor *[]){x, w}, NULL, true, "sigmoid(sigmoid(x)*w)");
    /* third derivative of tanh at x0: d3/dx3 tanh = -2 (1 - t^2)(1 - 3 t^2), t = tanh x0 */
    const double x0 = 0.37, t = tanh(x0);
    nb_tensor *a = nb_scalar(ctx, NB_F64, x0);
    nb_requires_grad(a, true);
    nb_tensor *g1, *g2, *g3, *y = nb_tanh(ctx, a);
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &a, &g1, true), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_grad(ctx, 1, &g1, NULL, 1, &a, &g2, true), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_grad(ctx, 1, &g2, NULL, 1, &a, &g3, false), NB_OK, "%s", nb_ctx_error(ctx));
    assert_close(nb_item(g1), 1 - t * t, 1e-12, 1e-12);
    assert_close(nb_item(g2), -2 * t * (1 - t * t), 1e-12, 1e-12);
    assert_close(nb_item(g3), -2 * (1 - t * t) * (1 - 3 * t * t), 1e-12, 1e-12);
}
