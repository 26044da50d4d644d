/* max/avg/adaptive pooling: PyTorch values, gradients, errors. */
#include "nn_test_util.h"

static nb_ctx *ctx;
static void setup(void) { ctx = nb_ctx_new(); nb_ctx_seed(ctx, 11); }
static void teardown(void) { nb_ctx_free(ctx); }
TestSuite(pool, .init = setup, .fini = teardown, .timeout = 60);

Test(pool, values_match_pytorch) {
    nb_tensor *x = ref_tensor(ctx, NB_SHAPE(2, 3, 7, 7), 1.1, false);
    assert_ref(nb_max_pool2d(ctx, x, 3, 2, 1), REF_MAXPOOL);
    assert_ref(nb_avg_pool2d(ctx, x, 3, 2, 1), REF_AVGPOOL);
    assert_ref(nb_avg_pool2d(ctx, x, 2, 0, 0), REF_AVGPOOL2);
    nb_tensor *g = nb_adaptive_avg_pool2d(ctx, x, 1, 1);
    assert_ref(g, REF_ADAPTIVE1);
    cr_assert(g->ndim == 4 && g->shape[2] == 1 && g->shape[3] == 1);
    /* f32 max pool with padding: padding never wins, even for all-negative inputs */
    nb_tensor *neg = nb_full(ctx, NB_F32, NB_SHAPE(1, 1, 2, 2), -1e30);
    nb_tensor *m = nb_max_pool2d(ctx, neg, 2, 1, 1);
    for (int64_t i = 0; i < m->numel; i++) assert_close(nb_get(m, i), -1e30, 1e24, 0);
}

Test(pool, adaptive_avg_equals_avg_pool_when_divisible) {
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(2, 2, 6, 6));
    nb_tensor *a = nb_adaptive_avg_pool2d(ctx, x, 3, 3), *b = nb_avg_pool2d(ctx, x, 2, 2, 0);
    cr_assert(a && b && a->shape[2] == 3);
    for (int64_t i = 0; i < a->numel; i++) assert_close(nb_get(a, i), nb_get(b, i), 1e-15, 0);
    ASSERT_ERROR(ctx, nb_adaptive_avg_pool2d(ctx, x, 4, 4), NB_ERR_UNSUPPORTED, "(2,2,6,6)", "4x4");
}

Test(pool, max_pool_gradient_goes_to_the_argmax) {
    /* 1x1x2x2 input, one 2x2 window: the gradient is 1 at the maximum only */
    double v[4] = {0.5, 2.0, -1.0, 1.5};
    nb_tensor *x = nb_from(ctx, NB_F64, NB_SHAPE(1, 1, 2, 2), v);
    nb_requires_grad(x, true);
    nb_tensor *y = nb_max_pool2d(ctx, x, 2, 2, 0);
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    const double want[4] = {0, 1, 0, 0};
    assert_values(x->grad, want, 4, 0);
}

typedef struct { int k, s, p; bool is_max; } pool_cfg;
static nb_tensor *f_pool(nb_ctx *c, nb_tensor *const *in, void *u) {
    const pool_cfg *k = u;
    return k->is_max ? nb_max_pool2d(c, in[0], k->k, k->s, k->p) : nb_avg_pool2d(c, in[0], k->k, k->s, k->p);
}
static nb_tensor *f_adaptive(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_adaptive_avg_pool2d(c, in[0], 1, 1);
}

Test(pool, gradients) {
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(2, 2, 5, 5));
    pool_cfg cases[] = {{3, 2, 1, true}, {2, 0, 0, true}, {3, 2, 1, false}, {2, 1, 0, false}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_grads(ctx, f_pool, 1, &x, &cases[i], !cases[i].is_max);
    check_grads(ctx, f_adaptive, 1, &x, NULL, true);
}

Test(pool, errors) {
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(1, 2, 4, 4));
    ASSERT_ERROR(ctx, nb_max_pool2d(ctx, x, 7, 1, 1), NB_ERR_SHAPE, "max_pool2d", "(1,2,4,4)", "7x7", "6x6");
    ASSERT_ERROR(ctx, nb_avg_pool2d(ctx, x, 2, 1, 2), NB_ERR_VALUE, "avg_pool2d", "padding 2");
    ASSERT_ERROR(ctx, nb_max_pool2d(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(4, 4)), 2, 2, 0), NB_ERR_SHAPE, "(4,4)", "4-D");
}
