/* Step memory. The backward pool: a backward pass without create_graph frees each gradient and
 * each temporary of a rule when it is dead (same gradients as the graph-building pass, bits and
 * all; a peak near the saved activations; what a hook or nb_grad hands out stays valid). And
 * nb_ctx_keep: inference whose peak is one block of the network. */
#include "common.h"

#include <string.h>

TestSuite(memory, .init = ctx_setup, .fini = ctx_teardown);

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

Test(memory, same_gradients_as_the_graph_building_pass) {
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

Test(memory, backward_peak_is_near_the_saved_activations) {
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

Test(memory, what_hooks_and_grad_hand_out_stays_valid) {
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

/* a block of a network: a few full-size temporaries, one output */
static nb_tensor *block(nb_ctx *c, nb_tensor *h, double s) {
    nb_tensor *a = nb_tanh(c, nb_mul_scalar(c, h, s));
    return nb_add(c, nb_mul(c, a, a), nb_mul_scalar(c, h, 0.5));
}

Test(memory, keep_bounds_inference_to_one_block) {
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(128, 2048)); /* 1 MiB */
    nb_rng r = nb_rng_new(4);
    nb_rng_normal(&r, x, 0, 1);
    const size_t one = (size_t)x->numel * sizeof(float);
    nb_tensor *plain = NULL, *kept = NULL;
    NB_NO_GRAD(ctx) {
        nb_tensor *h = x;
        for (int b = 0; b < 30; b++) h = block(ctx, h, 0.9 + 0.001 * b);
        plain = h;
    }
    cr_assert_gt(nb_ctx_bytes_used(ctx), 100 * one, "without keep every temporary stays");
    nb_ctx_reset(ctx);
    nb_ctx_reset_peak(ctx);
    const uint64_t m0 = nb_ctx_mallocs(ctx);
    for (int pass = 0; pass < 2; pass++) {
        NB_NO_GRAD(ctx) {
            nb_tensor *h = x;
            nb_mark m = nb_ctx_mark(ctx); /* one mark: each keep lets the previous block's output go */
            for (int b = 0; b < 30; b++) h = nb_ctx_keep(ctx, m, block(ctx, h, 0.9 + 0.001 * b));
            kept = h;
        }
        if (pass == 0) nb_ctx_reset(ctx);
    }
    cr_assert_not_null(kept, "%s", nb_ctx_error(ctx));
    cr_assert_lt(nb_ctx_bytes_peak(ctx), 8 * one, "peak %zu with keep", nb_ctx_bytes_peak(ctx));
    cr_assert_leq(nb_ctx_mallocs(ctx) - m0, 1, "keep allocates once (its staging buffer)");
    nb_ctx *c2 = nb_ctx_new(); /* the same values as without keep, recomputed */
    NB_NO_GRAD(c2) {
        nb_tensor *h = x;
        for (int b = 0; b < 30; b++) h = block(c2, h, 0.9 + 0.001 * b);
        plain = h;
        cr_assert(memcmp(plain->data, kept->data, one) == 0, "kept values differ");
    }
    nb_ctx_free(c2);
    nb_tensor_free(x);
}

/* A kept tensor in a later chunk of a growing arena (the first step of an inference loop)
 * moves to the mark without the staging buffer: no malloc beyond the arena's own chunks, and
 * strided views are copied with their layout resolved. */
Test(memory, keep_across_chunks_needs_no_staging_buffer) {
    nb_ctx *c = nb_ctx_new();
    nb_tensor *v = NULL;
    NB_NO_GRAD(c) {
        nb_tensor *small = nb_full(c, NB_F32, NB_SHAPE(4), 1.0); /* the first chunk (1 MiB) */
        const nb_mark m = nb_ctx_mark(c);
        nb_tensor *a = nb_arange(c, NB_F32, 0, 200 * 1024, 1);     /* 800 KiB: still the first chunk */
        nb_tensor *t = nb_reshape(c, nb_mul_scalar(c, a, 2.0), NB_SHAPE(400, 512)); /* a second chunk */
        const uint64_t before = nb_ctx_mallocs(c);
        nb_tensor *k = nb_ctx_keep(c, m, t);
        cr_assert_not_null(k, "%s", nb_ctx_error(c));
        cr_assert_eq(nb_ctx_mallocs(c), before, "keep allocated (staging)");
        for (int64_t i = 0; i < k->numel; i += 997) cr_assert_eq(nb_get(k, i), 2.0 * (double)i);
        const nb_mark m2 = nb_ctx_mark(c);
        nb_tensor *big = nb_mul_scalar(c, nb_arange(c, NB_F32, 0, 600 * 1024, 1), 1.0); /* another chunk */
        v = nb_ctx_keep(c, m2, nb_transpose(c, nb_reshape(c, big, NB_SHAPE(1024, 600)), 0, 1));
        cr_assert_eq(nb_get(small, 0), 1.0);
    }
    cr_assert(v && v->shape[0] == 600 && v->shape[1] == 1024, "%s", nb_ctx_error(c));
    for (int64_t i = 0; i < 600; i += 7)
        for (int64_t j = 0; j < 1024; j += 13) cr_assert_eq(nb_get(v, i * 1024 + j), (double)(j * 600 + i));
    nb_ctx_free(c);
}

Test(memory, keep_releases_nothing_a_graph_needs) {
    nb_tensor *w = nb_randn(ctx, NB_F64, NB_SHAPE(4, 4));
    nb_requires_grad(w, true);
    nb_mark m = nb_ctx_mark(ctx);
    nb_tensor *h = nb_tanh(ctx, nb_mul_scalar(ctx, w, 2.0));
    cr_assert_eq(nb_ctx_keep(ctx, m, h), h, "in grad mode with a graph, keep changes nothing");
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, h), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    /* a stale mark is refused, naming the function */
    nb_ctx_reset(ctx);
    cr_assert_null(nb_ctx_keep(ctx, m, NULL));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_STATE);
    cr_assert(strstr(nb_ctx_error(ctx), "ctx_keep"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    /* a failed op inside the block: NULL back, the op's error kept, the block released */
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3));
    m = nb_ctx_mark(ctx);
    const size_t before = nb_ctx_bytes_used(ctx);
    nb_tensor *bad = nb_add(ctx, nb_exp(ctx, x), nb_zeros(ctx, NB_F32, NB_SHAPE(4)));
    cr_assert_null(nb_ctx_keep(ctx, m, bad));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_SHAPE, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_ctx_bytes_used(ctx), before);
}

