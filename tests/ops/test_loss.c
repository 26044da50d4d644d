/* Losses (src/ops/loss.c) against PyTorch, with first and second derivatives. */
#include "common.h"
#include "ref/torch_refs.h"

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
