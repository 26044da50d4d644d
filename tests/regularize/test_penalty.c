/* Penalties: values against closed forms, gradients by gradcheck / gradgradcheck (f64). */
#include "common.h"

#include <string.h>

TestSuite(penalty, .init = ctx_setup, .fini = ctx_teardown);

static const double A[6] = {1.0, -2.0, 0.5, 0.0, 3.0, -1.5}; /* (2, 3) */
static const double B[3] = {-0.25, 2.0, 1.0};                /* (3) */

static nb_tensor *leaf(const double *v, int ndim, const int64_t *shape) {
    nb_tensor *t = nb_from(ctx, NB_F64, ndim, shape, v);
    nb_requires_grad(t, true);
    return t;
}

Test(penalty, values_match_closed_forms) {
    nb_tensor *ws[2] = {leaf(A, NB_SHAPE(2, 3)), leaf(B, NB_SHAPE(3))};
    double sq = 0, ab = 0;
    for (int i = 0; i < 6; i++) sq += A[i] * A[i], ab += fabs(A[i]);
    for (int i = 0; i < 3; i++) sq += B[i] * B[i], ab += fabs(B[i]);
    /* Keras regularizers.l2(0.01) = 0.01 * sum(w^2): same convention, no 1/2 */
    assert_close(nb_item(nb_l2_penalty(ctx, 2, ws, 0.01)), 0.01 * sq, 1e-15, 1e-14);
    assert_close(nb_item(nb_l1_penalty(ctx, 2, ws, 0.3)), 0.3 * ab, 1e-15, 1e-14);
    assert_close(nb_item(nb_elastic_net_penalty(ctx, 2, ws, 0.3, 0.01)), 0.3 * ab + 0.01 * sq, 1e-15, 1e-14);
    /* group lasso, axis 0: rows of A, each element of B */
    double rows = sqrt(1 + 4 + 0.25) + sqrt(0 + 9 + 2.25), cols = sqrt(1) + sqrt(4 + 9) + sqrt(0.25 + 2.25);
    double belem = 0.25 + 2 + 1;
    assert_close(nb_item(nb_group_lasso_penalty(ctx, 2, ws, 0.5, 0)), 0.5 * (rows + belem), 1e-15, 1e-14);
    /* axis 1: columns of A; B has no axis 1, so it is one group */
    assert_close(nb_item(nb_group_lasso_penalty(ctx, 2, ws, 0.5, 1)), 0.5 * (cols + sqrt(0.0625 + 4 + 1)), 1e-15, 1e-14);
}

typedef struct {
    int kind, axis;
} pen_arg;
static nb_tensor *pen_fn(nb_ctx *c, nb_tensor *const *in, void *user) {
    const pen_arg *a = user;
    switch (a->kind) {
    case 0: return nb_l2_penalty(c, 2, in, 0.7);
    case 1: return nb_l1_penalty(c, 2, in, 0.7);
    case 2: return nb_elastic_net_penalty(c, 2, in, 0.3, 0.2);
    default: return nb_group_lasso_penalty(c, 2, in, 0.4, a->axis);
    }
}

Test(penalty, gradcheck_every_penalty) {
    /* random values: no element exactly at L1's kink */
    nb_tensor *ws[2] = {rand_leaf(ctx, NB_SHAPE(3, 4)), rand_leaf(ctx, NB_SHAPE(2, 2, 3))};
    const char *names[] = {"l2", "l1", "elastic", "group0", "group1", "group2"};
    pen_arg args[] = {{0, 0}, {1, 0}, {2, 0}, {3, 0}, {3, 1}, {3, 2}};
    for (int k = 0; k < 6; k++) {
        nb_gradcheck_report r;
        cr_assert_eq(nb_gradcheck(ctx, pen_fn, 2, ws, &args[k], NULL, &r), NB_OK, "%s: %s", names[k], r.message);
        if (k != 1 && k != 2) /* |w| has a zero second derivative but a kink: skip L1 terms */
            cr_assert_eq(nb_gradgradcheck(ctx, pen_fn, 2, ws, &args[k], NULL, &r), NB_OK, "%s: %s", names[k], r.message);
    }
}

