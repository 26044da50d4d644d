/* Losses (src/ops/loss.c) against PyTorch 1.13: values for every reduction, gradients and
 * Hessian-vector products for every loss and option (tests/ref/loss_ref.py), edge cases, finite
 * differences to second order, and the errors for bad labels, shapes, dtypes and options. */
#include "common.h"
#include "ref/loss_ref.h"
#include "ref/torch_refs.h"

#include <string.h>

TestSuite(loss, .init = ctx_setup, .fini = ctx_teardown);

static nb_tensor *labels(void) { return nb_from(ctx, NB_I64, NB_SHAPE(4), REF_LABELS); }

Test(loss, forward_matches_torch) {
    nb_tensor *L = test_from(ctx, REF_LOGITS, NB_SHAPE(4, 5)), *y = labels();
    assert_close(nb_item(nb_cross_entropy(ctx, L, y, NB_REDUCE_MEAN)), REF_CE_MEAN[0], 1e-13, 1e-13);
    assert_close(nb_item(nb_cross_entropy(ctx, L, y, NB_REDUCE_SUM)), REF_CE_SUM[0], 1e-13, 1e-13);
    assert_values(nb_cross_entropy(ctx, L, y, NB_REDUCE_NONE), REF_CE_NONE, 4, 1e-13);
    assert_close(nb_item(nb_cross_entropy_smooth(ctx, L, y, 0.1, NB_REDUCE_MEAN)), REF_CE_SMOOTH[0], 1e-13, 1e-13);
    assert_close(nb_item(nb_cross_entropy_smooth(ctx, L, y, 0.0, NB_REDUCE_MEAN)), REF_CE_MEAN[0], 1e-13, 1e-13);
    assert_close(nb_item(nb_nll_loss(ctx, nb_log_softmax(ctx, L, 1), y, NB_REDUCE_MEAN)), REF_NLL[0], 1e-13, 1e-13);
    nb_tensor *t = test_from(ctx, REF_TARGET, NB_SHAPE(4, 5)), *yb = test_from(ctx, REF_YB, NB_SHAPE(4, 5));
    assert_close(nb_item(nb_mse_loss(ctx, L, t, NB_REDUCE_MEAN)), REF_MSE[0], 1e-13, 1e-13);
    assert_close(nb_item(nb_bce_with_logits(ctx, L, yb, NB_REDUCE_MEAN)), REF_BCE[0], 1e-13, 1e-13);
    assert_values(nb_bce_with_logits(ctx, L, yb, NB_REDUCE_NONE), REF_BCE_NONE, 20, 1e-13);
    /* stable for huge logits: softplus(1000) - 1000*1 = 0, CE of a confident right answer = 0 */
    nb_tensor *big = test_from(ctx, (double[]){1000, -1000}, NB_SHAPE(1, 2));
    assert_close(nb_item(nb_bce_with_logits(ctx, nb_reshape(ctx, big, NB_SHAPE(2)), test_from(ctx, (double[]){1, 0}, NB_SHAPE(2)),
                                            NB_REDUCE_SUM)),
                 0.0, 1e-12, 0);
    nb_tensor *l0 = nb_from(ctx, NB_I64, NB_SHAPE(1), (int64_t[]){0});
    assert_close(nb_item(nb_cross_entropy(ctx, big, l0, NB_REDUCE_MEAN)), 0.0, 1e-12, 0);
}

