/* Reductions, softmax family, argmax and sum_to (src/ops/reduce.c). */
#include "common.h"
#include "ref/torch_refs.h"

#include <string.h>

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

/* Long f32 sums are cut into fixed chunks that threads take (src/ops/reduce.c): the result must
 * not depend on the thread count, and must stay as accurate as a double sum. Lengths cover one
 * chunk, a partial group of chunks and several groups (the chunk sums are kept 64 at a time). */
Test(reduce, long_sums_same_bits_for_any_thread_count) {
    static const int64_t LENS[] = {8192, 8193, 100003, 64 * 8192 + 5, 1500001};
    for (size_t li = 0; li < sizeof LENS / sizeof *LENS; li++) {
        const int64_t n = LENS[li];
        nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(n));
        float *v = x->data;
        for (int64_t i = 0; i < n; i++) v[i] += 0.25f; /* a mean, so the sum is not near zero */
        double want_sum = 0, want_sq = 0, want_abs = 0; /* long double would be better; the f32 result is far coarser */
        for (int64_t i = 0; i < n; i++) want_sum += v[i], want_sq += (double)(v[i] * v[i]), want_abs += fabs(v[i]);
        float got[3][3];
        for (int t = 1; t <= 3; t++) {
            nb_set_num_threads(t);
            nb_tensor *ws[1] = {x};
            got[t - 1][0] = (float)nb_item(nb_sum_all(ctx, x));
            got[t - 1][1] = (float)nb_item(nb_l2_penalty(ctx, 1, ws, 1.0));
            got[t - 1][2] = (float)nb_item(nb_l1_penalty(ctx, 1, ws, 1.0));
        }
        nb_set_num_threads(2);
        for (int t = 1; t < 3; t++)
            for (int k = 0; k < 3; k++)
                cr_assert_eq(memcmp(&got[t][k], &got[0][k], sizeof(float)), 0, "n %lld, sum %d: %d threads %.9g, 1 thread %.9g",
                             (long long)n, k, t + 1, got[t][k], got[0][k]);
        const double want[3] = {want_sum, want_sq, want_abs};
        for (int k = 0; k < 3; k++)
            cr_assert(fabs(got[0][k] - want[k]) <= 2e-7 * fabs(want[k]) + 1e-6, "n %lld, sum %d: %.9g against %.9g",
                      (long long)n, k, got[0][k], want[k]);
    }
}

/* torch's edges: a negative correction divides by more (n - correction); logsumexp over an
 * empty axis is -inf (log of an empty sum) */
Test(reduce, negative_correction_and_empty_logsumexp) {
    nb_tensor *x = nb_from(ctx, NB_F64, NB_SHAPE(4), (double[]){1, 2, 3, 6});
    assert_close(nb_item(nb_var(ctx, x, 0, NULL, -1, false)), 14.0 / 5.0, 1e-15, 0); /* sum (x - 3)^2 = 14 */
    nb_tensor *e = nb_logsumexp(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(2, 0)), 1, (int[]){1}, false);
    cr_assert(e && e->numel == 2 && nb_get(e, 0) == -INFINITY && nb_get(e, 1) == -INFINITY, "%s", nb_ctx_error(ctx));
    /* no degrees of freedom: torch divides by 0 (it was refused) */
    cr_assert(isnan(nb_item(nb_var(ctx, nb_from(ctx, NB_F64, NB_SHAPE(1), (double[]){4}), 0, NULL, 1, false))),
              "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_item(nb_var(ctx, x, 0, NULL, 4, false)), INFINITY, "%s", nb_ctx_error(ctx));
    nb_tensor *v0 = nb_var(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(3, 0)), 1, (int[]){1}, 1, false);
    cr_assert(v0 && v0->numel == 3 && isnan(nb_get(v0, 0)), "%s", nb_ctx_error(ctx));
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

