/* sort, argsort, topk and take_along_dim (src/ops/sort.c): stable order with ties and NaN,
 * values and gradients against PyTorch 1.13 (tests/ref/make_tensor_refs.py), and both orders of
 * derivative by finite differences in every layout. */
#include "common.h"
#include "ref/tensor_refs.h"

TestSuite(sort, .init = ctx_setup, .fini = ctx_teardown);

static void assert_same(const nb_tensor *t, const double *want, int64_t n) { /* NaN equals NaN */
    cr_assert(t && t->numel == n, "%s", nb_ctx_error(ctx));
    for (int64_t i = 0; i < n; i++)
        cr_assert(isnan(want[i]) ? isnan(nb_get(t, i)) : nb_get(t, i) == want[i], "element %lld = %g, expected %g", (long long)i,
                  nb_get(t, i), want[i]);
}
static void assert_index(const nb_tensor *t, const int64_t *want, int64_t n) {
    cr_assert(t && t->dtype == NB_I64 && t->numel == n && !t->requires_grad);
    for (int64_t i = 0; i < n; i++) cr_assert_eq((int64_t)nb_get(t, i), want[i], "index %lld", (long long)i);
}

Test(sort, ties_keep_input_order_and_nan_is_largest) {
    nb_tensor *s = test_from(ctx, TR_S, NB_SHAPE(9)), *idx;
    for (int dt = 0; dt < 2; dt++) { /* f64, then f32 */
        nb_tensor *x = dt ? nb_cast(ctx, s, NB_F32) : s;
        assert_same(nb_sort(ctx, x, 0, false, &idx), TR_SORT_UP, 9);
        assert_index(idx, TR_SORT_UP_IDX, 9);
        assert_same(nb_sort(ctx, x, -1, true, &idx), TR_SORT_DOWN, 9);
        assert_index(idx, TR_SORT_DOWN_IDX, 9);
        assert_index(nb_argsort(ctx, x, 0, true), TR_SORT_DOWN_IDX, 9);
        assert_same(nb_topk(ctx, x, 4, 0, true, true, &idx), TR_TOPK_LARGE, 4);
        assert_index(idx, TR_SORT_DOWN_IDX, 4);
        /* PyTorch leaves the order of tied indices open in topk; here it is the input order */
        assert_same(nb_topk(ctx, x, 3, 0, false, false, &idx), TR_TOPK_SMALL, 3);
        assert_index(idx, TR_SORT_UP_IDX, 3);
    }
    /* -0.0 and 0.0 are equal: input order */
    assert_index(nb_argsort(ctx, test_from(ctx, (double[]){0.0, -0.0, 0.0, -1}, NB_SHAPE(4)), 0, false), (int64_t[]){3, 0, 1, 2}, 4);
}

Test(sort, values_and_gradients_match_torch) {
    nb_tensor *x = test_from(ctx, TR_X, NB_SHAPE(2, 3, 4)), *idx;
    nb_requires_grad(x, true);
    nb_tensor *v = nb_sort(ctx, x, 1, true, &idx);
    assert_values(v, TR_SORT_X_1_DOWN, 24, 0);
    assert_index(idx, TR_SORT_X_1_DOWN_IDX, 24);
    double w[24];
    for (int i = 0; i < 24; i++) w[i] = cos(TR_X[i]);
    assert_values(weighted_grad(ctx, v, w, x, false), TR_SORT_X_1_GRAD, 24, 1e-15);
    nb_tensor *t = nb_topk(ctx, x, 2, 2, true, true, NULL);
    cr_assert(t && t->ndim == 3 && t->shape[2] == 2);
    for (int i = 0; i < 12; i++) w[i] = sin((double)i);
    assert_values(weighted_grad(ctx, t, w, x, false), TR_TOPK_X_2_GRAD, 24, 1e-15);
    /* strided input: sort a transposed view along its axis 2 (x's axis 1) */
    nb_tensor *vt = nb_sort(ctx, nb_transpose(ctx, x, 1, 2), 2, true, NULL);
    assert_values(nb_transpose(ctx, vt, 1, 2), TR_SORT_X_1_DOWN, 24, 0);
}

typedef struct {
    int op; /* 0 sort, 1 topk largest, 2 topk smallest */
    int axis;
} sort_case;
static nb_tensor *case_f(nb_ctx *c, nb_tensor *const *in, void *u) {
    const sort_case *k = u;
    nb_tensor *y = k->op == 0 ? nb_sort(c, in[0], k->axis, k->axis == 0, NULL)
                              : nb_topk(c, in[0], 2, k->axis, k->op == 1, true, NULL);
    return nb_mul(c, y, nb_exp(c, y)); /* position-dependent, nonlinear */
}

