/* Composite tensor ops (src/ops/composite.c): values against their definitions (the registry
 * gradchecks them). */
#include "common.h"

TestSuite(composite, .init = ctx_setup, .fini = ctx_teardown);

Test(composite, tril_triu_keep_their_band) {
    nb_tensor *x = nb_reshape(ctx, nb_arange(ctx, NB_F64, 1, 13, 1), NB_SHAPE(3, 4));
    assert_values(nb_tril(ctx, x, 0), (double[]){1, 0, 0, 0, 5, 6, 0, 0, 9, 10, 11, 0}, 12, 0);
    assert_values(nb_triu(ctx, x, 1), (double[]){0, 2, 3, 4, 0, 0, 7, 8, 0, 0, 0, 12}, 12, 0);
    assert_values(nb_tril(ctx, x, -1), (double[]){0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0}, 12, 0);
    cr_assert_null(nb_tril(ctx, nb_arange(ctx, NB_F64, 0, 3, 1), 0));
    cr_assert(strstr(nb_ctx_error(ctx), "tril") && strstr(nb_ctx_error(ctx), "(3)"), "%s", nb_ctx_error(ctx));
}

Test(composite, masked_fill_flip_roll_outer) {
    nb_tensor *x = test_from(ctx, (double[]){1, 2, 3, 4, 5, 6}, NB_SHAPE(2, 3));
    nb_tensor *m = test_from(ctx, (double[]){0, 1, 0}, NB_SHAPE(3));
    assert_values(nb_masked_fill(ctx, x, m, -9), (double[]){1, -9, 3, 4, -9, 6}, 6, 0);
    assert_values(nb_flip(ctx, x, 1), (double[]){3, 2, 1, 6, 5, 4}, 6, 0);
    assert_values(nb_flip(ctx, x, 0), (double[]){4, 5, 6, 1, 2, 3}, 6, 0);
    assert_values(nb_roll(ctx, x, 1, 1), (double[]){3, 1, 2, 6, 4, 5}, 6, 0);   /* torch.roll(x, 1, 1) */
    assert_values(nb_roll(ctx, x, -4, 1), (double[]){2, 3, 1, 5, 6, 4}, 6, 0);  /* -4 = -1 mod 3 */
    nb_tensor *a = test_from(ctx, (double[]){1, 2}, NB_SHAPE(2)), *b = test_from(ctx, (double[]){3, 4, 5}, NB_SHAPE(3));
    assert_values(nb_outer(ctx, a, b), (double[]){3, 4, 5, 6, 8, 10}, 6, 0);
    cr_assert_null(nb_masked_fill(ctx, x, test_from(ctx, (double[]){1, 0}, NB_SHAPE(2)), 0));
    cr_assert(strstr(nb_ctx_error(ctx), "masked_fill"), "%s", nb_ctx_error(ctx));
}

Test(composite, one_hot_values_and_errors) {
    nb_tensor *y = nb_from(ctx, NB_I64, NB_SHAPE(2, 2), (int64_t[]){2, 0, 1, 2});
    nb_tensor *h = nb_one_hot(ctx, y, 3, NB_F32);
    cr_assert(h && h->ndim == 3 && h->shape[2] == 3 && h->dtype == NB_F32, "%s", nb_ctx_error(ctx));
    assert_values(h, (double[]){0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1}, 12, 0);
    cr_assert_null(nb_one_hot(ctx, y, 2, NB_F32));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_INDEX);
    cr_assert(strstr(nb_ctx_error(ctx), "one_hot") && strstr(nb_ctx_error(ctx), "[0, 2)"), "%s", nb_ctx_error(ctx));
}