/* ---- amax/amin, max/min along an axis with indices, argmin, p-norms (PyTorch 1.13 references in
 * tests/ref/tensor_refs.h) ---------------------------------------------------------------------- */
#include "ref/tensor_refs.h"

static nb_tensor *ties_leaf(void) {
    nb_tensor *t = test_from(ctx, TR_TIES, NB_SHAPE(2, 4));
    nb_requires_grad(t, true);
    return t;
}

Test(reduce, amax_splits_ties_and_max_dim_picks_the_first) {
    const double ones[2] = {1, 1};
    nb_tensor *t = ties_leaf(), *idx;
    assert_values(weighted_grad(ctx, nb_amax(ctx, t, 1, AX1, false), ones, t, false), TR_AMAX_TIES_GRAD, 8, 0);
    assert_values(weighted_grad(ctx, nb_amin(ctx, t, 1, AX1, false), ones, t, false), TR_AMIN_TIES_GRAD, 8, 0);
    nb_tensor *m = nb_max_dim(ctx, t, 1, false, &idx);
    cr_assert(m && m->ndim == 1 && nb_get(m, 0) == 3 && nb_get(m, 1) == 0.5, "%s", nb_ctx_error(ctx));
    cr_assert(idx && idx->dtype == NB_I64 && idx->ndim == 1);
    for (int i = 0; i < 2; i++) cr_assert_eq((int64_t)nb_get(idx, i), TR_MAXDIM_TIES_IDX[i]);
    assert_values(weighted_grad(ctx, m, ones, t, false), TR_MAXDIM_TIES_GRAD, 8, 0);
    nb_tensor *mn = nb_min_dim(ctx, t, -1, true, &idx);
    cr_assert(mn && mn->ndim == 2 && mn->shape[1] == 1 && idx->ndim == 2);
    for (int i = 0; i < 2; i++) cr_assert_eq((int64_t)nb_get(idx, i), TR_MINDIM_TIES_IDX[i]);
    assert_values(weighted_grad(ctx, mn, ones, t, false), TR_MINDIM_TIES_GRAD, 8, 0);
    /* on REF_R-like data along axis 0, and argmin along the last axis */
    nb_tensor *x = test_from(ctx, TR_X, NB_SHAPE(2, 3, 4));
    assert_values(nb_min_dim(ctx, x, 0, false, &idx), TR_MINDIM_X_0, 12, 0);
    for (int i = 0; i < 12; i++) cr_assert_eq((int64_t)nb_get(idx, i), TR_MINDIM_X_0_IDX[i]);
    nb_tensor *am = nb_argmin(ctx, nb_cast(ctx, x, NB_F32), 2, false);
    cr_assert(am && am->ndim == 2 && am->dtype == NB_I64);
    for (int i = 0; i < 6; i++) cr_assert_eq((int64_t)nb_get(am, i), TR_ARGMIN_X_2[i]);
    /* the first NaN is both the argmax and the argmin, as in torch */
    nb_tensor *nan = test_from(ctx, (double[]){1, NAN, 0, NAN}, NB_SHAPE(4));
    cr_assert(nb_get(nb_argmin(ctx, nan, 0, false), 0) == 1 && nb_get(nb_argmax(ctx, nan, 0, false), 0) == 1);
    cr_assert(isnan(nb_item(nb_max_dim(ctx, nan, 0, false, NULL))));
    cr_assert_null(nb_max_dim(ctx, x, 3, false, &idx));
    cr_assert(strstr(nb_ctx_error(ctx), "max_dim: axis 3 invalid for shape (2,3,4)"), "%s", nb_ctx_error(ctx));
}

static nb_tensor *max_dim_1(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_tensor *y = nb_max_dim(c, in[0], 1, true, NULL);
    return nb_mul(c, y, nb_min_dim(c, in[0], 0, true, NULL));
}

