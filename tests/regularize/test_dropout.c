/* Dropout: keep rate, scaling, eval identity, thread independence, gradient = mask * scale. */
#include "common.h"

#include <string.h>

TestSuite(dropout, .init = ctx_setup, .fini = ctx_teardown);

Test(dropout, keep_rate_within_binomial_bound_and_scaled) {
    const double p = 0.3;
    nb_tensor *x = nb_ones(ctx, NB_F32, NB_SHAPE(500, 200));
    nb_tensor *y = nb_dropout(ctx, x, p);
    cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
    int64_t kept = 0, n = y->numel;
    for (int64_t i = 0; i < n; i++) {
        double v = nb_get(y, i);
        if (v != 0.0) {
            kept++;
            cr_assert(fabs(v - 1.0 / (1.0 - p)) < 1e-6, "kept element %g, expected 1/(1-p)", v);
        }
    }
    /* kept ~ Binomial(n, 1-p): within 5 standard deviations */
    double mean = n * (1 - p), sd = sqrt(n * p * (1 - p));
    cr_assert(fabs(kept - mean) < 5 * sd, "kept %lld of %lld, expected %g +- %g", (long long)kept, (long long)n, mean, 5 * sd);
    /* a second call draws a fresh mask (the generator advanced) */
    nb_tensor *y2 = nb_dropout(ctx, x, p);
    cr_assert(memcmp(y->data, y2->data, (size_t)n * 4) != 0);
}

Test(dropout, eval_mode_and_p_zero_are_identity) {
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(4, 5));
    nb_rng before = *nb_ctx_rng(ctx);
    nb_ctx_set_train(ctx, false);
    cr_assert(!nb_ctx_is_train(ctx));
    cr_assert_eq(nb_dropout(ctx, x, 0.5), x);
    nb_ctx_set_train(ctx, true);
    cr_assert_eq(nb_dropout(ctx, x, 0.0), x);
    cr_assert_eq(nb_ctx_rng(ctx)->offset, before.offset, "identity paths draw nothing");
}

static void mask_with_threads(int threads, float *out, int64_t n) {
    nb_set_num_threads(threads);
    nb_ctx_seed(ctx, 99);
    nb_tensor *x = nb_ones(ctx, NB_F32, NB_SHAPE(n));
    nb_tensor *y = nb_dropout(ctx, x, 0.5);
    memcpy(out, y->data, (size_t)n * 4);
}

Test(dropout, same_mask_for_one_and_two_threads) {
    const int64_t n = 200003; /* above the parallel threshold, odd split */
    float *a = malloc(n * 4), *b = malloc(n * 4);
    mask_with_threads(1, a, n);
    mask_with_threads(2, b, n);
    cr_assert(memcmp(a, b, (size_t)n * 4) == 0);
    nb_set_num_threads(2);
    free(a), free(b);
}

Test(dropout, gradient_is_mask_times_scale) {
    const double p = 0.4;
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(6, 7));
    nb_tensor *y = nb_dropout(ctx, x, p);
    nb_tensor *c = nb_randn(ctx, NB_F64, NB_SHAPE(6, 7));
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, nb_mul(ctx, y, c)), NULL), NB_OK);
    int zeros = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        bool kept = nb_get(y, i) != 0.0;
        zeros += !kept;
        double want = kept ? nb_get(c, i) / (1 - p) : 0.0;
        assert_close(nb_get(x->grad, i), want, 1e-12, 1e-12);
        if (kept) assert_close(nb_get(y, i), nb_get(x, i) / (1 - p), 1e-12, 1e-12);
    }
    cr_assert(zeros > 0 && zeros < x->numel);
}

/* with the generator reseeded inside, every evaluation uses the same mask */
static nb_tensor *drop_fn(nb_ctx *c, nb_tensor *const *in, void *user) {
    (void)user;
    nb_ctx_seed(c, 5);
    nb_tensor *y = nb_dropout(c, in[0], 0.4);
    return nb_mul(c, y, y); /* non-linear so the second derivative is not trivially zero */
}

Test(dropout, gradcheck_and_gradgradcheck) {
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(3, 4));
    nb_gradcheck_report r;
    cr_assert_eq(nb_gradcheck(ctx, drop_fn, 1, &x, NULL, NULL, &r), NB_OK, "%s", r.message);
    cr_assert_eq(nb_gradgradcheck(ctx, drop_fn, 1, &x, NULL, NULL, &r), NB_OK, "%s", r.message);
}

Test(dropout, p_outside_unit_interval_is_an_error) {
    nb_tensor *x = nb_ones(ctx, NB_F32, NB_SHAPE(3));
    const double bad[3] = {1.0, -0.1, NAN};
    for (int i = 0; i < 3; i++) {
        nb_ctx_clear_error(ctx);
        cr_assert_null(nb_dropout(ctx, x, bad[i]));
        cr_assert_eq(nb_ctx_status(ctx), NB_ERR_VALUE);
        cr_assert(strstr(nb_ctx_error(ctx), "dropout: p ="), "%s", nb_ctx_error(ctx));
    }
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_dropout(ctx, NULL, 0.5));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_NULL);
}
