/* Proximal L1 (exact zeros) against the subgradient penalty, and the max-norm projection. */
#include "common.h"

#include <string.h>

TestSuite(constraint, .init = ctx_setup, .fini = ctx_teardown);

Test(constraint, prox_l1_soft_thresholds) {
    nb_params *ps = nb_params_new();
    nb_tensor *W = nb_params_add(ps, "W", NB_SHAPE(1, 5)), *b = nb_params_add(ps, "b", NB_SHAPE(2));
    const double v[5] = {0.5, -0.05, 0.1, -2.0, 0.0};
    for (int i = 0; i < 5; i++) nb_set(W, i, v[i]);
    nb_fill(b, 0.05);
    cr_assert_eq(nb_prox_l1(ps, NULL, 0.1), NB_OK);
    const double want[5] = {0.4, 0.0, 0.0, -1.9, 0.0};
    for (int i = 0; i < 5; i++) assert_close(nb_get(W, i), want[i], 1e-7, 0);
    cr_assert_eq(nb_get(b, 0), (double)0.05f, "bias not selected by default");
    cr_assert_eq(nb_prox_l1(ps, (const bool[]){false, true}, 0.1), NB_OK);
    cr_assert_eq(nb_get(b, 0), 0.0);
    cr_assert_eq(nb_prox_l1(ps, NULL, -1.0), NB_ERR_VALUE);
    nb_params_free(ps);
}

/* y = X w* with 3 of 20 weights non-zero; minimise mean (Xw - y)^2 + lambda * sum |w| */
#define NS 60
#define NF 20
static int count_zeros_after_training(bool proximal) {
    nb_params *ps = nb_params_new();
    nb_tensor *w = nb_params_add(ps, "w", NB_SHAPE(NF, 1));
    nb_ctx_seed(ctx, 11);
    nb_tensor *Xs = nb_randn(ctx, NB_F32, NB_SHAPE(NS, NF));
    nb_tensor *X = nb_tensor_clone(Xs), *Y = nb_tensor_new(NB_F32, NB_SHAPE(NS, 1));
    for (int i = 0; i < NS; i++)
        nb_set(Y, i, 2.0 * nb_get(X, i * NF + 0) - 3.0 * nb_get(X, i * NF + 5) + 1.5 * nb_get(X, i * NF + 12));
    const double lambda = 0.1, lr = 0.05;
    nb_hparams hp = nb_sgd.defaults;
    hp.lr = lr;
    nb_optim *opt = nb_optim_new(&nb_sgd, ps, &hp);
    for (int s = 0; s < 400; s++) {
        nb_ctx_reset(ctx);
        nb_params_zero_grad(ps);
        int ax = 1; /* X w as a broadcast product and a row sum */
        nb_tensor *pred = nb_sum(ctx, nb_mul(ctx, X, nb_reshape(ctx, w, NB_SHAPE(1, NF))), 1, &ax, true);
        nb_tensor *loss = nb_mse_loss(ctx, pred, Y, NB_REDUCE_MEAN);
        if (!proximal) loss = nb_add(ctx, loss, nb_l1_penalty_params(ctx, ps, NULL, lambda));
        cr_assert_eq(nb_backward(ctx, loss, NULL), NB_OK, "%s", nb_ctx_error(ctx));
        nb_optim_step(opt);
        if (proximal) nb_prox_l1(ps, NULL, lr * lambda);
    }
    int zeros = 0;
    for (int i = 0; i < NF; i++) zeros += nb_get(w, i) == 0.0;
    /* both find the support */
    cr_assert(fabs(nb_get(w, 0) - 2.0) < 0.2 && fabs(nb_get(w, 5) + 3.0) < 0.2 && fabs(nb_get(w, 12) - 1.5) < 0.2);
    nb_optim_free(opt);
    nb_tensor_free(X), nb_tensor_free(Y);
    nb_params_free(ps);
    return zeros;
}

Test(constraint, proximal_l1_gives_exact_zeros_subgradient_does_not, .timeout = 60) {
    int sub = count_zeros_after_training(false), prox = count_zeros_after_training(true);
    cr_assert_eq(prox, NF - 3, "proximal: %d exact zeros of %d irrelevant weights", prox, NF - 3);
    cr_assert(sub < prox, "subgradient %d zeros, proximal %d", sub, prox);
}

Test(constraint, max_norm_rescales_long_rows_only) {
    nb_params *ps = nb_params_new();
    nb_tensor *W = nb_params_add(ps, "W", NB_SHAPE(2, 2)), *b = nb_params_add(ps, "b", NB_SHAPE(2));
    const double v[4] = {3, 4, 0.3, 0.4}; /* row norms 5 and 0.5 */
    for (int i = 0; i < 4; i++) nb_set(W, i, v[i]);
    nb_fill(b, 10.0);
    cr_assert_eq(nb_max_norm(ps, NULL, 2.0), NB_OK);
    const double want[4] = {1.2, 1.6, 0.3, 0.4};
    for (int i = 0; i < 4; i++) assert_close(nb_get(W, i), want[i], 1e-6, 0);
    cr_assert_eq(nb_get(b, 0), 10.0, "1-D parameters are not rows");
    cr_assert_eq(nb_max_norm(ps, NULL, 0.0), NB_ERR_VALUE);
    cr_assert(strstr(nb_last_error(), "max_norm"));
    nb_params_free(ps);
}
