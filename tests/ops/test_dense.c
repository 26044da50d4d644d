/* nb_linear_act (src/ops/dense.c): values and gradients against the unfused composition
 * dropout(act(linear(x, w, b))), gradcheck and gradgradcheck per activation, eval mode, thread
 * independence, the layer option and bad arguments. */
#include "common.h"

#include <string.h>

TestSuite(dense, .init = ctx_setup, .fini = ctx_teardown);

static const nb_act ACTS[] = {NB_ACT_NONE, NB_ACT_RELU, NB_ACT_GELU, NB_ACT_TANH, NB_ACT_SIGMOID};
static const char *const ACT_NAMES[] = {"none", "relu", "gelu", "tanh", "sigmoid"};

static nb_tensor *unfused(nb_ctx *c, nb_tensor *x, nb_tensor *w, nb_tensor *b, nb_act act, double p) {
    nb_tensor *u = nb_linear(c, x, w, b);
    nb_tensor *h = act == NB_ACT_RELU      ? nb_relu(c, u)
                   : act == NB_ACT_GELU    ? nb_gelu(c, u)
                   : act == NB_ACT_TANH    ? nb_tanh(c, u)
                   : act == NB_ACT_SIGMOID ? nb_sigmoid(c, u)
                                           : u;
    return nb_dropout(c, h, p);
}

/* y and the gradients of sum(y * cw) w.r.t. x, w, b (b may be NULL): out[0] y, out[1..3] */
static void run(bool fused, nb_tensor *x, nb_tensor *w, nb_tensor *b, nb_act act, double p, nb_tensor *cw,
                nb_tensor **out) {
    nb_ctx_seed(ctx, 77);
    nb_tensor *y = fused ? nb_linear_act(ctx, x, w, b, act, p) : unfused(ctx, x, w, b, act, p);
    cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
    nb_tensor *ins[3] = {x, w, b}, *loss = nb_sum_all(ctx, nb_mul(ctx, y, cw));
    cr_assert_eq(nb_grad(ctx, 1, &loss, NULL, b ? 3 : 2, ins, out + 1, false), NB_OK, "%s", nb_ctx_error(ctx));
    out[0] = y;
    if (!b) out[3] = NULL;
}

/* max |a - b| / max |b|, normwise (a gradient that is a sum of products may cancel in some
 * element); 0 exactly when the bits are equal */
static double max_rel(const nb_tensor *a, const nb_tensor *b) {
    if (!a && !b) return 0;
    cr_assert_eq(a->numel, b->numel);
    double diff = 0, scale = 1e-300;
    for (int64_t i = 0; i < a->numel; i++) {
        const double u = nb_get(a, i), v = nb_get(b, i);
        scale = fmax(scale, fabs(v));
        if (u != v && !(isnan(u) && isnan(v))) diff = fmax(diff, u != u || v != v ? INFINITY : fabs(u - v));
    }
    return diff == 0 ? 0 : fmax(diff / scale, 1e-300);
}

static nb_tensor *leaf(nb_dtype dt, int ndim, const int64_t *shape, double sd) {
    nb_tensor *t = nb_randn(ctx, dt, ndim, shape);
    t = nb_mul_scalar(ctx, t, sd);
    nb_requires_grad(t, true);
    return t;
}

/* Values are always the same bits; gradients the same bits without dropout (gelu: its backward
 * rule is a chain of ops, the fused derivative one expression: within rounding), and with
 * dropout for none and relu (the mask is 0 or a constant, D = mask * 0/1); for tanh, sigmoid
 * and gelu with dropout, g * (mask act') against (g * mask) act': within rounding (measured:
 * up to 1.4 ulps of the largest element, normwise). */