Test(loss, cross_entropy_gradient_matches_torch) {
    nb_tensor *L = test_from(ctx, REF_LOGITS, NB_SHAPE(4, 5));
    nb_requires_grad(L, true);
    cr_assert_eq(nb_backward(ctx, nb_cross_entropy(ctx, L, labels(), NB_REDUCE_MEAN), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(L->grad, REF_CE_GRAD, 20, 1e-13);
}

typedef enum { CE, CE_SMOOTH, NLL, MSE, BCE } loss_kind;
typedef struct {
    const char *name;
    loss_kind kind;
    nb_reduction red;
} loss_case;

static nb_tensor *loss_f(nb_ctx *c, nb_tensor *const *in, void *user) {
    const loss_case *lc = user;
    nb_tensor *lab = nb_from(c, NB_I64, NB_SHAPE(4), REF_LABELS);
    nb_tensor *r = NULL;
    switch (lc->kind) {
    case CE: r = nb_cross_entropy(c, in[0], lab, lc->red); break;
    case CE_SMOOTH: r = nb_cross_entropy_smooth(c, in[0], lab, 0.2, lc->red); break;
    case NLL: r = nb_nll_loss(c, nb_log_softmax(c, in[0], 1), lab, lc->red); break;
    case MSE: r = nb_mse_loss(c, in[0], in[1], lc->red); break;
    case BCE: r = nb_bce_with_logits(c, in[0], in[1], lc->red); break;
    }
    return r;
}

Test(loss, gradients_all_losses_and_reductions) {
    static const loss_case cases[] = {
        {"ce", CE, NB_REDUCE_MEAN},        {"ce sum", CE, NB_REDUCE_SUM},     {"ce none", CE, NB_REDUCE_NONE},
        {"ce smooth", CE_SMOOTH, NB_REDUCE_MEAN}, {"nll", NLL, NB_REDUCE_MEAN}, {"mse", MSE, NB_REDUCE_MEAN},
        {"mse none", MSE, NB_REDUCE_NONE}, {"bce", BCE, NB_REDUCE_MEAN},   {"bce sum", BCE, NB_REDUCE_SUM},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
        for (int lay = LAYOUT_CONTIG; lay <= LAYOUT_SLICE; lay++) {
            nb_mark m = nb_ctx_mark(ctx);
            /* targets are inputs too: mse and bce are differentiable in them */
            nb_tensor *in[2] = {test_leaf(ctx, NB_SHAPE(4, 5), (test_layout)lay, DOM_ANY),
                                test_leaf(ctx, NB_SHAPE(4, 5), LAYOUT_CONTIG, DOM_UNIT)};
            int n = cases[k].kind == MSE || cases[k].kind == BCE ? 2 : 1;
            char what[48];
            snprintf(what, sizeof what, "%s layout %d", cases[k].name, lay);
            check_grads_named(loss_f, n, in, (void *)&cases[k], true, what);
            nb_ctx_release(ctx, m);
        }
}

/* ---- every case of tests/ref/loss_ref.py ------------------------------------------------------ */
#define NO_IGNORE INT64_MIN
/* as loss_ref.py's labels(): every third label `ignore` (unless NO_IGNORE), the others (7 i + 3) mod C */
static nb_tensor *ref_labels(nb_ctx *c, int64_t classes, int64_t ignore, int ndim, const int64_t *shape) {
    nb_tensor *y = nb_empty(c, NB_I64, ndim, shape);
    for (int64_t i = 0; i < y->numel; i++)
        nb_set(y, i, (double)(ignore != NO_IGNORE && i % 3 == 2 ? ignore : (7 * i + 3) % classes));
    return y;
}
/* as loss_ref.py's signs(): +-1 */
static nb_tensor *ref_signs(nb_ctx *c, int ndim, const int64_t *shape) {
    nb_tensor *y = nb_empty(c, NB_F64, ndim, shape);
    for (int64_t i = 0; i < y->numel; i++) nb_set(y, i, (5 * i + 1) % 3 ? 1.0 : -1.0);
    return y;
}

typedef nb_tensor *(*loss_builder)(nb_ctx *c, nb_tensor *const *in, nb_reduction red);
#define B(name, expr) \
    static nb_tensor *b_##name(nb_ctx *c, nb_tensor *const *in, nb_reduction red) { return (expr); }
B(ce_weight_ignore, nb_cross_entropy_ex(c, in[0], ref_labels(c, 4, 2, NB_SHAPE(5)),
                                        &(nb_class_loss_opts){.reduction = red, .weight = in[1], .ignore_index = 2,
                                                              .has_ignore_index = true}))
B(ce_nd_smooth, nb_cross_entropy_ex(c, in[0], ref_labels(c, 3, -100, NB_SHAPE(2, 4)),
                                    &(nb_class_loss_opts){.reduction = red, .weight = in[1], .label_smoothing = 0.15}))
B(ce_nd_plain, nb_cross_entropy(c, in[0], ref_labels(c, 3, NO_IGNORE, NB_SHAPE(2, 2, 2)), red))
B(ce_probs, nb_cross_entropy_ex(c, in[0], in[1], &(nb_class_loss_opts){.reduction = red, .weight = in[2], .label_smoothing = 0.1}))
B(ce_unbatched, nb_cross_entropy_smooth(c, in[0], nb_from(c, NB_I64, 0, NULL, (int64_t[]){3}), 0.2, red))
B(nll_ignore0, nb_nll_loss_ex(c, in[0], ref_labels(c, 4, 0, NB_SHAPE(3, 2)),
                              &(nb_class_loss_opts){.reduction = red, .weight = in[1], .has_ignore_index = true}))
B(bce_logits_pw, nb_bce_with_logits_ex(c, in[0], in[1], &(nb_bce_loss_opts){.reduction = red, .weight = in[2], .pos_weight = in[3]}))
B(bce_probs, nb_binary_cross_entropy(c, in[0], in[1], &(nb_bce_loss_opts){.reduction = red, .weight = in[2]}))
B(l1, nb_l1_loss(c, in[0], in[1], red))
B(mse, nb_mse_loss(c, in[0], in[1], red))
B(smooth_l1, nb_smooth_l1_loss(c, in[0], in[1], &(nb_regression_loss_opts){.reduction = red}))
B(smooth_l1_beta, nb_smooth_l1_loss(c, in[0], in[1], &(nb_regression_loss_opts){.reduction = red, .beta = 0.7}))
B(huber, nb_huber_loss(c, in[0], in[1], &(nb_regression_loss_opts){.reduction = red, .delta = 0.6}))
B(kl, nb_kl_div(c, in[0], in[1], &(nb_prob_loss_opts){.reduction = red}))
B(kl_log_target, nb_kl_div(c, in[0], in[1], &(nb_prob_loss_opts){.reduction = red, .log_target = true}))
B(poisson, nb_poisson_nll_loss(c, in[0], in[1], &(nb_prob_loss_opts){.reduction = red}))
B(poisson_rate_full, nb_poisson_nll_loss(c, in[0], in[1],
                                         &(nb_prob_loss_opts){.reduction = red, .rate_input = true, .full = true, .eps = 1e-3}))
B(gaussian_full, nb_gaussian_nll_loss(c, in[0], in[1], in[2], &(nb_prob_loss_opts){.reduction = red, .full = true}))
B(gaussian_var_dropped, nb_gaussian_nll_loss(c, in[0], in[1], in[2], &(nb_prob_loss_opts){.reduction = red}))
B(gaussian_var_last1, nb_gaussian_nll_loss(c, in[0], in[1], in[2], &(nb_prob_loss_opts){.reduction = red, .eps = 0.3}))
B(cosine, nb_cosine_embedding_loss(c, in[0], in[1], ref_signs(c, NB_SHAPE(4)), &(nb_margin_loss_opts){.reduction = red, .margin = 0.1}))
B(cosine_unbatched, nb_cosine_embedding_loss(c, in[0], in[1], ref_signs(c, 0, NULL), &(nb_margin_loss_opts){.reduction = red}))
B(margin_ranking, nb_margin_ranking_loss(c, in[0], in[1], in[2], &(nb_margin_loss_opts){.reduction = red, .margin = 0.3}))
B(hinge, nb_hinge_embedding_loss(c, in[0], ref_signs(c, NB_SHAPE(3, 4)), &(nb_margin_loss_opts){.reduction = red}))
B(soft_margin, nb_soft_margin_loss(c, in[0], ref_signs(c, NB_SHAPE(3, 4)), red))
B(triplet, nb_triplet_margin_loss(c, in[0], in[1], in[2], &(nb_margin_loss_opts){.reduction = red}))
B(triplet_p3_swap, nb_triplet_margin_loss(c, in[0], in[1], in[2],
                                          &(nb_margin_loss_opts){.reduction = red, .margin = 0.3, .p = 3, .eps = 1e-3, .swap = true}))
#undef B
static const struct {
    const char *name;
    loss_builder f;
} BUILDERS[] = {
#define E(name) {#name, b_##name}
    E(ce_weight_ignore), E(ce_nd_smooth), E(ce_nd_plain), E(ce_probs), E(ce_unbatched), E(nll_ignore0), E(bce_logits_pw),
    E(bce_probs), E(l1), E(mse), E(smooth_l1), E(smooth_l1_beta), E(huber), E(kl), E(kl_log_target), E(poisson),
    E(poisson_rate_full), E(gaussian_full), E(gaussian_var_dropped), E(gaussian_var_last1), E(cosine), E(cosine_unbatched),
    E(margin_ranking), E(hinge), E(soft_margin), E(triplet), E(triplet_p3_swap),
#undef E
};
#define N_BUILDERS (sizeof BUILDERS / sizeof *BUILDERS)
#define N_REFS (sizeof LOSS_REFS / sizeof *LOSS_REFS)

static loss_builder builder_of(const char *name) {
    for (size_t i = 0; i < N_BUILDERS; i++)
        if (!strcmp(BUILDERS[i].name, name)) return BUILDERS[i].f;
    cr_assert_fail("tests/ref/loss_ref.h has case %s, which has no builder here", name);
    return NULL;
}

/* input k of case r, in a contiguous, transposed or sliced layout (same values) */
static nb_tensor *ref_input(const loss_ref *r, int k, test_layout lay) {
    const loss_ref_input *s = &r->in[k];
    nb_tensor *t = test_leaf(ctx, s->ndim, s->shape, lay, DOM_ANY);
    for (int64_t i = 0; i < t->numel; i++) nb_set(t, i, s->shift + s->scale * sin(0.37 * (double)i + s->seed));
    nb_requires_grad(t, s->grad);
    return t;
}

/* the values of n tensors, concatenated, against want[] */
static void near_all(const char *what, int n, nb_tensor *const *ts, const double *want, double tol) {
    int64_t at = 0;
    for (int k = 0; k < n; k++) {
        cr_assert_not_null(ts[k], "%s: %s", what, nb_ctx_error(ctx));
        for (int64_t i = 0; i < ts[k]->numel; i++, at++) {
            const double v = nb_get(ts[k], i);
            cr_assert(fabs(v - want[at]) <= tol * (1 + fabs(want[at])), "%s: input %d element %lld = %.17g, torch %.17g", what,
                      k, (long long)i, v, want[at]);
        }
    }
}

Test(loss, every_case_matches_torch_to_second_order) {
    cr_assert_eq(N_BUILDERS, N_REFS, "%zu builders for %zu reference cases", N_BUILDERS, N_REFS);
    for (size_t c = 0; c < N_REFS; c++) {
        const loss_ref *r = &LOSS_REFS[c];
        const loss_builder f = builder_of(r->name);
        nb_mark m = nb_ctx_mark(ctx);
        nb_tensor *in[4], *diff[4];
        int nd = 0;
        for (int k = 0; k < r->n_in; k++)
            if ((in[k] = ref_input(r, k, LAYOUT_CONTIG))->requires_grad) diff[nd++] = in[k];
        char what[96];
        snprintf(what, sizeof what, "%s (none)", r->name);
        nb_tensor *none = f(ctx, in, NB_REDUCE_NONE);
        near_all(what, 1, &none, r->none, 1e-12);
        cr_assert_eq(none->numel, r->n_none, "%s: %lld per-element losses, torch %lld", r->name, (long long)none->numel,
                     (long long)r->n_none);
        nb_tensor *mean = f(ctx, in, NB_REDUCE_MEAN), *sum = f(ctx, in, NB_REDUCE_SUM);
        assert_close(nb_item(mean), r->mean, 1e-12, 1e-12, "(%s mean)", r->name);
        assert_close(nb_item(sum), r->sum, 1e-12, 1e-12, "(%s sum)", r->name);
        if (!isnan(r->batchmean)) assert_close(nb_item(f(ctx, in, NB_REDUCE_BATCHMEAN)), r->batchmean, 1e-12, 1e-12, "(%s)", r->name);
        /* gradient of the mean loss, then its product with the Hessian along v */
        nb_tensor *g[4], *h[4], *dot = NULL;
        cr_assert_eq(nb_grad(ctx, 1, &mean, NULL, nd, diff, g, true), NB_OK, "%s: %s", r->name, nb_ctx_error(ctx));
        snprintf(what, sizeof what, "%s (gradient)", r->name);
        near_all(what, nd, g, r->grad, 1e-11);
        for (int k = 0; k < nd; k++) {
            nb_tensor *v = nb_empty(ctx, NB_F64, g[k]->ndim, g[k]->shape);
            for (int64_t i = 0; i < v->numel; i++) nb_set(v, i, sin(0.37 * (double)i + 7.0 + k));
            nb_tensor *t = nb_sum_all(ctx, nb_mul(ctx, g[k], v));
            dot = dot ? nb_add(ctx, dot, t) : t;
        }
        snprintf(what, sizeof what, "%s (Hessian-vector product)", r->name);
        if (dot->requires_grad) {
            cr_assert_eq(nb_grad(ctx, 1, &dot, NULL, nd, diff, h, false), NB_OK, "%s: %s", r->name, nb_ctx_error(ctx));
        } else { /* piecewise linear: the gradient is constant */
            for (int k = 0; k < nd; k++) h[k] = nb_zeros_like(ctx, diff[k]);
        }
        near_all(what, nd, h, r->hvp, 1e-10);
        nb_ctx_release(ctx, m);
    }
}

/* finite differences to second order for every case and option, in three layouts; all float
 * inputs, class weights included (nabla differentiates them, PyTorch's nll_loss does not) */
typedef struct {
    loss_builder f;
} fd_arg;
static nb_tensor *fd_mean(nb_ctx *c, nb_tensor *const *in, void *user) { return ((const fd_arg *)user)->f(c, in, NB_REDUCE_MEAN); }

Test(loss, every_case_passes_gradcheck_and_gradgradcheck) {
    for (size_t c = 0; c < N_REFS; c++)
        for (int lay = LAYOUT_CONTIG; lay <= LAYOUT_SLICE; lay++) {
            const loss_ref *r = &LOSS_REFS[c];
            if (!strcmp(r->name, "gaussian_var_last1")) continue; /* var under eps: PyTorch's gradient ignores the floor */
            nb_mark m = nb_ctx_mark(ctx);
            nb_tensor *in[4];
            for (int k = 0; k < r->n_in; k++) nb_requires_grad(in[k] = ref_input(r, k, (test_layout)lay), true);
            fd_arg a = {builder_of(r->name)};
            char what[64];
            snprintf(what, sizeof what, "%s layout %d", r->name, lay);
            check_grads_named(fd_mean, r->n_in, in, &a, true, what);
            nb_ctx_release(ctx, m);
        }
}

/* ---- edge cases ----------------------------------------------------------------------------- */
static nb_tensor *vec(const double *v, int64_t n) { return test_from(ctx, v, 1, &n); }

Test(loss, edges_match_torch) {
    /* binary_cross_entropy at p = 0 and 1: the clamped value, and a finite gradient */
    nb_tensor *p = vec((double[]){0, 1, 0.3, 1}, 4);
    nb_requires_grad(p, true);
    nb_tensor *l = nb_binary_cross_entropy(ctx, p, vec((double[]){0.5, 0.5, 0.2, 1}, 4), &(nb_bce_loss_opts){.reduction = NB_REDUCE_NONE});
    assert_values(l, LR_BCE_EDGE, 4, 1e-14);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, l), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    for (int i = 0; i < 4; i++) cr_assert(isfinite(nb_get(p->grad, i)), "bce gradient %d = %g", i, nb_get(p->grad, i));
    assert_close(nb_get(p->grad, 2), (0.3 - 0.2) / (0.3 * 0.7), 1e-14, 1e-14); /* PyTorch's (p - y) / (p (1 - p)) */
    /* kl_div with zero targets: xlogy's 0, and finite gradients in the target too */
    nb_tensor *x = vec((double[]){0.3, -0.2, 1.1}, 3), *t = vec((double[]){0, 0.5, 0}, 3);
    nb_requires_grad(x, true);
    nb_requires_grad(t, true);
    l = nb_kl_div(ctx, x, t, &(nb_prob_loss_opts){.reduction = NB_REDUCE_NONE});
    assert_values(l, LR_KL_ZERO, 3, 1e-14);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, l), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(x->grad, LR_KL_ZERO_GRAD, 3, 1e-14);
    assert_values(t->grad, (double[]){-0.3, log(0.5) + 1 + 0.2, -1.1}, 3, 1e-14); /* (log t + 1)[t > 0] - x */
    /* gaussian_nll_loss: variances under eps are floored, their gradient passes through */
    nb_tensor *v = vec((double[]){0, 1e-8, 0.5, 2e-6}, 4);
    nb_requires_grad(v, true);
    l = nb_gaussian_nll_loss(ctx, vec((double[]){0.1, -0.2, 0.3, 0.05}, 4), vec((double[]){0, 0.1, -0.4, 0.05}, 4), v,
                             &(nb_prob_loss_opts){.reduction = NB_REDUCE_SUM});
    assert_close(nb_item(l), LR_GAUSS_FLOOR[0], 0, 1e-13);
    cr_assert_eq(nb_backward(ctx, l, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(v->grad, LR_GAUSS_FLOOR_GRAD, 4, 1e-9);
    /* poisson: Stirling's term only where the target is > 1 */
    assert_values(nb_poisson_nll_loss(ctx, vec((double[]){0.5, 1.5, 2, 0.7}, 4), vec((double[]){0, 1, 0.5, 3}, 4),
                                      &(nb_prob_loss_opts){.reduction = NB_REDUCE_NONE, .rate_input = true, .full = true}),
                  LR_POISSON_STIRLING, 4, 1e-14);
    /* has_margin: a margin of 0 where PyTorch's default is 1 */
    assert_values(nb_hinge_embedding_loss(ctx, vec((double[]){0.5, -0.3, 0.2}, 3), vec((double[]){-1, -1, 1}, 3),
                                          &(nb_margin_loss_opts){.reduction = NB_REDUCE_NONE, .has_margin = true}),
                  LR_HINGE_MARGIN0, 3, 1e-15);
    /* ignoring class 0 (has_ignore_index), unlike PyTorch's default -100 */
    nb_tensor *L = test_from(ctx, (double[]){1, 2, 0.5, 0.3, -0.1, 0.8, 2, 1, 0}, NB_SHAPE(3, 3));
    nb_tensor *y = nb_from(ctx, NB_I64, NB_SHAPE(3), (int64_t[]){0, 2, 1});
    assert_values(nb_cross_entropy_ex(ctx, L, y, &(nb_class_loss_opts){.reduction = NB_REDUCE_NONE, .has_ignore_index = true}),
                  LR_CE_IGNORE0, 3, 1e-14);
}

Test(loss, ignore_index_semantics) {
    nb_tensor *L = test_from(ctx, REF_LOGITS, NB_SHAPE(4, 5));
    nb_tensor *all = nb_full(ctx, NB_I64, NB_SHAPE(4), -100);
    /* every target ignored: the mean is 0/0 = NaN and the sum 0, as in PyTorch */
    cr_assert(isnan(nb_item(nb_cross_entropy(ctx, L, all, NB_REDUCE_MEAN))));
    cr_assert_eq(nb_item(nb_nll_loss(ctx, L, all, NB_REDUCE_SUM)), 0.0);
    /* an ignored row changes neither the numerator nor the divisor, whatever its logits */
    nb_tensor *y = nb_from(ctx, NB_I64, NB_SHAPE(4), (int64_t[]){1, -100, 3, 0});
    nb_tensor *L2 = nb_contiguous(ctx, nb_mul_scalar(ctx, L, 1.0));
    for (int c = 0; c < 5; c++) nb_set(L2, 5 + c, 1e300 * (c - 2));
    const double a = nb_item(nb_cross_entropy(ctx, L, y, NB_REDUCE_MEAN)), b = nb_item(nb_cross_entropy(ctx, L2, y, NB_REDUCE_MEAN));
    cr_assert_eq(a, b);
    nb_tensor *keep = nb_index_select(ctx, L, 0, nb_from(ctx, NB_I64, NB_SHAPE(3), (int64_t[]){0, 2, 3}));
    assert_close(a, nb_item(nb_cross_entropy(ctx, keep, nb_from(ctx, NB_I64, NB_SHAPE(3), (int64_t[]){1, 3, 0}), NB_REDUCE_MEAN)),
                 1e-15, 1e-15);
    /* unbatched reduction none is 0-d */
    nb_tensor *one = nb_cross_entropy(ctx, nb_reshape(ctx, keep, NB_SHAPE(-1)), nb_from(ctx, NB_I64, 0, NULL, (int64_t[]){4}),
                                      NB_REDUCE_NONE);
    cr_assert(one && one->ndim == 0, "%s", nb_ctx_error(ctx));
}

/* every target ignored, second order: the gradient is zeros (create_graph too; it failed on the
 * mean's infinite scale) */
Test(loss, all_ignored_mean_has_zero_gradient_to_second_order) {
    for (int cg = 0; cg < 2; cg++) {
        nb_tensor *L = nb_detach(ctx, test_from(ctx, REF_LOGITS, NB_SHAPE(4, 5))), *g;
        nb_requires_grad(L, true);
        nb_tensor *loss = nb_cross_entropy(ctx, L, nb_full(ctx, NB_I64, NB_SHAPE(4), -100), NB_REDUCE_MEAN);
        cr_assert_eq(nb_grad(ctx, 1, &loss, NULL, 1, &L, &g, cg), NB_OK, "create_graph %d: %s", cg, nb_ctx_error(ctx));
        for (int64_t i = 0; i < g->numel; i++) cr_assert_eq(nb_get(g, i), 0.0, "create_graph %d", cg);
    }
}

/* f32 log_softmax and cross-entropy keep their accuracy far from 0: logits 1e4 + N(0, 1), against
 * f64 of the same f32 inputs (it was x - (max + log sum), 5e-4 off there; torch 3e-7). A row
 * with +inf is NaN, as torch's. */
Test(loss, log_softmax_f32_shift_invariant) {
    nb_tensor *x = nb_cast(ctx, nb_add_scalar(ctx, nb_randn(ctx, NB_F64, NB_SHAPE(64, 10)), 1e4), NB_F32);
    nb_tensor *a = nb_log_softmax(ctx, x, 1), *b = nb_log_softmax(ctx, nb_cast(ctx, x, NB_F64), 1);
    for (int64_t i = 0; i < a->numel; i++) assert_close(nb_get(a, i), nb_get(b, i), 1e-6, 1e-6);
    nb_tensor *y = nb_from(ctx, NB_I64, NB_SHAPE(64), (int64_t[64]){0});
    assert_close(nb_item(nb_cross_entropy(ctx, x, y, NB_REDUCE_MEAN)),
                 nb_item(nb_cross_entropy(ctx, nb_cast(ctx, x, NB_F64), y, NB_REDUCE_MEAN)), 1e-6, 1e-6);
    nb_tensor *r = nb_from(ctx, NB_F64, NB_SHAPE(3), (double[]){1.0, INFINITY, 2.0});
    nb_tensor *p = nb_softmax(ctx, r, 0), *lp = nb_log_softmax(ctx, r, 0);
    for (int i = 0; i < 3; i++) cr_assert(isnan(nb_get(p, i)) && isnan(nb_get(lp, i)), "element %d", i);
}

Test(loss, zero_options_are_pytorch_defaults) {
    nb_tensor *x = test_from(ctx, REF_LOGITS, NB_SHAPE(4, 5)), *t = test_from(ctx, REF_TARGET, NB_SHAPE(4, 5));
    const double d1 = nb_item(nb_smooth_l1_loss(ctx, x, t, NULL)), d2 = nb_item(nb_huber_loss(ctx, x, t, NULL));
    cr_assert_eq(d1, nb_item(nb_smooth_l1_loss(ctx, x, t, &(nb_regression_loss_opts){.beta = 1.0})));
    cr_assert_eq(d2, nb_item(nb_huber_loss(ctx, x, t, &(nb_regression_loss_opts){.delta = 1.0})));
    cr_assert_eq(d1, d2); /* beta = delta = 1: the same loss */
    nb_tensor *pos = nb_affine(ctx, nb_abs(ctx, t), 1, 0.1);
    cr_assert_eq(nb_item(nb_poisson_nll_loss(ctx, pos, t, &(nb_prob_loss_opts){.rate_input = true})),
                 nb_item(nb_poisson_nll_loss(ctx, pos, t, &(nb_prob_loss_opts){.rate_input = true, .eps = 1e-8})));
    nb_tensor *s = nb_affine(ctx, nb_ge(ctx, t, nb_scalar(ctx, NB_F64, 0)), 2, -1); /* +-1 */
    cr_assert_eq(nb_item(nb_hinge_embedding_loss(ctx, x, s, NULL)),
                 nb_item(nb_hinge_embedding_loss(ctx, x, s, &(nb_margin_loss_opts){.margin = 1.0})));
    /* the positional forms are the options' defaults */
    nb_tensor *y = labels();
    cr_assert_eq(nb_item(nb_cross_entropy(ctx, x, y, NB_REDUCE_SUM)),
                 nb_item(nb_cross_entropy_ex(ctx, x, y, &(nb_class_loss_opts){.reduction = NB_REDUCE_SUM})));
    cr_assert_eq(nb_item(nb_cross_entropy_ex(ctx, x, y, NULL)), nb_item(nb_cross_entropy(ctx, x, y, NB_REDUCE_MEAN)));
    /* i64 +-1 targets are the float ones */
    cr_assert_eq(nb_item(nb_soft_margin_loss(ctx, x, s, NB_REDUCE_SUM)),
                 nb_item(nb_soft_margin_loss(ctx, x, nb_cast(ctx, s, NB_I64), NB_REDUCE_SUM)));
}

/* ---- errors ------------------------------------------------------------------------------------ */
/* expr must fail with status and a message holding both fragments (the first names the loss);
 * then the context is cleared for the next case */
#define BAD(status, frag1, frag2, expr)                                                                            \
    do {                                                                                                           \
        cr_assert_null((expr), "accepted: %s", #expr);                                                             \
        cr_assert_eq(nb_ctx_status(ctx), (status), "%s: status %s (%s)", #expr, nb_status_name(nb_ctx_status(ctx)), \
                     nb_ctx_error(ctx));                                                                           \
        cr_assert(strstr(nb_ctx_error(ctx), frag1) && strstr(nb_ctx_error(ctx), frag2), "%s: message \"%s\"", #expr, \
                  nb_ctx_error(ctx));                                                                              \
        nb_ctx_clear_error(ctx);                                                                                   \
    } while (0)

Test(loss, bad_arguments_name_the_loss_and_shapes) {
    nb_tensor *L = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3, 4)), *x = nb_zeros(ctx, NB_F64, NB_SHAPE(3, 4));
    nb_tensor *x32 = nb_zeros(ctx, NB_F32, NB_SHAPE(3, 4)), *p = nb_full(ctx, NB_F64, NB_SHAPE(3, 4), 0.5);
    nb_tensor *y = nb_zeros(ctx, NB_I64, NB_SHAPE(2, 4)), *w3 = nb_ones(ctx, NB_F64, NB_SHAPE(3));
    nb_tensor *pm = nb_from(ctx, NB_F64, NB_SHAPE(3), (double[]){1, -1, 1}), *x2 = nb_zeros(ctx, NB_F64, NB_SHAPE(3, 2));
    nb_tensor *y3 = nb_from(ctx, NB_I64, NB_SHAPE(2, 4), (int64_t[]){0, 1, 2, 3, 0, 1, 2, 0});
    nb_tensor *yneg = nb_from(ctx, NB_I64, NB_SHAPE(2, 4), (int64_t[]){0, 1, -5, 1, 0, 1, 2, 0});
    nb_tensor *ypad = nb_from(ctx, NB_I64, NB_SHAPE(2, 4), (int64_t[]){0, 1, -100, 1, 0, 1, 2, 0});
    nb_tensor *bad_p = nb_from(ctx, NB_F64, NB_SHAPE(2), (double[]){0.5, 1.5}), *half = nb_full(ctx, NB_F64, NB_SHAPE(2), 0.5);
    BAD(NB_ERR_INDEX, "cross_entropy_ex: label 3 of sample 3", "[0, 3)",
        nb_cross_entropy_ex(ctx, L, y3, NULL)); /* label = C */
    BAD(NB_ERR_INDEX, "label -5 of sample 2", "ignore_index -100",
        nb_cross_entropy_ex(ctx, L, yneg, NULL)); /* negative label */
    BAD(NB_ERR_INDEX, "label -100", "ignore_index 0",
        nb_nll_loss_ex(ctx, L, ypad, &(nb_class_loss_opts){.has_ignore_index = true})); /* -100 when ignoring 0 */
    BAD(NB_ERR_SHAPE, "labels (2,3) do not match scores (2,3,4)", "need (2,4)",
        nb_cross_entropy_ex(ctx, L, nb_zeros(ctx, NB_I64, NB_SHAPE(2, 3)), NULL)); /* labels' shape */
    BAD(NB_ERR_SHAPE, "cross_entropy_ex: weight (4)", "(C) = (3)",
        nb_cross_entropy_ex(ctx, L, y, &(nb_class_loss_opts){.weight = nb_ones(ctx, NB_F64, NB_SHAPE(4))})); /* weight size */
    BAD(NB_ERR_DTYPE, "nll_loss_ex: weight is f32", "f64",
        nb_nll_loss_ex(ctx, L, y, &(nb_class_loss_opts){.weight = nb_ones(ctx, NB_F32, NB_SHAPE(3))})); /* weight dtype */
    BAD(NB_ERR_VALUE, "cross_entropy_ex: label_smoothing -0.1", "[0, 1]",
        nb_cross_entropy_ex(ctx, L, y, &(nb_class_loss_opts){.label_smoothing = -0.1})); /* smoothing < 0 */
    BAD(NB_ERR_VALUE, "nll_loss_ex: label_smoothing", "not one of its options",
        nb_nll_loss_ex(ctx, L, y, &(nb_class_loss_opts){.label_smoothing = 0.1})); /* smoothing in nll */
    BAD(NB_ERR_VALUE, "cross_entropy_ex: ignore_index", "probability targets",
        nb_cross_entropy_ex(ctx, L, L, &(nb_class_loss_opts){.has_ignore_index = true})); /* probabilities with ignore_index */
    BAD(NB_ERR_DTYPE, "cross_entropy_ex: labels must be i64", "f64 (3,4)",
        nb_cross_entropy_ex(ctx, L, x, NULL)); /* float target of another shape */
    BAD(NB_ERR_DTYPE, "nll_loss_ex: labels must be i64", "f64 (2,3,4)",
        nb_nll_loss_ex(ctx, L, L, NULL)); /* float labels in nll */
    BAD(NB_ERR_SHAPE, "cross_entropy_ex: expected (N, C, d1, ..., dk)", "got ()",
        nb_cross_entropy_ex(ctx, nb_scalar(ctx, NB_F64, 1), nb_from(ctx, NB_I64, 0, NULL, (int64_t[]){0}), NULL)); /* 0-d scores */
    BAD(NB_ERR_VALUE, "cross_entropy_ex: reduction 3", "batchmean is kl_div's",
        nb_cross_entropy_ex(ctx, L, y, &(nb_class_loss_opts){.reduction = NB_REDUCE_BATCHMEAN})); /* batchmean */
    BAD(NB_ERR_SHAPE, "bce_with_logits_ex: pos_weight (3)", "input's shape (3,4)",
        nb_bce_with_logits_ex(ctx, x, p, &(nb_bce_loss_opts){.pos_weight = w3})); /* pos_weight length */
    BAD(NB_ERR_SHAPE, "bce_with_logits_ex: weight (3,2)", "(3,4)",
        nb_bce_with_logits_ex(ctx, x, p, &(nb_bce_loss_opts){.weight = x2})); /* bce weight */
    BAD(NB_ERR_DTYPE, "bce_with_logits: input (f32) and target (f64)", "both f32 or both f64",
        nb_bce_with_logits(ctx, x32, p, NB_REDUCE_MEAN)); /* bce dtypes */
    BAD(NB_ERR_VALUE, "binary_cross_entropy: input 1.5 at 1", "[0, 1]",
        nb_binary_cross_entropy(ctx, bad_p, half, NULL)); /* probability 1.5 */
    BAD(NB_ERR_VALUE, "binary_cross_entropy: input nan at 0", "[0, 1]",
        nb_binary_cross_entropy(ctx, nb_full(ctx, NB_F64, NB_SHAPE(2), NAN), half, NULL)); /* probability NaN */
    BAD(NB_ERR_VALUE, "binary_cross_entropy: pos_weight", "not one of its options",
        nb_binary_cross_entropy(ctx, p, p, &(nb_bce_loss_opts){.pos_weight = x})); /* pos_weight in bce */
    BAD(NB_ERR_SHAPE, "l1_loss: input (3,4) and target (3,2)", "differ in shape",
        nb_l1_loss(ctx, x, x2, NB_REDUCE_MEAN)); /* l1 shapes */
    BAD(NB_ERR_VALUE, "smooth_l1_loss: beta -1", ">= 0",
        nb_smooth_l1_loss(ctx, x, x, &(nb_regression_loss_opts){.beta = -1})); /* beta < 0 */
    BAD(NB_ERR_VALUE, "huber_loss: delta nan", "finite",
        nb_huber_loss(ctx, x, x, &(nb_regression_loss_opts){.delta = NAN})); /* delta NaN */
    BAD(NB_ERR_VALUE, "smooth_l1_loss: delta", "not one of its options",
        nb_smooth_l1_loss(ctx, x, x, &(nb_regression_loss_opts){.delta = 2})); /* delta in smooth_l1 */
    BAD(NB_ERR_VALUE, "mse_loss: reduction 3", "mean, sum or none",
        nb_mse_loss(ctx, x, x, NB_REDUCE_BATCHMEAN)); /* batchmean in mse */
    BAD(NB_ERR_VALUE, "kl_div: reduction 7", "batchmean",
        nb_kl_div(ctx, x, x, &(nb_prob_loss_opts){.reduction = (nb_reduction)7})); /* unknown reduction */
    BAD(NB_ERR_VALUE, "kl_div: rate_input", "not one of its options",
        nb_kl_div(ctx, x, x, &(nb_prob_loss_opts){.rate_input = true})); /* rate_input in kl_div */
    BAD(NB_ERR_VALUE, "poisson_nll_loss: eps -1", ">= 0",
        nb_poisson_nll_loss(ctx, x, x, &(nb_prob_loss_opts){.eps = -1})); /* poisson eps */
    BAD(NB_ERR_VALUE, "gaussian_nll_loss: var has a negative entry -1", "at 0",
        nb_gaussian_nll_loss(ctx, x, x, nb_full(ctx, NB_F64, NB_SHAPE(3, 4), -1), NULL)); /* negative var */
    BAD(NB_ERR_SHAPE, "gaussian_nll_loss: var (4)", "input's shape (3,4)",
        nb_gaussian_nll_loss(ctx, x, x, nb_ones(ctx, NB_F64, NB_SHAPE(4)), NULL)); /* var's shape */
    BAD(NB_ERR_VALUE, "cosine_embedding_loss: target 0 at 1", "not 1 or -1",
        nb_cosine_embedding_loss(ctx, x, x, nb_from(ctx, NB_F64, NB_SHAPE(3), (double[]){1, 0, -1}), NULL)); /* cosine target 0 */
    BAD(NB_ERR_SHAPE, "cosine_embedding_loss: target (4)", "shape (3)",
        nb_cosine_embedding_loss(ctx, x, x, nb_ones(ctx, NB_F64, NB_SHAPE(4)), NULL)); /* cosine target's shape */
    BAD(NB_ERR_SHAPE, "cosine_embedding_loss: inputs (2,3,4)", "(N, D) or (D)",
        nb_cosine_embedding_loss(ctx, L, L, pm, NULL)); /* cosine 3-D */
    BAD(NB_ERR_VALUE, "cosine_embedding_loss: p", "not one of its options",
        nb_cosine_embedding_loss(ctx, x, x, pm, &(nb_margin_loss_opts){.p = 1})); /* p in cosine */
    BAD(NB_ERR_SHAPE, "margin_ranking_loss: x1 (3,4), x2 (3,4) and y (3)", "one ndim",
        nb_margin_ranking_loss(ctx, x, x, pm, NULL)); /* ranking ndim */
    BAD(NB_ERR_VALUE, "margin_ranking_loss: margin nan", "finite",
        nb_margin_ranking_loss(ctx, x, x, x, &(nb_margin_loss_opts){.margin = NAN})); /* margin NaN */
    BAD(NB_ERR_VALUE, "hinge_embedding_loss: target 2 at 0", "not 1 or -1",
        nb_hinge_embedding_loss(ctx, half, nb_full(ctx, NB_I64, NB_SHAPE(2), 2), NULL)); /* hinge target 2 */
    BAD(NB_ERR_DTYPE, "soft_margin_loss: target is f32", "expected f64 or i64",
        nb_soft_margin_loss(ctx, x, x32, NB_REDUCE_SUM)); /* soft_margin target dtype */
    BAD(NB_ERR_SHAPE, "triplet_margin_loss: anchor (3,4) and negative (3,2)", "differ in shape",
        nb_triplet_margin_loss(ctx, x, x, x2, NULL)); /* triplet shapes */
    BAD(NB_ERR_VALUE, "triplet_margin_loss: p -2", ">= 0",
        nb_triplet_margin_loss(ctx, x, x, x, &(nb_margin_loss_opts){.p = -2})); /* triplet p < 0 */
    BAD(NB_ERR_NULL, "huber_loss", "",
        nb_huber_loss(ctx, NULL, x, NULL)); /* NULL input */
}

/* (N, C) logits with labels and no class weights: one primitive each way (its values and
 * derivatives are checked against torch and by finite differences above), the same as the
 * composition through log_softmax and nll_loss, at f32 too, with smoothing and ignored rows */
Test(loss, cross_entropy_of_labels_is_one_op_equal_to_the_composition) {
    const int64_t N = 37, C = 11;
    nb_tensor *x = nb_empty(ctx, NB_F32, NB_SHAPE(N, C)), *y = nb_empty(ctx, NB_I64, NB_SHAPE(N));
    for (int64_t i = 0; i < x->numel; i++) nb_set(x, i, 3 * sin(0.37 * (double)i));
    for (int64_t i = 0; i < N; i++) nb_set(y, i, i % 5 == 4 ? -100 : (i * 7) % C);
    nb_requires_grad(x, true);
    for (int red = NB_REDUCE_MEAN; red <= NB_REDUCE_NONE; red++) {
        const nb_class_loss_opts o = {.reduction = (nb_reduction)red, .label_smoothing = 0.1};
        nb_tensor *fused = nb_cross_entropy_ex(ctx, x, y, &o);
        cr_assert_not_null(fused, "%s", nb_ctx_error(ctx));
        cr_assert_not_null(fused->node);
        cr_assert_str_eq(fused->node->op->name, "cross_entropy");
        cr_assert_eq(fused->node->in[0], x, "one node, straight from the logits");
        /* the composition: smoothing by hand over log_softmax */
        int ax = 1;
        nb_tensor *logp = nb_log_softmax(ctx, x, 1);
        nb_tensor *keep = nb_empty(ctx, NB_F32, NB_SHAPE(N));
        for (int64_t i = 0; i < N; i++) nb_set(keep, i, nb_get(y, i) != -100);
        nb_tensor *nll = nb_nll_loss_ex(ctx, logp, y, &(nb_class_loss_opts){.reduction = NB_REDUCE_NONE});
        nb_tensor *uni = nb_where(ctx, keep, nb_neg(ctx, nb_mean(ctx, logp, 1, &ax, false)), nb_scalar(ctx, NB_F32, 0));
        nb_tensor *per = nb_add(ctx, nb_mul_scalar(ctx, nll, 0.9), nb_mul_scalar(ctx, uni, 0.1));
        nb_tensor *comp = red == NB_REDUCE_NONE ? per
                          : red == NB_REDUCE_SUM ? nb_sum_all(ctx, per)
                                                 : nb_div(ctx, nb_sum_all(ctx, per), nb_sum_all(ctx, keep));
        cr_assert_not_null(comp, "%s", nb_ctx_error(ctx));
        nb_tensor *w = nb_empty(ctx, NB_F32, fused->ndim, fused->shape), *gf, *gc;
        for (int64_t i = 0; i < w->numel; i++) nb_set(w, i, 1 + 0.1 * (double)i);
        nb_tensor *lf = nb_sum_all(ctx, nb_mul(ctx, fused, w)), *lc = nb_sum_all(ctx, nb_mul(ctx, comp, w));
        cr_assert_eq(nb_grad(ctx, 1, &lf, NULL, 1, &x, &gf, false), NB_OK, "%s", nb_ctx_error(ctx));
        cr_assert_eq(nb_grad(ctx, 1, &lc, NULL, 1, &x, &gc, false), NB_OK, "%s", nb_ctx_error(ctx));
        for (int64_t i = 0; i < fused->numel; i++) assert_close(nb_get(fused, i), nb_get(comp, i), 1e-5, 1e-6);
        for (int64_t i = 0; i < x->numel; i++) assert_close(nb_get(gf, i), nb_get(gc, i), 1e-5, 1e-6);
        for (int64_t i = 4 * C; i < 5 * C; i++) cr_assert_eq(nb_get(gf, i), 0.0, "an ignored row has no gradient");
    }
}

/* Far tails, where PyTorch is exact: d/dx bce_with_logits(x, 0) = sigmoid(x) and
 * d/dx bce_with_logits(x, 1) = -sigmoid(-x), with pos_weight too (its y = 1 term scaled by pw).
 * The composite's gradient (1 - y) - sigmoid(-x) cancelled: 5e-4 off at x = -10 in f32, exactly
 * 0 from x = -17. Exponential units' slopes alpha exp(x) likewise (out + alpha: 44% off at -17,
 * 0 below), and their double backward stays finite far on the other side. */
Test(loss, far_tail_gradients_are_exact) {
    const double xs[4] = {-10, -17, -20, -50};
    for (int d = 0; d < 2; d++) {
        const nb_dtype dt = d ? NB_F64 : NB_F32;
        const double tol = d ? 1e-12 : 1e-6;
        for (int k = 0; k < 4; k++)
            for (int pw = 0; pw < 2; pw++) {
                nb_tensor *x = nb_full(ctx, dt, NB_SHAPE(2), xs[k]), *g;
                nb_requires_grad(x, true);
                nb_tensor *xp = nb_neg(ctx, x); /* at -x, target 1: the mirror tail */
                const nb_bce_loss_opts o = {.reduction = NB_REDUCE_SUM, .pos_weight = pw ? nb_full(ctx, dt, NB_SHAPE(2), 3.0) : NULL};
                nb_tensor *l = nb_add(ctx, nb_bce_with_logits_ex(ctx, x, nb_zeros_like(ctx, x), &o), nb_bce_with_logits_ex(ctx, xp, nb_ones_like(ctx, x), &o));
                cr_assert_eq(nb_grad(ctx, 1, &l, NULL, 1, &x, &g, false), NB_OK, "%s", nb_ctx_error(ctx));
                /* d/dx [bce(x, 0) + bce(-x, 1)] = sigmoid(x) + w sigmoid(x) with w = pw */
                const double s = 1.0 / (1.0 + exp(-xs[k])), want = s * (1.0 + (pw ? 3.0 : 1.0));
                cr_assert(fabs(nb_get(g, 0) - want) <= tol * want, "%s x=%g pw=%d: %g, want %g", nb_dtype_name(dt), xs[k], pw,
                          nb_get(g, 0), want);
            }
        for (int k = 0; k < 4; k++) {
            nb_tensor *x = nb_full(ctx, dt, NB_SHAPE(1), xs[k]), *g[3];
            nb_requires_grad(x, true);
            nb_tensor *ys[3] = {nb_elu(ctx, x, 1.5), nb_selu(ctx, x), nb_celu(ctx, x, 2.0)};
            const double want[3] = {1.5 * exp(xs[k]), 1.0507009873554804934 * 1.6732632423543772848 * exp(xs[k]), exp(xs[k] / 2.0)};
            for (int f = 0; f < 3; f++) {
                cr_assert_eq(nb_grad(ctx, 1, &ys[f], NULL, 1, &x, &g[f], false), NB_OK, "%s", nb_ctx_error(ctx));
                cr_assert(fabs(nb_get(g[f], 0) - want[f]) <= tol * want[f], "%s unit %d at %g: %g, want %g", nb_dtype_name(dt), f,
                          xs[k], nb_get(g[f], 0), want[f]);
            }
        }
        /* second derivative far above 0 (exp would overflow there): 0, not NaN */
        nb_tensor *x = nb_full(ctx, dt, NB_SHAPE(1), 1000.0), *g, *gg;
        nb_requires_grad(x, true);
        nb_tensor *y = nb_elu(ctx, x, 1.0);
        cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, &g, true), NB_OK, "%s", nb_ctx_error(ctx));
        cr_assert_eq(nb_grad(ctx, 1, &g, NULL, 1, &x, &gg, false), NB_OK, "%s", nb_ctx_error(ctx));
        cr_assert_eq(nb_get(gg, 0), 0.0, "elu'' at 1000: %g", nb_get(gg, 0));
    }
}