typedef struct {
    const char *name;
    double p;
    const double *ref, *grad;
} norm_case;
static const norm_case NORMS[] = {
    {"2", 2, TR_NORM_2, TR_NORM_2_GRAD},          {"1", 1, TR_NORM_1, TR_NORM_1_GRAD},
    {"3", 3, TR_NORM_3, TR_NORM_3_GRAD},          {"0.5", 0.5, TR_NORM_HALF, TR_NORM_HALF_GRAD},
    {"inf", INFINITY, TR_NORM_INF, TR_NORM_INF_GRAD}, {"-inf", -INFINITY, TR_NORM_NINF, TR_NORM_NINF_GRAD},
    {"0", 0, TR_NORM_0, NULL},                    {"-1.5", -1.5, TR_NORM_M15, TR_NORM_M15_GRAD},
};

Test(reduce, norms_match_torch) {
    double w1[8];
    for (int i = 0; i < 8; i++) w1[i] = cos((double)i);
    for (size_t k = 0; k < sizeof NORMS / sizeof *NORMS; k++) {
        const norm_case *c = &NORMS[k];
        nb_tensor *x = test_from(ctx, TR_X, NB_SHAPE(2, 3, 4));
        nb_requires_grad(x, true);
        nb_tensor *n = nb_norm(ctx, x, c->p, 1, AX1, false);
        cr_assert(n && n->ndim == 2 && n->shape[1] == 4, "%s: %s", c->name, nb_ctx_error(ctx));
        for (int i = 0; i < 8; i++) assert_close(nb_get(n, i), c->ref[i], 1e-14, 1e-13, "(p = %s)", c->name);
        if (c->grad) {
            nb_tensor *g = weighted_grad(ctx, n, w1, x, false);
            for (int i = 0; i < 24; i++) assert_close(nb_get(g, i), c->grad[i], 1e-14, 1e-12, "(p = %s gradient %d)", c->name, i);
        } else {
            cr_assert(!n->requires_grad, "p = 0 counts: no gradient");
        }
        nb_tensor *n32 = nb_norm(ctx, nb_cast(ctx, x, NB_F32), c->p, 1, AX1, true);
        cr_assert(n32 && n32->dtype == NB_F32 && n32->ndim == 3);
        for (int i = 0; i < 8; i++) assert_close(nb_get(n32, i), c->ref[i], 1e-5, 1e-5, "(p = %s, f32)", c->name);
    }
    nb_tensor *x = test_from(ctx, TR_X, NB_SHAPE(2, 3, 4));
    nb_requires_grad(x, true);
    assert_close(nb_item(nb_norm(ctx, x, 2, 0, NULL, false)), TR_NORM_FRO[0], 0, 1e-15);
    double v[24];
    for (int i = 0; i < 24; i++) v[i] = cos(TR_X[i]);
    nb_tensor *g = weighted_grad(ctx, nb_norm(ctx, x, 2, 1, AX1, false), w1, x, true);
    assert_values(weighted_grad(ctx, g, v, x, false), TR_NORM_2_HVP, 24, 1e-13);
}

