/* cumsum, cumprod and prod (src/ops/scan.c): values, gradients and second derivatives against
 * PyTorch 1.13 (tests/ref/make_tensor_refs.py), with zeros in the input where PyTorch needs its
 * special gradient paths, and finite differences in every layout. */
#include "common.h"
#include "ref/tensor_refs.h"

TestSuite(scan, .init = ctx_setup, .fini = ctx_teardown);

static nb_tensor *leaf_from(const double *v, int ndim, const int64_t *shape) {
    nb_tensor *x = test_from(ctx, v, ndim, shape);
    nb_requires_grad(x, true);
    return x;
}

Test(scan, values_match_torch) {
    nb_tensor *x = test_from(ctx, TR_X, NB_SHAPE(2, 3, 4));
    assert_values(nb_cumsum(ctx, x, 1), TR_CUMSUM_1, 24, 1e-15);
    assert_values(nb_cumprod(ctx, x, -1), TR_CUMPROD_2, 24, 1e-15);
    nb_tensor *p = nb_prod(ctx, x, 1, (int[]){1}, false);
    cr_assert(p && p->ndim == 2 && p->shape[0] == 2 && p->shape[1] == 4, "%s", nb_ctx_error(ctx));
    assert_values(p, TR_PROD_1, 8, 1e-15);
    /* strided input, f32, keepdim, several axes */
    nb_tensor *t = nb_transpose(ctx, nb_cumsum(ctx, nb_transpose(ctx, x, 1, 2), 2), 1, 2);
    assert_values(t, TR_CUMSUM_1, 24, 1e-15);
    assert_values(nb_cumprod(ctx, nb_cast(ctx, x, NB_F32), 2), TR_CUMPROD_2, 24, 1e-6);
    nb_tensor *pk = nb_prod(ctx, x, 2, (int[]){0, 2}, true);
    cr_assert(pk && pk->ndim == 3 && pk->shape[0] == 1 && pk->shape[1] == 3 && pk->shape[2] == 1);
    for (int r = 0; r < 3; r++) {
        double want = 1;
        for (int b = 0; b < 2; b++)
            for (int j = 0; j < 4; j++) want *= TR_X[b * 12 + r * 4 + j];
        assert_close(nb_get(pk, r), want, 0, 1e-14);
    }
    double all = 1;
    for (int i = 0; i < 24; i++) all *= TR_X[i];
    assert_close(nb_item(nb_prod(ctx, x, 0, NULL, false)), all, 0, 1e-14);
}

Test(scan, cumprod_gradients_with_zeros_match_torch) {
    /* two zeros: the gradient is zero past the first one, to first order */
    nb_tensor *z = leaf_from(TR_Z, NB_SHAPE(7));
    nb_tensor *y = nb_cumprod(ctx, z, 0);
    assert_values(y, TR_CUMPROD_Z, 7, 0);
    assert_values(weighted_grad(ctx, y, TR_WZ, z, false), TR_CUMPROD_Z_GRAD, 7, 1e-14);
    /* second order: a Hessian-vector product (PyTorch's O(n^2) double-backward path) */
    nb_tensor *g = weighted_grad(ctx, nb_cumprod(ctx, z, 0), TR_WZ, z, true);
    assert_values(weighted_grad(ctx, g, TR_VZ, z, false), TR_CUMPROD_Z_HVP, 7, 1e-14);
    nb_tensor *z1 = leaf_from(TR_Z1, NB_SHAPE(6));
    assert_values(weighted_grad(ctx, nb_cumprod(ctx, z1, 0), TR_WZ, z1, false), TR_CUMPROD_Z1_GRAD, 6, 1e-14);
    g = weighted_grad(ctx, nb_cumprod(ctx, z1, 0), TR_WZ, z1, true);
    assert_values(weighted_grad(ctx, g, TR_VZ, z1, false), TR_CUMPROD_Z1_HVP, 6, 1e-14);
}

Test(scan, prod_gradients_with_zeros_match_torch) {
    const double one[1] = {1};
    nb_tensor *z1 = leaf_from(TR_Z1, NB_SHAPE(6));
    nb_tensor *p = nb_prod(ctx, z1, 0, NULL, false);
    cr_assert(p && p->ndim == 0);
    assert_values(p, TR_PROD_Z1, 1, 0);
    assert_values(weighted_grad(ctx, p, one, z1, false), TR_PROD_Z1_GRAD, 6, 1e-14);
    nb_tensor *g = weighted_grad(ctx, nb_prod(ctx, z1, 0, NULL, false), one, z1, true);
    assert_values(weighted_grad(ctx, g, TR_VZ, z1, false), TR_PROD_Z1_HVP, 6, 1e-14);
    nb_tensor *z = leaf_from(TR_Z, NB_SHAPE(7));
    assert_values(weighted_grad(ctx, nb_prod(ctx, z, 0, NULL, false), one, z, false), TR_PROD_Z_GRAD, 7, 0);
}