Test(dense, same_values_and_gradients_as_the_unfused_composition) {
    const int64_t xs[2][3] = {{5, 7}, {2, 3, 7}};
    for (int d = 0; d < 2; d++)
        for (int shp = 0; shp < 2; shp++)
            for (int withb = 0; withb < 2; withb++)
                for (int q = 0; q < 2; q++)
                    for (size_t k = 0; k < sizeof ACTS / sizeof *ACTS; k++) {
                        const nb_dtype dt = d ? NB_F64 : NB_F32;
                        const double p = q ? 0.4 : 0.0, ulp = d ? 0x1p-52 : 0x1p-23;
                        nb_tensor *x = leaf(dt, shp ? 3 : 2, xs[shp], 1.0), *w = leaf(dt, NB_SHAPE(6, 7), 0.5);
                        nb_tensor *b = withb ? leaf(dt, NB_SHAPE(6), 0.5) : NULL;
                        nb_tensor *cw = nb_randn(ctx, dt, shp ? 3 : 2, shp ? (int64_t[]){2, 3, 6} : (int64_t[]){5, 6});
                        nb_tensor *f[4], *u[4];
                        run(true, x, w, b, ACTS[k], p, cw, f);
                        run(false, x, w, b, ACTS[k], p, cw, u);
                        const bool exact = ACTS[k] == NB_ACT_NONE || ACTS[k] == NB_ACT_RELU || (p == 0 && ACTS[k] != NB_ACT_GELU);
                        cr_assert_eq(max_rel(f[0], u[0]), 0, "%s %s p %g: values differ", nb_dtype_name(dt), ACT_NAMES[k], p);
                        for (int g = 1; g < 4; g++) {
                            const double r = max_rel(f[g], u[g]);
                            
                            cr_assert(exact ? r == 0 : r <= 4 * ulp, "%s %s p %g bias %d: gradient %d off by %g (%s)",
                                      nb_dtype_name(dt), ACT_NAMES[k], p, withb, g, r, exact ? "exact expected" : "rounding");
                        }
                        nb_ctx_reset(ctx);
                    }
}

/* every evaluation reseeds, so every call draws the same mask */
static nb_tensor *fused_fn(nb_ctx *c, nb_tensor *const *in, void *user) {
    nb_ctx_seed(c, 9);
    return nb_linear_act(c, in[0], in[1], in[2], *(const nb_act *)user, 0.35);
}

Test(dense, gradcheck_and_gradgradcheck_every_activation) {
    for (size_t k = 0; k < sizeof ACTS / sizeof *ACTS; k++) {
        /* relu: inputs away from its kink, through a positive weight */
        const bool relu = ACTS[k] == NB_ACT_RELU;
        nb_tensor *in[3] = {nb_add_scalar(ctx, nb_rand(ctx, NB_F64, NB_SHAPE(4, 3)), relu ? 0.5 : -0.5),
                            nb_add_scalar(ctx, nb_rand(ctx, NB_F64, NB_SHAPE(5, 3)), relu ? 0.2 : -0.5),
                            nb_add_scalar(ctx, nb_rand(ctx, NB_F64, NB_SHAPE(5)), -0.5)};
        for (int i = 0; i < 3; i++) nb_requires_grad(in[i], true);
        nb_gradcheck_report r;
        cr_assert_eq(nb_gradcheck(ctx, fused_fn, 3, in, (void *)&ACTS[k], NULL, &r), NB_OK, "%s: %s", ACT_NAMES[k], r.message);
        cr_assert_eq(nb_gradgradcheck(ctx, fused_fn, 3, in, (void *)&ACTS[k], NULL, &r), NB_OK, "%s: %s", ACT_NAMES[k],
                     r.message);
        nb_ctx_reset(ctx);
    }
}

Test(dense, eval_mode_applies_no_dropout_and_draws_nothing) {
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(4, 3)), *w = nb_randn(ctx, NB_F64, NB_SHAPE(5, 3));
    nb_tensor *b = nb_randn(ctx, NB_F64, NB_SHAPE(5));
    nb_ctx_set_train(ctx, false);
    const uint64_t off = nb_ctx_rng(ctx)->offset;
    nb_tensor *y = nb_linear_act(ctx, x, w, b, NB_ACT_TANH, 0.5), *want = nb_tanh(ctx, nb_linear(ctx, x, w, b));
    cr_assert_eq(max_rel(y, want), 0);
    cr_assert_eq(nb_ctx_rng(ctx)->offset, off);
    nb_ctx_set_train(ctx, true);
    nb_tensor *yt = nb_linear_act(ctx, x, w, b, NB_ACT_TANH, 0.5);
    cr_assert_eq(nb_ctx_rng(ctx)->offset, off + 5, "20 mask elements: 5 Philox blocks");
    int zeros = 0;
    for (int64_t i = 0; i < 20; i++) {
        const double v = nb_get(yt, i);
        zeros += v == 0;
        cr_assert(v == 0 || v == nb_get(want, i) * 2, "element %lld: %g", (long long)i, v);
    }
    cr_assert(zeros > 0 && zeros < 20);
}

/* above the parallel thresholds (the element-wise one, and the lower one for a dropout mask or a
 * transcendental activation, which a 64x130 layer crosses): the same output and gradients for 1,
 * 2 and 3 threads, with and without recording (no-grad computes no derivative but the same values) */