Test(reduce, norms_at_zero_have_torchs_subgradient) {
    static const struct {
        double p;
        const double *ref, *grad;
    } z[] = {{2, TR_NORMZ_2, TR_NORMZ_2_GRAD}, {0.5, TR_NORMZ_HALF, TR_NORMZ_HALF_GRAD}, {3, TR_NORMZ_3, TR_NORMZ_3_GRAD},
             {-1, TR_NORMZ_M1, TR_NORMZ_M1_GRAD}, {INFINITY, TR_NORMZ_INF, TR_NORMZ_INF_GRAD}};
    for (size_t k = 0; k < sizeof z / sizeof *z; k++) {
        nb_tensor *x = test_from(ctx, (double[]){0, 0, 0, 0, 2, -1}, NB_SHAPE(2, 3));
        nb_requires_grad(x, true);
        nb_tensor *n = nb_norm(ctx, x, z[k].p, 1, AX1, false);
        for (int i = 0; i < 2; i++) assert_close(nb_get(n, i), z[k].ref[i], 1e-15, 1e-14, "(p = %g)", z[k].p);
        nb_tensor *g = weighted_grad(ctx, n, (double[]){1, 1}, x, false);
        for (int i = 0; i < 6; i++) assert_close(nb_get(g, i), z[k].grad[i], 1e-15, 1e-14, "(p = %g, gradient %d)", z[k].p, i);
    }
    /* errors name the op */
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 0));
    cr_assert_null(nb_norm(ctx, x, INFINITY, 1, AX1, false));
    cr_assert(strstr(nb_ctx_error(ctx), "norm: the inf norm of the empty reduction of (2,0)"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert(nb_item(nb_norm(ctx, x, 2, 0, NULL, false)) == 0);
    cr_assert_null(nb_norm(ctx, x, NAN, 0, NULL, false));
    cr_assert(strstr(nb_ctx_error(ctx), "norm: p is NaN"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_norm(ctx, x, 2, 1, (int[]){2}, false));
    cr_assert(strstr(nb_ctx_error(ctx), "norm: axis 2 out of range"), "%s", nb_ctx_error(ctx));
}

static nb_tensor *norm_f(nb_ctx *c, nb_tensor *const *in, void *u) {
    const double p = *(const double *)u;
    return nb_mul(c, nb_norm(c, in[0], p, 2, AX02, true), in[0]);
}

Test(reduce, norm_and_max_dim_gradients_every_layout) {
    static const double ps[] = {2, 3, 0.5, 1.5, -1.5, INFINITY, -INFINITY, 1};
    for (size_t k = 0; k < sizeof ps / sizeof *ps; k++)
        for (int lay = LAYOUT_CONTIG; lay <= LAYOUT_SLICE; lay++) {
            nb_mark m = nb_ctx_mark(ctx);
            nb_tensor *x = test_leaf(ctx, NB_SHAPE(2, 3, 4), (test_layout)lay, DOM_AWAY0);
            char what[64];
            snprintf(what, sizeof what, "norm p = %g layout %d", ps[k], lay);
            check_grads_named(norm_f, 1, &x, (void *)&ps[k], true, what);
            nb_ctx_release(ctx, m);
        }
    for (int lay = LAYOUT_CONTIG; lay <= LAYOUT_SLICE; lay++) {
        nb_tensor *x = test_leaf(ctx, NB_SHAPE(2, 3, 4), (test_layout)lay, DOM_ANY);
        check_grads_named(max_dim_1, 1, &x, NULL, true, "max_dim / min_dim");
    }
}

/* A 0-d tensor reduced over axis 0 or -1 (its own axis, as torch): nothing to reduce, the value
 * and its gradient pass through; other axes are still out of range. */
Test(reduce, a_scalar_reduced_over_its_own_axis) {
    nb_tensor *x = nb_scalar(ctx, NB_F64, 3.0);
    cr_assert_eq(nb_requires_grad(x, true), NB_OK);
    nb_tensor *r[4] = {nb_sum(ctx, x, 1, (int[]){0}, false), nb_mean(ctx, x, 1, (int[]){-1}, true),
                       nb_max(ctx, x, 1, (int[]){0}, false), nb_prod(ctx, x, 1, (int[]){-1}, false)};
    nb_tensor *total = NULL;
    for (int i = 0; i < 4; i++) {
        cr_assert(r[i] && r[i]->ndim == 0 && nb_item(r[i]) == 3.0, "reduction %d: %s", i, nb_ctx_error(ctx));
        total = total ? nb_add(ctx, total, r[i]) : r[i];
    }
    cr_assert_eq(nb_backward(ctx, total, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_get(x->grad, 0), 4.0);
    cr_assert_null(nb_sum(ctx, x, 1, (int[]){1}, false));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_AXIS);
}
