/* Reductions, softmax family, argmax and sum_to (src/ops/reduce.c). */
#include "common.h"
#include "ref/torch_refs.h"

TestSuite(reduce, .init = ctx_setup, .fini = ctx_teardown);

static const int AX1[] = {1}, AX02[] = {0, 2}, AXL[] = {-1}, AX0[] = {0}, AX2[] = {2};

static nb_tensor *sum_1(nb_ctx *c, nb_tensor *x) { return nb_sum(c, x, 1, AX1, false); }
static nb_tensor *mean_02(nb_ctx *c, nb_tensor *x) { return nb_mean(c, x, 2, AX02, false); }
static nb_tensor *max_last(nb_ctx *c, nb_tensor *x) { return nb_max(c, x, 1, AXL, false); }
static nb_tensor *min_0(nb_ctx *c, nb_tensor *x) { return nb_min(c, x, 1, AX0, false); }
static nb_tensor *var_2(nb_ctx *c, nb_tensor *x) { return nb_var(c, x, 1, AX2, 1, false); }
static nb_tensor *var_all0(nb_ctx *c, nb_tensor *x) { return nb_var(c, x, 0, NULL, 0, false); }
static nb_tensor *lse_1(nb_ctx *c, nb_tensor *x) { return nb_logsumexp(c, x, 1, AX1, false); }
static nb_tensor *softmax_1(nb_ctx *c, nb_tensor *x) { return nb_softmax(c, x, 1); }
static nb_tensor *log_softmax_l(nb_ctx *c, nb_tensor *x) { return nb_log_softmax(c, x, -1); }
static nb_tensor *sum_all(nb_ctx *c, nb_tensor *x) { return nb_sum_all(c, x); }
static nb_tensor *mean_keep_1(nb_ctx *c, nb_tensor *x) { return nb_mean(c, x, 1, AX1, true); }
static nb_tensor *max_keep_02(nb_ctx *c, nb_tensor *x) { return nb_max(c, x, 2, AX02, true); }
static nb_tensor *sum_to_31(nb_ctx *c, nb_tensor *x) { return nb_sum_to(c, x, NB_SHAPE(3, 1)); }

typedef struct {
    const char *name;
    nb_tensor *(*f)(nb_ctx *, nb_tensor *);
    const double *ref;  /* PyTorch at REF_R (2,3,4), NULL if checked elsewhere */
    int64_t n, ndim, shape[3];
} reduce_case;

static const reduce_case CASES[] = {
    {"sum_1", sum_1, REF_R_SUM_1, 8, 2, {2, 4}},
    {"mean_02", mean_02, REF_R_MEAN_02, 3, 1, {3}},
    {"max_last", max_last, REF_R_MAX_LAST, 6, 2, {2, 3}},
    {"min_0", min_0, REF_R_MIN_0, 12, 2, {3, 4}},
    {"var_2", var_2, REF_R_VAR_2, 6, 2, {2, 3}},
    {"var_all0", var_all0, REF_R_VAR_ALL0, 1, 0, {0}},
    {"logsumexp_1", lse_1, REF_R_LOGSUMEXP_1, 8, 2, {2, 4}},
    {"softmax_1", softmax_1, REF_R_SOFTMAX_1, 24, 3, {2, 3, 4}},
    {"log_softmax_last", log_softmax_l, REF_R_LOG_SOFTMAX_LAST, 24, 3, {2, 3, 4}},
    {"sum_all", sum_all, REF_R_SUM_ALL, 1, 0, {0}},
    {"mean_keep_1", mean_keep_1, REF_R_MEAN_KEEP_1, 8, 3, {2, 1, 4}},
    {"max_keep_02", max_keep_02, NULL, 3, 3, {1, 3, 1}},
    {"sum_to_31", sum_to_31, NULL, 3, 2, {3, 1}},
};
#define N_CASES (int)(sizeof CASES / sizeof *CASES)

static nb_tensor *case_f(nb_ctx *c, nb_tensor *const *in, void *user) { return ((const reduce_case *)user)->f(c, in[0]); }