/* The context's limit covers the pool: a backward that needs more fails with NB_ERR_NOMEM
 * naming the op, and the context works again after a reset. */
Test(memory, the_limit_covers_the_backward_pool) {
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(256, 1024)); /* 1 MiB */
    nb_rng r = nb_rng_new(5);
    nb_rng_normal(&r, x, 0, 1);
    nb_requires_grad(x, true);
    nb_tensor *y = chain(ctx, x, 8);
    nb_ctx_set_limit(ctx, nb_ctx_bytes_used(ctx) + 512 * 1024); /* less than one gradient more */
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_ERR_NOMEM, "%s", nb_ctx_error(ctx));
    cr_assert_lt(nb_ctx_bytes_peak(ctx), nb_ctx_bytes_used(ctx) + 512 * 1024 + 4096);
    nb_ctx_set_limit(ctx, 0);
    nb_ctx_reset(ctx);
    y = chain(ctx, x, 8);
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    nb_tensor_free(x);
}

/* A step leaf made before a mark: the .grad a backward makes after the mark, and a hook added
 * after it, are released with the mark (the leaf no longer points at them), so the next
 * backward makes a fresh .grad instead of adding into memory a later op reused (it crashed). */
static int hook_calls;
static nb_tensor *count_hook(nb_ctx *c, nb_tensor *g, void *user) {
    (void)c, (void)user;
    hook_calls++;
    return g;
}
Test(memory, release_unlinks_grad_and_hooks_made_after_the_mark) {
    nb_tensor *x = nb_full(ctx, NB_F64, NB_SHAPE(4), 1.0);
    nb_requires_grad(x, true);
    for (int micro = 0; micro < 3; micro++) {
        nb_mark m = nb_ctx_mark(ctx);
        cr_assert_eq(nb_add_hook(ctx, x, count_hook, NULL), NB_OK);
        nb_tensor *loss = nb_sum_all(ctx, nb_mul_scalar(ctx, x, 2.0));
        hook_calls = 0;
        cr_assert_eq(nb_backward(ctx, loss, NULL), NB_OK, "%s", nb_ctx_error(ctx));
        cr_assert_eq(hook_calls, 1, "micro %d: %d hook calls", micro, hook_calls);
        for (int i = 0; i < 4; i++) cr_assert_eq(nb_get(x->grad, i), 2.0, "micro %d", micro);
        nb_ctx_release(ctx, m);
        cr_assert_null(x->grad);
        cr_assert_null(x->hooks);
        cr_assert_not_null(nb_full(ctx, NB_F64, NB_SHAPE(64), 7.0)); /* reuses the released memory */
    }
    /* made before the mark: kept, and accumulated into */
    nb_tensor *loss = nb_sum_all(ctx, x);
    cr_assert_eq(nb_backward(ctx, loss, NULL), NB_OK);
    nb_mark m = nb_ctx_mark(ctx);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, nb_mul_scalar(ctx, x, 3.0)), NULL), NB_OK);
    nb_ctx_release(ctx, m);
    cr_assert_not_null(x->grad);
    cr_assert_eq(nb_get(x->grad, 0), 4.0);
}