/* L2, L1 and elastic net take one pass each way per tensor (sum of squares / of absolute values
 * with a closed-form backward); they must give the bits of the composition they replace,
 * lambda * sum_k sum_all(w*w or |w|), in value and gradients, with create_graph off (the
 * closed form) and on (a graph term), on contiguous, transposed and 0-d tensors with exact and
 * negative zeros, and with a second use of a weight (the engine adds the two gradients). */
static nb_tensor *composite(nb_ctx *c, int kind, int n, nb_tensor *const *ws) {
    nb_tensor *sq = NULL, *ab = NULL;
    for (int k = 0; k < n; k++) {
        nb_tensor *s = nb_sum_all(c, nb_mul(c, ws[k], ws[k])), *a = nb_sum_all(c, nb_abs(c, ws[k]));
        sq = sq ? nb_add(c, sq, s) : s;
        ab = ab ? nb_add(c, ab, a) : a;
    }
    return kind == 0 ? nb_mul_scalar(c, sq, 0.7) : kind == 1 ? nb_mul_scalar(c, ab, 0.7)
                                                            : nb_add(c, nb_mul_scalar(c, ab, 0.3), nb_mul_scalar(c, sq, 0.2));
}
static void same_bits(const nb_tensor *a, const nb_tensor *b, const char *what) {
    cr_assert(a && b && a->numel == b->numel, "%s", what);
    for (int64_t i = 0; i < a->numel; i++) {
        const double u = nb_get(a, i), v = nb_get(b, i);
        cr_assert(memcmp(&u, &v, sizeof u) == 0, "%s: element %lld %.17g, composite %.17g", what, (long long)i, u, v);
    }
}

Test(penalty, one_pass_terms_give_the_composites_bits) {
    for (int d = 0; d < 2; d++) {
        const nb_dtype dt = d ? NB_F64 : NB_F32;
        nb_tensor *w0 = nb_randn(ctx, dt, NB_SHAPE(7, 151)), *w1 = nb_randn(ctx, dt, NB_SHAPE(4, 3)), *w2 = nb_randn(ctx, dt, 0, NULL);
        nb_set(w0, 3, 0.0), nb_set(w0, 4, -0.0), nb_set(w1, 5, -0.0);
        nb_tensor *leaves[3] = {w0, w1, w2};
        for (int i = 0; i < 3; i++) nb_requires_grad(leaves[i], true);
        nb_tensor *ws[3] = {w0, nb_transpose(ctx, w1, 0, 1), w2};
        nb_tensor *cw = nb_randn(ctx, dt, NB_SHAPE(7, 151));
        for (int kind = 0; kind < 3; kind++)
            for (int cg = 0; cg < 2; cg++) {
                nb_tensor *pen[2] = {kind == 0   ? nb_l2_penalty(ctx, 3, ws, 0.7)
                                     : kind == 1 ? nb_l1_penalty(ctx, 3, ws, 0.7)
                                                 : nb_elastic_net_penalty(ctx, 3, ws, 0.3, 0.2),
                                     composite(ctx, kind, 3, ws)},
                          *g[2][3];
                char what[96];
                snprintf(what, sizeof what, "%s kind %d create_graph %d", nb_dtype_name(dt), kind, cg);
                same_bits(pen[0], pen[1], what);
                for (int v = 0; v < 2; v++) {
                    nb_tensor *loss = nb_add(ctx, pen[v], nb_sum_all(ctx, nb_mul(ctx, w0, cw)));
                    cr_assert_eq(nb_grad(ctx, 1, &loss, NULL, 3, leaves, g[v], cg), NB_OK, "%s", nb_ctx_error(ctx));
                }
                for (int i = 0; i < 3; i++) same_bits(g[0][i], g[1][i], what);
                if (cg && kind != 1) cr_assert(g[0][0]->requires_grad, "create_graph: the gradient is a graph term");
            }
        nb_ctx_reset(ctx);
    }
}