Test(dense, same_bits_for_any_thread_count) {
    static const int64_t ROWS[] = {300, 64};
    static const nb_act ACT[] = {NB_ACT_GELU, NB_ACT_RELU};
    for (int c = 0; c < 2; c++) {
        nb_tensor *x = leaf(NB_F32, NB_SHAPE(ROWS[c], 64), 1.0), *w = leaf(NB_F32, NB_SHAPE(130, 64), 0.2);
        nb_tensor *b = leaf(NB_F32, NB_SHAPE(130), 0.2), *cw = nb_randn(ctx, NB_F32, NB_SHAPE(ROWS[c], 130));
        nb_tensor *ref[4], *got[4];
        for (int t = 1; t <= 3; t++) {
            nb_set_num_threads(t);
            run(true, x, w, b, ACT[c], 0.25, cw, t == 1 ? ref : got);
            for (int g = 0; t > 1 && g < 4; g++)
                cr_assert_eq(max_rel(got[g], ref[g]), 0, "%lld rows, %d threads: output %d", (long long)ROWS[c], t, g);
            nb_ctx_seed(ctx, 77);
            nb_tensor *y;
            NB_NO_GRAD(ctx) y = nb_linear_act(ctx, x, w, b, ACT[c], 0.25);
            cr_assert_eq(max_rel(y, ref[0]), 0, "%lld rows, %d threads, no grad", (long long)ROWS[c], t);
        }
    }
    nb_set_num_threads(2);
}

Test(dense, linear_layer_option_is_linear_act) {
    nb_params *ps = nb_params_new();
    nb_rng rng = nb_rng_new(3);
    nb_linear_layer l;
    cr_assert_eq(nb_linear_layer_init(&l, ps, "fc", 4, 3, true, &rng), NB_OK);
    cr_assert(l.act == NB_ACT_NONE && l.dropout == 0);
    nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(6, 4));
    cr_assert_eq(max_rel(nb_linear_layer_forward(ctx, &l, x), nb_linear(ctx, x, l.weight, l.bias)), 0);
    l.act = NB_ACT_SIGMOID, l.dropout = 0.3;
    nb_ctx_seed(ctx, 5);
    nb_tensor *y = nb_linear_layer_forward(ctx, &l, x);
    nb_ctx_seed(ctx, 5);
    cr_assert_eq(max_rel(y, nb_linear_act(ctx, x, l.weight, l.bias, NB_ACT_SIGMOID, 0.3)), 0);
    nb_params_free(ps);
}

Test(dense, bad_arguments_name_the_op) {
    nb_tensor *x = nb_ones(ctx, NB_F32, NB_SHAPE(2, 3)), *w = nb_ones(ctx, NB_F32, NB_SHAPE(4, 3));
    nb_tensor *b = nb_ones(ctx, NB_F32, NB_SHAPE(4)), *b5 = nb_ones(ctx, NB_F32, NB_SHAPE(5));
    nb_tensor *w64 = nb_ones(ctx, NB_F64, NB_SHAPE(4, 3)), *w2 = nb_ones(ctx, NB_F32, NB_SHAPE(4, 2));
    const struct {
        nb_tensor *x, *w, *b;
        int act;
        double p;
        nb_status st;
        const char *msg;
    } cases[] = {
        {x, w, b, 7, 0.1, NB_ERR_VALUE, "linear_act: unknown activation 7"},
        {x, w, b, NB_ACT_RELU, 1.0, NB_ERR_VALUE, "linear_act: dropout_p = 1 outside [0, 1)"},
        {x, w, b, NB_ACT_RELU, NAN, NB_ERR_VALUE, "dropout_p = nan"},
        {x, w2, b, NB_ACT_RELU, 0, NB_ERR_SHAPE, "linear_act: input (2,3), weight (4,2) and bias (4) do not fit"},
        {x, w, b5, NB_ACT_RELU, 0, NB_ERR_SHAPE, "bias (5) do not fit"},
        {x, w64, NULL, NB_ACT_RELU, 0, NB_ERR_DTYPE, "linear_act: input f32, weight f64, bias NULL"},
        {NULL, w, b, NB_ACT_RELU, 0, NB_ERR_NULL, "linear_act"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_ctx_clear_error(ctx);
        cr_assert_null(nb_linear_act(ctx, cases[i].x, cases[i].w, cases[i].b, (nb_act)cases[i].act, cases[i].p));
        cr_assert_eq(nb_ctx_status(ctx), cases[i].st, "case %zu: %s", i, nb_ctx_error(ctx));
        cr_assert(strstr(nb_ctx_error(ctx), cases[i].msg), "case %zu: %s", i, nb_ctx_error(ctx));
    }
    nb_ctx_clear_error(ctx);
    cr_assert_not_null(nb_linear_act(ctx, x, w, NULL, NB_ACT_RELU, 0.5), "the context works again");
}