Test(reduce, forward_matches_torch_and_shapes) {
    nb_tensor *x = test_from(ctx, REF_R, NB_SHAPE(2, 3, 4));
    for (int k = 0; k < N_CASES; k++) {
        const reduce_case *c = &CASES[k];
        nb_tensor *y = c->f(ctx, x);
        cr_assert_not_null(y, "%s: %s", c->name, nb_ctx_error(ctx));
        cr_assert_eq(y->ndim, c->ndim, "%s: ndim %d", c->name, y->ndim);
        for (int d = 0; d < c->ndim; d++) cr_assert_eq(y->shape[d], c->shape[d], "%s: axis %d", c->name, d);
        if (c->ref)
            for (int64_t i = 0; i < c->n; i++)
                assert_close(nb_get(y, i), c->ref[i], 1e-12, 1e-12, "(%s element %lld)", c->name, (long long)i);
    }
    /* closed forms for the two without references */
    nb_tensor *m = max_keep_02(ctx, x);
    for (int r = 0; r < 3; r++) {
        double best = -INFINITY;
        for (int b = 0; b < 2; b++)
            for (int j = 0; j < 4; j++) best = fmax(best, REF_R[b * 12 + r * 4 + j]);
        cr_assert_eq(nb_get(m, r), best);
    }
    nb_tensor *s = sum_to_31(ctx, x);
    for (int r = 0; r < 3; r++) {
        double t = 0;
        for (int b = 0; b < 2; b++)
            for (int j = 0; j < 4; j++) t += REF_R[b * 12 + r * 4 + j];
        assert_close(nb_get(s, r), t, 1e-12, 1e-12);
    }
    /* f32 follows */
    nb_tensor *y32 = var_2(ctx, nb_cast(ctx, x, NB_F32));
    for (int i = 0; i < 6; i++) assert_close(nb_get(y32, i), REF_R_VAR_2[i], 1e-6, 1e-5);
}

Test(reduce, gradients_all_layouts) {
    for (int k = 0; k < N_CASES; k++)
        for (int lay = LAYOUT_CONTIG; lay <= LAYOUT_SLICE; lay++) {
            nb_mark m = nb_ctx_mark(ctx);
            nb_tensor *x = test_leaf(ctx, NB_SHAPE(2, 3, 4), (test_layout)lay, DOM_ANY);
            char what[64];
            snprintf(what, sizeof what, "%s layout %d", CASES[k].name, lay);
            check_grads_named(case_f, 1, &x, (void *)&CASES[k], true, what);
            nb_ctx_release(ctx, m);
        }
}

Test(reduce, argmax_and_ties) {
    nb_tensor *x = test_from(ctx, REF_R, NB_SHAPE(2, 3, 4));
    nb_tensor *a = nb_argmax(ctx, x, 2, false);
    cr_assert(a && a->dtype == NB_I64 && a->ndim == 2 && !a->requires_grad);
    for (int i = 0; i < 6; i++) cr_assert_eq((int64_t)nb_get(a, i), REF_R_ARGMAX_2[i]);
    nb_tensor *ak = nb_argmax(ctx, nb_transpose(ctx, x, 0, 2), 0, true);  /* strided input, keepdim */
    cr_assert(ak->ndim == 3 && ak->shape[0] == 1 && ak->shape[1] == 3 && ak->shape[2] == 2);
    for (int b = 0; b < 2; b++)
        for (int r = 0; r < 3; r++) cr_assert_eq((int64_t)nb_get(ak, r * 2 + b), REF_R_ARGMAX_2[b * 3 + r]);
    /* a tie in max splits the gradient evenly */
    nb_tensor *t = test_from(ctx, (double[]){1, 3, 3, 2}, NB_SHAPE(4));
    nb_requires_grad(t, true);
    cr_assert_eq(nb_backward(ctx, nb_max(ctx, t, 0, NULL, false), NULL), NB_OK);
    assert_values(t->grad, (double[]){0, 0.5, 0.5, 0}, 4, 0);
}

Test(reduce, stable_and_degenerate_values) {
    nb_tensor *big = test_from(ctx, (double[]){1000, 1000, -1000}, NB_SHAPE(3));
    assert_close(nb_item(nb_logsumexp(ctx, big, 0, NULL, false)), 1000 + log(2.0), 1e-12, 1e-12);
    nb_tensor *sm = nb_softmax(ctx, big, 0);
    assert_values(sm, (double[]){0.5, 0.5, 0}, 3, 1e-15);
    nb_tensor *ninf = test_from(ctx, (double[]){-INFINITY, -INFINITY}, NB_SHAPE(2));
    cr_assert(isinf(nb_item(nb_logsumexp(ctx, ninf, 0, NULL, false))) && nb_item(nb_logsumexp(ctx, ninf, 0, NULL, false)) < 0);
    nb_tensor *e = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 0));
    nb_tensor *s = nb_sum(ctx, e, 1, AX1, false);
    cr_assert(s && s->numel == 2 && nb_get(s, 0) == 0 && nb_get(s, 1) == 0);
    cr_assert_null(nb_max(ctx, e, 1, AX1, false));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_SHAPE);
}
