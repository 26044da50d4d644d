/* nb_ctx_on_grad_ready: each leaf is reported once, when its gradient is final, last layer first. */
#include "common.h"

TestSuite(grad_ready, .init = ctx_setup, .fini = ctx_teardown);

typedef struct {
    nb_tensor *seen[8];
    float first_grad[8];
    int n;
} ready_log;

static void on_ready(nb_tensor *leaf, void *user) {
    ready_log *log = user;
    log->first_grad[log->n] = ((float *)leaf->grad->data)[0];
    log->seen[log->n++] = leaf;
}

Test(grad_ready, reports_each_leaf_once_in_reverse_layer_order) {
    nb_params *ps = nb_params_new();
    nb_tensor *w1 = nb_params_add(ps, "w1", NB_SHAPE(8, 4)), *w2 = nb_params_add(ps, "w2", NB_SHAPE(3, 8));
    nb_rng rng = nb_rng_new(7);
    nb_rng_normal(&rng, w1, 0, 0.5);
    nb_rng_normal(&rng, w2, 0, 0.5);
    ready_log log = {0};
    nb_ctx_on_grad_ready(ctx, on_ready, &log);
    nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(5, 4));
    /* w1 is used twice (two paths), so it is final only after both uses are walked */
    nb_tensor *h = nb_add(ctx, nb_tanh(ctx, nb_linear(ctx, x, w1, NULL)), nb_linear(ctx, x, w1, NULL));
    nb_tensor *loss = nb_sum_all(ctx, nb_mul(ctx, nb_linear(ctx, h, w2, NULL), nb_linear(ctx, h, w2, NULL)));
    cr_assert_eq(nb_backward(ctx, loss, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(log.n, 2);
    cr_assert_eq(log.seen[0], w2);
    cr_assert_eq(log.seen[1], w1);
    /* the gradient handed over was already complete */
    cr_assert_eq(log.first_grad[0], ((float *)w2->grad->data)[0]);
    cr_assert_eq(log.first_grad[1], ((float *)w1->grad->data)[0]);
    cr_assert_neq(((float *)w1->grad->data)[0], 0.0f);
    nb_params_free(ps);
}
