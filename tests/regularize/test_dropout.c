/* Dropout: keep rate, scaling, eval identity, thread independence, gradient = mask * scale. */
#include "common.h"
#include "internal.h"

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

/* Each of the four Philox words keeps with probability 1 - p: for a fixed seed, the kept count
 * of the elements using word k (i % 4 == k), and of all elements, lies within 5 sigma of the
 * binomial mean, for small, middle and large p, in f32 and f64. */
Test(dropout, keep_fraction_of_every_word_within_five_sigma) {
    const double ps[4] = {0.01, 0.5, 0.8, 0.999};
    const int64_t n = 400003;
    for (int d = 0; d < 2; d++)
        for (int q = 0; q < 4; q++) {
            const double p = ps[q];
            nb_ctx_seed(ctx, 7 + (uint64_t)q);
            nb_tensor *y = nb_dropout(ctx, nb_ones(ctx, d ? NB_F64 : NB_F32, 1, &n), p);
            cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
            int64_t kept[4] = {0}, count[4] = {0};
            for (int64_t i = 0; i < n; i++) kept[i % 4] += nb_get(y, i) != 0.0, count[i % 4]++;
            for (int k = 0; k <= 4; k++) { /* k = 4: all elements */
                const int64_t c = k < 4 ? count[k] : n, m = k < 4 ? kept[k] : kept[0] + kept[1] + kept[2] + kept[3];
                const double mean = (double)c * (1 - p), sd = sqrt((double)c * p * (1 - p));
                cr_assert(fabs((double)m - mean) < 5 * sd, "p %g word %d: kept %lld of %lld, expected %g +- %g", p, k,
                          (long long)m, (long long)c, mean, 5 * sd);
            }
            nb_ctx_reset(ctx);
        }
}

/* The integer threshold: round(p 2^32), ties to even, capped at 2^32 - 1 */
Test(dropout, keep_threshold_is_p_times_two_to_the_32) {
    cr_assert_eq(nb__keep_threshold(0.5), 1u << 31);
    cr_assert_eq(nb__keep_threshold(0.25), 1u << 30);
    cr_assert_eq(nb__keep_threshold(0x1p-34), 0u);        /* keeps all: off by 2^-34 */
    cr_assert_eq(nb__keep_threshold(3 * 0x1p-33), 2u);    /* 1.5 rounds to even */
    cr_assert_eq(nb__keep_threshold(1 - 0x1p-40), UINT32_MAX);
    cr_assert_eq(nb__keep_threshold(1 - 0x1p-32), UINT32_MAX);
    cr_assert_eq(nb__keep_threshold(0.3), (uint32_t)1288490189u); /* 0.3 * 2^32 = 1288490188.8 */
}

static void mask_with_threads(int threads, nb_dtype dt, void *out, int64_t n) {
    nb_set_num_threads(threads);
    nb_ctx_seed(ctx, 99);
    nb_tensor *x = nb_ones(ctx, dt, NB_SHAPE(n));
    nb_tensor *y = nb_dropout(ctx, x, 0.5);
    memcpy(out, y->data, (size_t)n * nb_dtype_size(dt));
    nb_ctx_reset(ctx);
}

Test(dropout, same_mask_for_any_thread_count) {
    const int64_t n = 200003; /* above the parallel threshold, odd split, a partly used last block */
    for (int d = 0; d < 2; d++) {
        const nb_dtype dt = d ? NB_F64 : NB_F32;
        const size_t bytes = (size_t)n * nb_dtype_size(dt);
        char *a = malloc(bytes), *b = malloc(bytes);
        mask_with_threads(1, dt, a, n);
        for (int t = 2; t <= 3; t++) {
            mask_with_threads(t, dt, b, n);
            cr_assert(memcmp(a, b, bytes) == 0, "%s mask differs at %d threads", nb_dtype_name(dt), t);
        }
        free(a), free(b);
    }
    nb_set_num_threads(2);
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