/* nb_backward keeps a parameter's penalty term back and adds it into .grad after the layer's
 * gradient (which the GEMM then writes first): the bits of the composite's gradient, where the
 * engine sums tensors, for a weight used by one layer, a bias, and a parameter used only by
 * the penalty; and the same in anomaly mode (no term kept back). */
static void penalty_grads(int kind, bool composite_form, int mode, float *out) {
    nb_params *ps = nb_params_new();
    nb_tensor *w = nb_params_add(ps, "w", NB_SHAPE(5, 9)), *b = nb_params_add(ps, "b", NB_SHAPE(5));
    nb_tensor *u = nb_params_add(ps, "u", NB_SHAPE(3, 3));
    nb_rng r = nb_rng_new(3);
    nb_rng_normal(&r, w, 0, 1), nb_rng_normal(&r, b, 0, 1), nb_rng_normal(&r, u, 0, 1);
    nb_set(w, 7, 0.0), nb_set(u, 2, -0.0);
    if (mode == 1) nb_ctx_set_anomaly(ctx, true);
    const bool all[3] = {true, true, true};
    nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(4, 9)), *cw = nb_randn(ctx, NB_F32, NB_SHAPE(4, 5));
    nb_tensor *y = nb_linear_act(ctx, x, w, b, NB_ACT_RELU, 0.0);
    nb_tensor *pen = composite_form ? composite(ctx, kind, 3, ps->p)
                     : kind == 0   ? nb_l2_penalty_params(ctx, ps, all, 0.7)
                     : kind == 1   ? nb_l1_penalty_params(ctx, ps, all, 0.7)
                                   : nb_elastic_net_penalty_params(ctx, ps, all, 0.3, 0.2);
    nb_tensor *loss = nb_add(ctx, nb_sum_all(ctx, nb_mul(ctx, y, cw)), pen);
    nb_params_zero_grad(ps);
    cr_assert_eq(nb_backward(ctx, loss, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    memset(out, 0, 128 * sizeof *out);
    memcpy(out, ps->grad_flat, (size_t)ps->total * sizeof *out);
    nb_ctx_set_anomaly(ctx, false);
    nb_ctx_reset(ctx);
    nb_params_free(ps);
}

Test(penalty, kept_back_terms_give_the_composites_bits) {
    float g[2][128];
    for (int kind = 0; kind < 3; kind++)
        for (int mode = 0; mode < 2; mode++) {
            nb_ctx_seed(ctx, 9), penalty_grads(kind, false, mode, g[0]);
            nb_ctx_seed(ctx, 9), penalty_grads(kind, true, mode, g[1]);
            for (int i = 0; i < 128; i++)
                cr_assert(memcmp(&g[0][i], &g[1][i], sizeof(float)) == 0, "kind %d mode %d element %d: %.9g, composite %.9g",
                          kind, mode, i, g[0][i], g[1][i]);
        }
}

/* The other use summed by the engine (an element-wise product, not a GEMM writing .grad): the
 * kept-back terms are added one by one after it, the bits of nb_grad's graph terms, also for
 * the elastic net's two terms (they were grouped first: 162 of 561 f32 elements differed). */
Test(penalty, kept_back_terms_match_nb_grad_after_a_summed_use) {
    nb_params *ps = nb_params_new();
    nb_tensor *W = nb_params_add(ps, "W", NB_SHAPE(33, 17));
    nb_rng r = nb_rng_new(5);
    nb_rng_normal(&r, W, 0, 1);
    for (int kind = 0; kind < 3; kind++) {
        nb_params_zero_grad(ps);
        nb_tensor *a = nb_randn(ctx, NB_F32, NB_SHAPE(33, 17)), *g;
        nb_tensor *pen = kind == 0   ? nb_l2_penalty(ctx, 1, &W, 0.37)
                         : kind == 1 ? nb_l1_penalty(ctx, 1, &W, 0.37)
                                     : nb_elastic_net_penalty(ctx, 1, &W, 0.37, 0.11);
        nb_tensor *loss = nb_add(ctx, nb_sum_all(ctx, nb_mul(ctx, W, a)), pen);
        cr_assert_eq(nb_grad(ctx, 1, &loss, NULL, 1, &W, &g, false), NB_OK, "%s", nb_ctx_error(ctx));
        cr_assert_eq(nb_backward(ctx, loss, NULL), NB_OK, "%s", nb_ctx_error(ctx));
        same_bits(W->grad, g, kind == 0 ? "l2" : kind == 1 ? "l1" : "elastic net");
        nb_ctx_reset(ctx);
    }
    nb_params_free(ps);
}

Test(penalty, group_lasso_zero_group_has_zero_gradient) {
    const double z[6] = {0, 0, 0, 1, 2, 2};
    nb_tensor *w = leaf(z, NB_SHAPE(2, 3));
    nb_tensor *p = nb_group_lasso_penalty(ctx, 1, &w, 1.0, 0);
    assert_close(nb_item(p), 3.0, 1e-15, 0);
    cr_assert_eq(nb_backward(ctx, p, NULL), NB_OK);
    for (int i = 0; i < 3; i++) cr_assert_eq(nb_get(w->grad, i), 0.0, "zero group: grad %g", nb_get(w->grad, i));
    assert_close(nb_get(w->grad, 4), 2.0 / 3.0, 1e-15, 0);
}

Test(penalty, params_form_follows_decay_flags) {
    nb_params *ps = nb_params_new();
    nb_tensor *W = nb_params_add(ps, "W", NB_SHAPE(2, 2)), *b = nb_params_add(ps, "b", NB_SHAPE(2));
    nb_fill(W, 2.0), nb_fill(b, 3.0);
    assert_close(nb_item(nb_l2_penalty_params(ctx, ps, NULL, 0.1)), 0.1 * 16, 1e-6, 0);     /* bias excluded */
    assert_close(nb_item(nb_l1_penalty_params(ctx, ps, NULL, 0.1)), 0.1 * 8, 1e-6, 0);
    const bool both[2] = {true, true}, none[2] = {false, false};
    assert_close(nb_item(nb_l2_penalty_params(ctx, ps, both, 0.1)), 0.1 * (16 + 18), 1e-6, 0); /* overridden */
    assert_close(nb_item(nb_elastic_net_penalty_params(ctx, ps, both, 1, 1)), 8 + 6 + 16 + 18, 1e-5, 0);
    assert_close(nb_item(nb_group_lasso_penalty_params(ctx, ps, NULL, 1, 0)), 2 * sqrt(8.0), 1e-6, 0);
    assert_close(nb_item(nb_l2_penalty_params(ctx, ps, none, 0.1)), 0.0, 0, 0);
    /* the gradient lands in the flat gradient buffer: d/dW 0.1*sum W^2 = 0.2 W */
    nb_params_zero_grad(ps);
    cr_assert_eq(nb_backward(ctx, nb_l2_penalty_params(ctx, ps, NULL, 0.1), NULL), NB_OK);
    assert_close(nb_get(W->grad, 0), 0.4, 1e-6, 0);
    cr_assert_eq(nb_get(b->grad, 0), 0.0);
    nb_params_free(ps);
}

Test(penalty, bad_arguments) {
    nb_tensor *w = leaf(B, NB_SHAPE(3));
    cr_assert_null(nb_l2_penalty(ctx, 1, &w, -0.1));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_VALUE);
    cr_assert(strstr(nb_ctx_error(ctx), "l2_penalty: lambda = -0.1"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_l1_penalty(ctx, 1, &w, NAN));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_VALUE);
    nb_ctx_clear_error(ctx);
    nb_tensor *mixed[2] = {w, nb_ones(ctx, NB_F32, NB_SHAPE(2))};
    cr_assert_null(nb_l2_penalty(ctx, 2, mixed, 0.1));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_DTYPE);
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_group_lasso_penalty(ctx, 1, &w, 0.1, -1));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_AXIS);
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_l2_penalty(ctx, 0, NULL, 0.1));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_NULL);
}