/* nb_ctx_release frees what nb_grad handed back after the mark (the pool kept it: 1 MiB more
 * per mark/grad/release round, 200 MB after 200), and a reset returns the blocks no recent step
 * used once the pool holds more than twice the recent peak (a run whose batch grows kept every
 * size it ever had: 15x the largest step). A steady loop still allocates nothing. */
#include "internal.h"
Test(memory, the_pool_gives_back_what_is_released_or_outgrown) {
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(256, 1024)); /* 1 MiB */
    nb_rng r = nb_rng_new(5);
    nb_rng_normal(&r, x, 0, 1);
    nb_requires_grad(x, true);
    size_t after_first = 0;
    for (int round = 0; round < 50; round++) {
        nb_mark m = nb_ctx_mark(ctx);
        nb_tensor *g;
        cr_assert_eq(nb_grad(ctx, 1, (nb_tensor *[]){chain(ctx, x, 4)}, NULL, 1, &x, &g, false), NB_OK);
        nb_ctx_release(ctx, m);
        if (round == 0) after_first = ctx->pool_bytes;
        cr_assert_eq(nb_ctx_bytes_used(ctx), 0, "round %d: %zu bytes still in use", round, nb_ctx_bytes_used(ctx));
    }
    cr_assert_leq(ctx->pool_bytes, after_first, "the pool grew from %zu to %zu bytes", after_first, ctx->pool_bytes);
    nb_tensor_free(x);
    /* growing sizes: what the pool holds stays near twice the largest step's peak */
    size_t largest = 0;
    for (int64_t n = 8; n <= 1024; n += 8) {
        nb_ctx_reset(ctx);
        nb_tensor *xn = nb_rand(ctx, NB_F32, NB_SHAPE(n, 1024));
        cr_assert_eq(nb_requires_grad(xn, true), NB_OK);
        cr_assert_eq(nb_backward(ctx, chain(ctx, xn, 4), NULL), NB_OK, "%s", nb_ctx_error(ctx));
        if (ctx->pool_peak > largest) largest = ctx->pool_peak;
    }
    nb_ctx_reset(ctx);
    cr_assert_leq(ctx->pool_bytes, 2 * largest + (size_t)(1 << 20), "the pool holds %zu bytes, the largest step used %zu",
                  ctx->pool_bytes, largest);
    /* and the same step again and again allocates nothing */
    uint64_t mallocs = 0;
    for (int s = 0; s < 20; s++) {
        nb_ctx_reset(ctx);
        nb_tensor *xn = nb_rand(ctx, NB_F32, NB_SHAPE(512, 1024));
        cr_assert_eq(nb_requires_grad(xn, true), NB_OK);
        cr_assert_eq(nb_backward(ctx, chain(ctx, xn, 4), NULL), NB_OK);
        if (s == 10) mallocs = nb_ctx_mallocs(ctx);
    }
    cr_assert_eq(nb_ctx_mallocs(ctx), mallocs, "a steady step allocated");
    /* steps without a backward (validation) say nothing about what training needs: 20 of them
     * between training phases (more than the 16 remembered) trim nothing */
    for (int cycle = 0; cycle < 3; cycle++) {
        for (int s = 0; s < 20; s++) {
            nb_ctx_reset(ctx);
            NB_NO_GRAD(ctx) { cr_assert_not_null(chain(ctx, nb_rand(ctx, NB_F32, NB_SHAPE(512, 1024)), 4)); }
        }
        for (int s = 0; s < 3; s++) {
            nb_ctx_reset(ctx);
            nb_tensor *xn = nb_rand(ctx, NB_F32, NB_SHAPE(512, 1024));
            cr_assert_eq(nb_requires_grad(xn, true), NB_OK);
            cr_assert_eq(nb_backward(ctx, chain(ctx, xn, 4), NULL), NB_OK);
        }
        cr_assert_eq(nb_ctx_mallocs(ctx), mallocs, "cycle %d: training after validation allocated", cycle);
    }
}
