/* batch/layer/group norm: PyTorch values (train, eval, running statistics), gradients in
 * train and eval mode, second derivatives of layer norm, errors. */
#include "nn_test_util.h"

static nb_ctx *ctx;
static void setup(void) { ctx = nb_ctx_new(); nb_ctx_seed(ctx, 13); }
static void teardown(void) { nb_ctx_free(ctx); }
TestSuite(norm, .init = setup, .fini = teardown, .timeout = 60);

Test(norm, batch_norm_matches_pytorch_over_two_steps_and_eval) {
    nb_tensor *w = ref_tensor(ctx, NB_SHAPE(3), 1.2, false), *b = ref_tensor(ctx, NB_SHAPE(3), 1.3, false);
    nb_tensor *rm = nb_tensor_new(NB_F32, NB_SHAPE(3)), *rv = nb_tensor_new(NB_F32, NB_SHAPE(3));
    nb_fill(rv, 1.0);
    nb_tensor *x1 = nb_affine(ctx, ref_tensor(ctx, NB_SHAPE(4, 3, 5, 5), 1.4, false), 2.0, 0.5);
    nb_tensor *x2 = nb_affine(ctx, ref_tensor(ctx, NB_SHAPE(4, 3, 5, 5), 1.5, false), 3.0, -1.0);
    assert_ref(nb_batch_norm(ctx, x1, w, b, rm, rv, 0.1, 1e-5), REF_BN_TRAIN1);
    cr_assert_not_null(nb_batch_norm(ctx, x2, w, b, rm, rv, 0.1, 1e-5));
    assert_values(rm, REF_BN_RMEAN, 3, 1e-6); /* f32 running statistics */
    assert_values(rv, REF_BN_RVAR, 3, 1e-6);
    nb_ctx_set_train(ctx, false);
    nb_tensor *y = nb_batch_norm(ctx, x1, w, b, rm, rv, 0.1, 1e-5);
    assert_values(y, REF_BN_EVAL, 300, 1e-5);
    assert_values(rm, REF_BN_RMEAN, 3, 1e-6); /* eval leaves them alone */
    nb_ctx_set_train(ctx, true);
    /* 2-D input (N, C): statistics over N */
    nb_fill(rv, 1.0);
    nb_fill(rm, 0.0);
    assert_ref(nb_batch_norm(ctx, ref_tensor(ctx, NB_SHAPE(8, 3), 1.6, false), NULL, NULL, rm, rv, 0.1, 1e-5), REF_BN1D_TRAIN);
    assert_values(rv, REF_BN1D_RVAR, 3, 1e-6);
    nb_tensor_free(rm);
    nb_tensor_free(rv);
}

Test(norm, layer_and_group_norm_match_pytorch) {
    nb_tensor *x = ref_tensor(ctx, NB_SHAPE(3, 4, 5), 1.7, false);
    assert_ref(nb_layer_norm(ctx, x, 2, ref_tensor(ctx, NB_SHAPE(4, 5), 1.8, false), ref_tensor(ctx, NB_SHAPE(4, 5), 1.9, false), 1e-5),
               REF_LAYERNORM);
    x = ref_tensor(ctx, NB_SHAPE(2, 6, 3, 3), 2.0, false);
    assert_ref(nb_group_norm(ctx, x, 3, ref_tensor(ctx, NB_SHAPE(6), 2.1, false), ref_tensor(ctx, NB_SHAPE(6), 2.2, false), 1e-5),
               REF_GROUPNORM);
    assert_ref(nb_group_norm(ctx, x, 6, NULL, NULL, 1e-5), REF_INSTNORM);
}

static nb_tensor *f_bn(nb_ctx *c, nb_tensor *const *in, void *u) {
    return nb_batch_norm(c, in[0], in[1], in[2], u ? ((nb_tensor **)u)[0] : NULL, u ? ((nb_tensor **)u)[1] : NULL, 0.1, 1e-5);
}
static nb_tensor *f_ln(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_layer_norm(c, in[0], 1, in[1], in[2], 1e-5);
}
static nb_tensor *f_gn(nb_ctx *c, nb_tensor *const *in, void *u) {
    return nb_group_norm(c, in[0], *(int *)u, in[1], in[2], 1e-5);
}

Test(norm, gradients_train_and_eval) {
    nb_tensor *in[3] = {rand_leaf(ctx, NB_SHAPE(3, 2, 2, 3)), rand_leaf(ctx, NB_SHAPE(2)), rand_leaf(ctx, NB_SHAPE(2))};
    nb_tensor *stats[2] = {nb_tensor_new(NB_F64, NB_SHAPE(2)), nb_tensor_new(NB_F64, NB_SHAPE(2))};
    nb_fill(stats[0], 0.3);
    nb_fill(stats[1], 1.7);
    check_grads(ctx, f_bn, 3, in, stats, false); /* train: batch statistics */
    nb_tensor *in2[3] = {rand_leaf(ctx, NB_SHAPE(5, 3)), rand_leaf(ctx, NB_SHAPE(3)), rand_leaf(ctx, NB_SHAPE(3))};
    check_grads(ctx, f_bn, 3, in2, NULL, false);
    nb_ctx_set_train(ctx, false);
    check_grads(ctx, f_bn, 3, in, stats, false); /* eval: running statistics are constants */
    nb_ctx_set_train(ctx, true);
    nb_tensor_free(stats[0]);
    nb_tensor_free(stats[1]);

    nb_tensor *ln[3] = {rand_leaf(ctx, NB_SHAPE(3, 4)), rand_leaf(ctx, NB_SHAPE(4)), rand_leaf(ctx, NB_SHAPE(4))};
    check_grads(ctx, f_ln, 3, ln, NULL, true);
    int groups = 2;
    nb_tensor *gn[3] = {rand_leaf(ctx, NB_SHAPE(2, 4, 3)), rand_leaf(ctx, NB_SHAPE(4)), rand_leaf(ctx, NB_SHAPE(4))};
    check_grads(ctx, f_gn, 3, gn, &groups, false);
}

Test(norm, errors) {
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(4, 3, 2, 2));
    ASSERT_ERROR(ctx, nb_batch_norm(ctx, x, nb_ones(ctx, NB_F32, NB_SHAPE(4)), NULL, NULL, NULL, 0.1, 1e-5), NB_ERR_SHAPE,
                 "batch_norm", "weight (4)", "(4,3,2,2)");
    ASSERT_ERROR(ctx, nb_batch_norm(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(1, 3)), NULL, NULL, NULL, NULL, 0.1, 1e-5), NB_ERR_SHAPE,
                 "(1,3)", "more than 1");
    ASSERT_ERROR(ctx, nb_group_norm(ctx, x, 2, NULL, NULL, 1e-5), NB_ERR_VALUE, "groups 2", "(4,3,2,2)");
    ASSERT_ERROR(ctx, nb_layer_norm(ctx, x, 1, nb_ones(ctx, NB_F32, NB_SHAPE(3)), NULL, 1e-5), NB_ERR_SHAPE, "layer_norm", "(3)",
                 "(4,3,2,2)");
}
