/* The backward pool: a backward pass without create_graph frees each gradient and each
 * temporary of a rule when it is dead. Same gradients as the graph-building pass, bits and
 * all; a peak near the saved activations; what a hook or nb_grad hands out stays valid. */
#include "common.h"

#include <string.h>

TestSuite(backward_pool, .init = ctx_setup, .fini = ctx_teardown);

/* a chain of element-wise ops with a residual reuse of x every few steps: each op saves its
 * output, and the backward makes a few temporaries per op */
static nb_tensor *chain(nb_ctx *c, nb_tensor *x, int depth) {
    nb_tensor *h = x;
    for (int i = 0; i < depth; i++) {
        h = nb_tanh(c, nb_mul_scalar(c, h, 0.9));
        if (i % 4 == 3) h = nb_add(c, h, x); /* x gathers several gradients: summed in place */
    }
    return nb_sum_all(c, nb_mul(c, h, h));
}

Test(backward_pool, same_gradients_as_the_graph_building_pass) {
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(64, 1000));
    nb_rng r = nb_rng_new(1);
    nb_rng_normal(&r, x, 0, 1);
    nb_requires_grad(x, true);
    nb_tensor *g_pool, *g_graph;
    nb_tensor *y = chain(ctx, x, 24);
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, &g_pool, false), NB_OK, "%s", nb_ctx_error(ctx));
    y = chain(ctx, x, 24);
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, &g_graph, true), NB_OK, "%s", nb_ctx_error(ctx)); /* no pool */
    cr_assert(memcmp(g_pool->data, g_graph->data, (size_t)x->numel * sizeof(float)) == 0, "pooled gradients differ");
    /* and nb_backward into .grad */
    y = chain(ctx, x, 24);
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert(memcmp(x->grad->data, g_graph->data, (size_t)x->numel * sizeof(float)) == 0, ".grad differs");
    nb_tensor_free(x);
}

Test(backward_pool, backward_peak_is_near_the_saved_activations) {
    const int depth = 40;
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(256, 1024)); /* 1 MiB */
    nb_rng r = nb_rng_new(2);
    nb_rng_normal(&r, x, 0, 1);
    nb_requires_grad(x, true);
    const size_t one = (size_t)x->numel * sizeof(float);
    for (int step = 0; step < 4; step++) {
        nb_ctx_reset(ctx);
        nb_ctx_reset_peak(ctx);
        nb_tensor *y = chain(ctx, x, depth);
        const size_t forward = nb_ctx_bytes_used(ctx);
        cr_assert_gt(forward, (size_t)depth * one, "the forward saves every op's output");
        const uint64_t m0 = nb_ctx_mallocs(ctx);
        nb_zero_grad(x);
        cr_assert_eq(nb_backward(ctx, y, NULL), NB_OK, "%s", nb_ctx_error(ctx));
        /* the backward makes ~3 tensors per op (about 140 MiB here), but holds a few at once */
        cr_assert_lt(nb_ctx_bytes_peak(ctx) - forward, 8 * one, "step %d: backward peak %zu over the forward's %zu", step,
                     nb_ctx_bytes_peak(ctx) - forward, forward);
        if (step >= 2) cr_assert_eq(nb_ctx_mallocs(ctx), m0, "step %d: the backward allocated", step);
    }
    nb_tensor_free(x);
}

/* a hook that keeps the gradient it sees, as users do to look at intermediate gradients */
static nb_tensor *keep(nb_ctx *c, nb_tensor *g, void *user) {
    (void)c;
    *(nb_tensor **)user = g;
    return g;
}

Test(backward_pool, what_hooks_and_grad_hand_out_stays_valid) {
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(32, 300));
    nb_requires_grad(x, true);
    nb_tensor *h = nb_mul_scalar(ctx, x, 3.0), *seen = NULL;
    cr_assert_eq(nb_add_hook(ctx, h, keep, &seen), NB_OK);
    nb_tensor *y = nb_sum_all(ctx, nb_mul(ctx, nb_tanh(ctx, h), nb_tanh(ctx, h)));
    nb_tensor *gx;
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, &gx, false), NB_OK, "%s", nb_ctx_error(ctx));
    /* more work in the same step, backward included, must not reuse their memory */
    nb_tensor *z = nb_sum_all(ctx, nb_exp(ctx, nb_mul_scalar(ctx, x, 0.01)));
    cr_assert_eq(nb_backward(ctx, z, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_not_null(seen);
    for (int64_t i = 0; i < x->numel; i += 97) {
        const double t = tanh(3 * nb_get(x, i)), dh = 2 * t * (1 - t * t);
        assert_close(nb_get(seen, i), dh, 1e-12, 1e-12, "hooked gradient %lld", (long long)i);
        assert_close(nb_get(gx, i), 3 * dh, 1e-12, 1e-12, "nb_grad result %lld", (long long)i);
    }
}