/* masks are nonzero = true in any dtype: f32, f64 and i64, values other than 0/1 and NaN too */
Test(composite, masks_of_every_dtype) {
    nb_tensor *x = nb_from(ctx, NB_F32, NB_SHAPE(4), (float[]){1, 2, 3, 4});
    nb_tensor *masks[3] = {nb_from(ctx, NB_F32, NB_SHAPE(4), (float[]){0, 2.5f, NAN, 0}),
                           nb_from(ctx, NB_F64, NB_SHAPE(4), (double[]){0, -1, 1e-300, 0}),
                           nb_from(ctx, NB_I64, NB_SHAPE(4), (int64_t[]){0, 7, -3, 0})};
    for (int i = 0; i < 3; i++) {
        assert_values(nb_masked_fill(ctx, x, masks[i], -9), (double[]){1, -9, -9, 4}, 4, 0);
        assert_values(nb_where(ctx, masks[i], x, nb_scalar(ctx, NB_F32, 0)), (double[]){0, 2, 3, 0}, 4, 0);
    }
    /* comparisons give 0/1 masks in their inputs' dtype and refuse i64 (cast it first) */
    nb_tensor *ix = nb_from(ctx, NB_I64, NB_SHAPE(4), (int64_t[]){1, 5, 2, 8});
    nb_tensor *c = nb_gt(ctx, nb_cast(ctx, ix, NB_F32), nb_scalar(ctx, NB_F32, 2));
    cr_assert(c && c->dtype == NB_F32, "%s", nb_ctx_error(ctx));
    assert_values(c, (double[]){0, 1, 0, 1}, 4, 0);
    assert_values(nb_masked_fill(ctx, x, c, 0), (double[]){1, 0, 3, 0}, 4, 0);
    cr_assert_null(nb_gt(ctx, ix, ix));
    cr_assert(strstr(nb_ctx_error(ctx), "gt"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    /* the gradient of masked_fill is zero where filled, whatever the mask's dtype */
    nb_tensor *w = nb_from(ctx, NB_F64, NB_SHAPE(4), (double[]){1, 2, 3, 4});
    nb_requires_grad(w, true);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, nb_masked_fill(ctx, w, masks[2], 5)), NULL), NB_OK);
    assert_values(w->grad, (double[]){1, 0, 0, 1}, 4, 0);
}

/* assert_values for expected values that may be infinite or NaN */
static void assert_same(const nb_tensor *t, const double *want, int64_t n, double tol) {
    cr_assert(t && t->numel == n, "%s", nb_ctx_error(ctx));
    for (int64_t i = 0; i < n; i++) {
        const double v = nb_get(t, i);
        cr_assert(v == want[i] || (isnan(v) && isnan(want[i])) || fabs(v - want[i]) <= tol, "element %lld = %g, expected %g",
                  (long long)i, v, want[i]);
    }
}

/* What tril/triu cut away, and what einsum's diagonal leaves out, may be inf or NaN: they
 * select, they do not multiply by a 0/1 mask (0 * -inf gave NaN below a causal mask's
 * diagonal, and a softmax over scores + that mask was all NaN). x + -inf is a value too. */
Test(composite, non_finite_values_cut_away_stay_away) {
    nb_tensor *minf = nb_add_scalar(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(3, 3)), -INFINITY);
    cr_assert_not_null(minf, "%s", nb_ctx_error(ctx));
    nb_tensor *causal = nb_triu(ctx, minf, 1);
    const double ninf = -INFINITY;
    assert_same(causal, (double[]){0, ninf, ninf, 0, 0, ninf, 0, 0, 0}, 9, 0);
    nb_tensor *p = nb_softmax(ctx, nb_add(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(3, 3)), causal), -1);
    assert_same(p, (double[]){1, 0, 0, 0.5, 0.5, 0, 1. / 3, 1. / 3, 1. / 3}, 9, 1e-15);
    nb_tensor *m = nb_reshape(ctx, nb_arange(ctx, NB_F64, 1, 10, 1), NB_SHAPE(3, 3));
    nb_set(m, 1, NAN), nb_set(m, 3, INFINITY);
    assert_same(nb_tril(ctx, m, -1), (double[]){0, 0, 0, INFINITY, 0, 0, 7, 8, 0}, 9, 0);
    assert_same(nb_einsum(ctx, "ii->i", 1, &m), (double[]){1, 5, 9}, 3, 0);
    assert_same(nb_einsum(ctx, "ii", 1, &m), (double[]){15}, 1, 0);
}