Test(sort, gradients_every_layout) {
    static const sort_case cases[] = {{0, 0}, {0, -1}, {1, 1}, {2, 2}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
        for (int lay = LAYOUT_CONTIG; lay <= LAYOUT_SLICE; lay++) {
            nb_mark m = nb_ctx_mark(ctx);
            nb_tensor *x = test_leaf(ctx, NB_SHAPE(3, 4, 5), (test_layout)lay, DOM_ANY);
            char what[64];
            snprintf(what, sizeof what, "case %zu layout %d", k, lay);
            check_grads_named(case_f, 1, &x, (void *)&cases[k], true, what);
            nb_ctx_release(ctx, m);
        }
}

Test(sort, degenerate_shapes_and_bad_arguments) {
    nb_tensor *e = nb_zeros(ctx, NB_F64, NB_SHAPE(3, 0)), *idx;
    nb_tensor *se = nb_sort(ctx, e, 1, false, &idx);
    cr_assert(se && se->numel == 0 && idx && idx->shape[0] == 3 && idx->shape[1] == 0, "%s", nb_ctx_error(ctx));
    nb_tensor *k0 = nb_topk(ctx, nb_ones(ctx, NB_F64, NB_SHAPE(2, 3)), 0, 1, true, true, NULL);
    cr_assert(k0 && k0->shape[0] == 2 && k0->shape[1] == 0);
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3));
    cr_assert_null(nb_topk(ctx, x, 4, 1, true, true, &idx));
    cr_assert_null(idx);
    cr_assert(strstr(nb_ctx_error(ctx), "topk: k = 4 is out of range for axis 1 of (2,3)"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_sort(ctx, x, 2, false, NULL));
    cr_assert(strstr(nb_ctx_error(ctx), "sort: axis 2 out of range for (2,3)"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_argsort(ctx, nb_zeros(ctx, NB_I64, NB_SHAPE(3)), 0, false));
    cr_assert(strstr(nb_ctx_error(ctx), "argsort: expected f32 or f64"), "%s", nb_ctx_error(ctx));
}

/* ---- take_along_dim ------------------------------------------------------------------------------- */
Test(sort, take_along_dim_broadcasts_as_torch) {
    nb_tensor *x = test_from(ctx, TR_X, NB_SHAPE(2, 3, 4));
    nb_tensor *ia = nb_from(ctx, NB_I64, NB_SHAPE(2, 1, 2), TR_TAKE_IDX);
    nb_tensor *t = nb_take_along_dim(ctx, x, ia, 2); /* idx broadcast along axis 1 */
    cr_assert(t && t->ndim == 3 && t->shape[0] == 2 && t->shape[1] == 3 && t->shape[2] == 2, "%s", nb_ctx_error(ctx));
    assert_values(t, TR_TAKE, 12, 0);
    nb_tensor *x1 = test_from(ctx, TR_X, NB_SHAPE(1, 3, 4)); /* x broadcast along axis 0 */
    nb_requires_grad(x1, true);
    nb_tensor *tb = nb_take_along_dim(ctx, x1, nb_from(ctx, NB_I64, NB_SHAPE(2, 3, 1), TR_TAKE_B_IDX), -1);
    cr_assert(tb && tb->shape[0] == 2 && tb->shape[1] == 3 && tb->shape[2] == 1);
    assert_values(tb, TR_TAKE_B, 6, 0);
    assert_values(weighted_grad(ctx, tb, (double[]){1, 2, 3, 4, 5, 6}, x1, false), TR_TAKE_B_GRAD, 12, 0);
    /* argsort + take_along_dim is sort */
    assert_values(nb_take_along_dim(ctx, x, nb_argsort(ctx, x, 1, true), 1), TR_SORT_X_1_DOWN, 24, 0);
}

static nb_tensor *f_take(nb_ctx *c, nb_tensor *const *in, void *u) {
    nb_tensor *y = nb_take_along_dim(c, in[0], u, 1);
    return nb_mul(c, y, y);
}

Test(sort, take_along_dim_gradients_and_errors) {
    nb_tensor *idx = nb_from(ctx, NB_I64, NB_SHAPE(1, 5, 2), (int64_t[]){0, 3, 3, 1, 2, 2, 0, 0, 1, 3});
    for (int lay = LAYOUT_CONTIG; lay <= LAYOUT_SLICE; lay++) {
        nb_tensor *x = test_leaf(ctx, NB_SHAPE(3, 4, 2), (test_layout)lay, DOM_ANY);
        check_grads_named(f_take, 1, &x, idx, true, "take_along_dim");
    }
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(3, 4, 2));
    cr_assert_null(nb_take_along_dim(ctx, x, nb_zeros(ctx, NB_I64, NB_SHAPE(2, 1, 2)), 1));
    cr_assert(strstr(nb_ctx_error(ctx), "take_along_dim: indices (2,1,2) do not broadcast with x (3,4,2)"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_take_along_dim(ctx, x, nb_full(ctx, NB_I64, NB_SHAPE(1, 1, 1), 4), 1));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_INDEX);
    cr_assert(strstr(nb_ctx_error(ctx), "take_along_dim") && strstr(nb_ctx_error(ctx), "[0, 4)"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_take_along_dim(ctx, x, nb_zeros(ctx, NB_F64, NB_SHAPE(1, 1, 1)), 1));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_DTYPE);
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_take_along_dim(ctx, x, nb_zeros(ctx, NB_I64, NB_SHAPE(1, 1)), 1));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_SHAPE);
}

Test(sort, large_sorts_are_ordered_and_thread_independent) {
    nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(64, 1024)); /* above the parallel threshold */
    nb_tensor *idx[2];
    for (int t = 0; t < 2; t++) {
        nb_set_num_threads(t + 1);
        idx[t] = nb_argsort(ctx, x, 1, false);
    }
    nb_set_num_threads(0);
    for (int64_t i = 0; i < x->numel; i++) cr_assert_eq(nb_get(idx[0], i), nb_get(idx[1], i), "index %lld", (long long)i);
    nb_tensor *v = nb_take_along_dim(ctx, x, idx[0], 1);
    for (int64_t r = 0; r < 64; r++)
        for (int64_t j = 1; j < 1024; j++) cr_assert(nb_get(v, r * 1024 + j - 1) <= nb_get(v, r * 1024 + j));
}