/* ---- finite differences in every layout ------------------------------------------------------ */
typedef struct {
    const char *name;
    int op; /* 0 cumsum, 1 cumprod, 2 prod */
    int axis;
} scan_case;
static nb_tensor *case_f(nb_ctx *c, nb_tensor *const *in, void *u) {
    const scan_case *k = u;
    nb_tensor *y = k->op == 0 ? nb_cumsum(c, in[0], k->axis)
                 : k->op == 1 ? nb_cumprod(c, in[0], k->axis)
                              : nb_prod(c, in[0], 2, (int[]){k->axis, 0}, true);
    return nb_mul(c, y, y);
}

Test(scan, gradients_every_layout_and_axis) {
    static const scan_case cases[] = {{"cumsum 0", 0, 0}, {"cumsum -1", 0, -1}, {"cumprod 1", 1, 1},
                                      {"cumprod 2", 1, 2}, {"prod (2,0)", 2, 2}, {"prod (1,0)", 2, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
        for (int lay = LAYOUT_CONTIG; lay <= LAYOUT_SLICE; lay++) {
            nb_mark m = nb_ctx_mark(ctx);
            nb_tensor *x = test_leaf(ctx, NB_SHAPE(3, 4, 3), (test_layout)lay, DOM_ANY);
            if (k % 2) nb_set(x, 5, 0.0); /* an exact zero: the gradients must stay exact */
            char what[64];
            snprintf(what, sizeof what, "%s layout %d", cases[k].name, lay);
            check_grads_named(case_f, 1, &x, (void *)&cases[k], true, what);
            nb_ctx_release(ctx, m);
        }
}

Test(scan, degenerate_shapes) {
    nb_tensor *s = nb_scalar(ctx, NB_F64, 2.5); /* 0-d: axis 0 or -1, as PyTorch */
    nb_tensor *c = nb_cumsum(ctx, s, 0);
    cr_assert(c && c->ndim == 0 && nb_item(c) == 2.5, "%s", nb_ctx_error(ctx));
    c = nb_cumprod(ctx, s, -1);
    cr_assert(c && c->ndim == 0 && nb_item(c) == 2.5, "%s", nb_ctx_error(ctx));
    nb_tensor *e = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 0));
    nb_tensor *ce = nb_cumprod(ctx, e, 1);
    cr_assert(ce && ce->shape[0] == 2 && ce->shape[1] == 0);
    nb_tensor *pe = nb_prod(ctx, e, 1, (int[]){1}, false); /* the empty product */
    cr_assert(pe && pe->ndim == 1 && pe->shape[0] == 2 && nb_get(pe, 0) == 1 && nb_get(pe, 1) == 1);
    cr_assert(nb_item(nb_prod(ctx, e, 0, NULL, false)) == 1);
    /* NaN and inf flow as in PyTorch: 0 * inf is NaN from there on */
    nb_tensor *v = test_from(ctx, (double[]){2, 0, INFINITY, 3}, NB_SHAPE(4));
    nb_tensor *cp = nb_cumprod(ctx, v, 0);
    cr_assert(nb_get(cp, 0) == 2 && nb_get(cp, 1) == 0 && isnan(nb_get(cp, 2)) && isnan(nb_get(cp, 3)));
    nb_tensor *cs = nb_cumsum(ctx, test_from(ctx, (double[]){1, NAN, 2}, NB_SHAPE(3)), 0);
    cr_assert(nb_get(cs, 0) == 1 && isnan(nb_get(cs, 1)) && isnan(nb_get(cs, 2)));
}

Test(scan, refuses_bad_arguments) {
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3));
    cr_assert_null(nb_cumsum(ctx, x, 2));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_AXIS);
    cr_assert(strstr(nb_ctx_error(ctx), "cumsum: axis 2 out of range for (2,3)"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_cumprod(ctx, nb_zeros(ctx, NB_I64, NB_SHAPE(3)), 0));
    cr_assert(strstr(nb_ctx_error(ctx), "cumprod: expected f32 or f64"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_prod(ctx, x, 2, (int[]){1, -1}, false));
    cr_assert(strstr(nb_ctx_error(ctx), "prod: axis -1 appears twice"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_cumsum(ctx, NULL, 0));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_NULL);
}

/* The product over an empty axis is 1 and stays on the graph: backward gives the (empty)
 * gradient, as torch; it was a constant, and backward failed "does not require grad". */
Test(scan, prod_over_an_empty_axis_is_differentiable) {
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(0, 3));
    cr_assert_eq(nb_requires_grad(x, true), NB_OK);
    nb_tensor *p = nb_prod(ctx, x, 1, (int[]){0}, false);
    cr_assert(p && p->numel == 3 && nb_get(p, 0) == 1.0 && nb_get(p, 2) == 1.0, "%s", nb_ctx_error(ctx));
    cr_assert(p->requires_grad);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, p), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert(x->grad && x->grad->numel == 0);
}