/* ---- gradient penalty ------------------------------------------------------------------- */
/* a small critic, out_i = sum_j c_j tanh(a_j x_ij + x_ij^2 / 2): x (N, 3), a and c (1, 3) */
static nb_tensor *critic(nb_ctx *c, nb_tensor *x, nb_tensor *a, nb_tensor *w) {
    nb_tensor *h = nb_add(c, nb_mul(c, a, x), nb_mul_scalar(c, nb_mul(c, x, x), 0.5));
    int ax = 1;
    return nb_sum(c, nb_mul(c, nb_tanh(c, h), w), 1, &ax, false);
}
static nb_tensor *gp_fn(nb_ctx *c, nb_tensor *const *in, void *user) {
    double target = *(const double *)user;
    return nb_gradient_penalty(c, critic(c, in[0], in[1], in[2]), in[0], target, 2.5);
}

Test(penalty, gradient_penalty_linear_closed_form) {
    /* out = x w: every sample's input gradient is w, so GP = lambda (||w|| - 1)^2 */
    const double wv[3] = {1.0, 2.0, 2.0};
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(5, 3)), *w = leaf(wv, NB_SHAPE(3, 1));
    nb_tensor *gp = nb_gradient_penalty(ctx, nb_matmul(ctx, x, w), x, 1.0, 10.0);
    cr_assert_not_null(gp, "%s", nb_ctx_error(ctx));
    assert_close(nb_item(gp), 10.0 * 4.0, 1e-12, 1e-12);
    /* target 0: lambda * ||w||^2 */
    assert_close(nb_item(nb_gradient_penalty(ctx, nb_matmul(ctx, x, w), x, 0.0, 10.0)), 90.0, 1e-12, 1e-12);
    /* d/dw lambda (||w|| - 1)^2 = 2 lambda (||w|| - 1) w / ||w|| */
    cr_assert_eq(nb_backward(ctx, gp, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    for (int i = 0; i < 3; i++) assert_close(nb_get(w->grad, i), 2 * 10.0 * 2.0 * wv[i] / 3.0, 1e-12, 1e-12);
}

Test(penalty, gradient_penalty_gradcheck_and_gradgradcheck, .timeout = 60) {
    nb_tensor *in[3] = {rand_leaf(ctx, NB_SHAPE(4, 3)), rand_leaf(ctx, NB_SHAPE(1, 3)), rand_leaf(ctx, NB_SHAPE(1, 3))};
    const double targets[2] = {1.0, 0.0};
    for (int t = 0; t < 2; t++) {
        nb_gradcheck_report r;
        cr_assert_eq(nb_gradcheck(ctx, gp_fn, 3, in, (void *)&targets[t], NULL, &r), NB_OK, "target %g: %s", targets[t],
                     r.message);
        cr_assert_eq(nb_gradgradcheck(ctx, gp_fn, 3, in, (void *)&targets[t], NULL, &r), NB_OK, "target %g: %s",
                     targets[t], r.message);
    }
}

Test(penalty, gradient_penalty_errors) {
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(2, 3));
    nb_tensor *w = rand_leaf(ctx, NB_SHAPE(3, 1));
    cr_assert_null(nb_gradient_penalty(ctx, nb_matmul(ctx, x, w), x, 1.0, 1.0));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_STATE);
    cr_assert(strstr(nb_ctx_error(ctx), "x does not require grad"));
    nb_ctx_clear_error(ctx);
    nb_requires_grad(x, true);
    cr_assert_null(nb_gradient_penalty(ctx, nb_matmul(ctx, x, w), x, 1.0, -1.0));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_VALUE);
}
