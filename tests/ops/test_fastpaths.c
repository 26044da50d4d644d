/* The performance paths added for the benchmarks give the same answers as the plain ones:
 * matmul gradients computed in a transposed input's layout, x*x's backward, the multi-
 * accumulator sum, the scalar-first broadcast loop and the blocked dropout mask. */
#include "common.h"

TestSuite(fastpaths, .init = ctx_setup, .fini = ctx_teardown);

/* linear(x, w) = x w^T: w enters matmul as a column-major (transposed) view */
static nb_tensor *linear_fn(nb_ctx *c, nb_tensor *const *in, void *user) {
    (void)user;
    return nb_tanh(c, nb_linear(c, in[0], in[1], NULL));
}

Test(fastpaths, transposed_weight_gradients_check) {
    nb_tensor *in[2] = {rand_leaf(ctx, NB_SHAPE(4, 3)), rand_leaf(ctx, NB_SHAPE(5, 3))};
    nb_gradcheck_report r;
    cr_assert_eq(nb_gradcheck(ctx, linear_fn, 2, in, NULL, NULL, &r), NB_OK, "%s", r.message);
    cr_assert_eq(nb_gradgradcheck(ctx, linear_fn, 2, in, NULL, NULL, &r), NB_OK, "%s", r.message);
}

Test(fastpaths, transposed_operand_gradient_values) {
    /* y = a^T b with a stored (2,3) so a^T (3,2) is column-major; dL/da for L = sum(y * g) is
     * b g^T (2,3); check against the hand product */
    const double av[6] = {1, 2, 3, 4, 5, 6}, bv[8] = {1, -1, 2, 0, 0.5, 1, -2, 3}, gv[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    nb_tensor *a = nb_from(ctx, NB_F64, NB_SHAPE(2, 3), av), *b = nb_from(ctx, NB_F64, NB_SHAPE(2, 4), bv);
    nb_tensor *g = nb_from(ctx, NB_F64, NB_SHAPE(3, 4), gv);
    nb_requires_grad(a, true);
    nb_requires_grad(b, true);
    nb_tensor *y = nb_matmul(ctx, nb_transpose(ctx, a, 0, 1), b);
    nb_tensor *gr[2], *ins[2] = {a, b};
    cr_assert_eq(nb_grad(ctx, 1, &y, &g, 2, ins, gr, false), NB_OK, "%s", nb_ctx_error(ctx));
    double want_a[6], want_b[8];
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++) { /* da[i][k] = sum_j b[i][j] g[k][j] */
            double s = 0;
            for (int j = 0; j < 4; j++) s += bv[i * 4 + j] * gv[k * 4 + j];
            want_a[i * 3 + k] = s;
        }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) { /* db[i][j] = sum_k a[i][k] g[k][j] */
            double s = 0;
            for (int k = 0; k < 3; k++) s += av[i * 3 + k] * gv[k * 4 + j];
            want_b[i * 4 + j] = s;
        }
    assert_values(gr[0], want_a, 6, 1e-12);
    assert_values(gr[1], want_b, 8, 1e-12);
    cr_assert(nb_is_contiguous(gr[0]), "the gradient of a column-major view comes back in the base's row-major order");
}

static nb_tensor *square_fn(nb_ctx *c, nb_tensor *const *in, void *user) {
    (void)user;
    return nb_sum_all(c, nb_mul(c, in[0], in[0]));
}

Test(fastpaths, square_gradient) {
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(3, 4));
    nb_tensor *y = square_fn(ctx, &x, NULL), *gx;
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, &gx, false), NB_OK);
    for (int i = 0; i < 12; i++) assert_close(nb_get(gx, i), 2 * nb_get(x, i), 1e-14, 1e-14);
    nb_gradcheck_report r;
    cr_assert_eq(nb_gradgradcheck(ctx, square_fn, 1, &x, NULL, NULL, &r), NB_OK, "%s", r.message);
}

Test(fastpaths, long_f32_sum) {
    /* 1,000,003 elements (not a multiple of 8): v[i] = (i % 7) - 3 is exact in f32, the sum in
     * double is exact too: each full cycle of 7 sums to 0, the 142857*7 = 999999 first ones
     * cancel, the last 4 are 0-3, 1-3, 2-3, 3-3 */
    const int64_t n = 1000003;
    nb_tensor *x = nb_empty(ctx, NB_F32, 1, &n);
    float *v = x->data;
    for (int64_t i = 0; i < n; i++) v[i] = (float)(i % 7) - 3.0f;
    assert_close(nb_item(nb_sum_all(ctx, x)), -6.0, 0, 0);
    nb_tensor *m = nb_mean_all(ctx, nb_abs(ctx, x));
    assert_close(nb_item(m), (142857.0 * 12 + 6) / (double)n, 1e-7, 1e-6);
}

Test(fastpaths, scalar_first_broadcast) {
    const float xv[5] = {1, 2, 3, 4, 5};
    nb_tensor *x = nb_from(ctx, NB_F32, NB_SHAPE(5), xv), *s = nb_scalar(ctx, NB_F32, 3);
    const double want_sub[5] = {2, 1, 0, -1, -2}, want_div[5] = {3, 1.5, 1, 0.75, 0.6};
    assert_values(nb_sub(ctx, s, x), want_sub, 5, 1e-7);
    assert_values(nb_div(ctx, s, x), want_div, 5, 1e-7);
}

Test(fastpaths, dropout_mask_follows_the_documented_counter) {
    /* element i keeps (value x/(1-p)) iff word i % 4 of philox(seed, offset + i/4) >= round(p 2^32),
     * for sizes that cross the kernel's 4096-element blocks, its vector tails and a partly used
     * last Philox block */
    const int64_t n = 4096 * 2 + 37;
    const double p = 0.3;
    const uint32_t t = (uint32_t)llround(p * 4294967296.0);
    nb_tensor *x = nb_ones(ctx, NB_F32, 1, &n);
    nb_rng before = *nb_ctx_rng(ctx);
    nb_tensor *y = nb_dropout(ctx, x, p);
    cr_assert_not_null(y);
    for (int64_t i = 0; i < n; i++) {
        uint32_t r[4];
        nb_philox(before.seed, before.offset + (uint64_t)i / 4, r);
        double want = r[i % 4] >= t ? (float)(1.0 / (1.0 - p)) : 0.0;
        cr_assert_eq(nb_get(y, i), want, "element %lld", (long long)i);
    }
    cr_assert_eq(nb_ctx_rng(ctx)->offset, before.offset + (uint64_t)(n + 3) / 4);
}
