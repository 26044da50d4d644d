/* max/avg/adaptive pooling: PyTorch values, gradients, errors. */
#include "nn_test_util.h"

#include <float.h>
#include <math.h>

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
    ASSERT_ERROR(ctx, nb_adaptive_avg_pool2d(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(1, 2, 0, 4)), 1, 1), NB_ERR_SHAPE,
                 "adaptive_avg_pool2d", "(1,2,0,4)");
}

/* PyTorch's windows for any sizes: output (i, j) averages rows [floor(i H/oh), ceil((i+1) H/oh))
 * and the same columns, computed here element by element; rectangular exact windows, unequal
 * and overlapping ones, outputs larger than the input; f32 and f64; first and second
 * derivatives by finite differences. */
static double window_mean(const nb_tensor *x, int64_t n, int64_t c, int64_t i, int64_t j, int64_t oh, int64_t ow) {
    const int64_t H = x->shape[2], W = x->shape[3];
    const int64_t h0 = i * H / oh, h1 = ((i + 1) * H + oh - 1) / oh, w0 = j * W / ow, w1 = ((j + 1) * W + ow - 1) / ow;
    double s = 0;
    for (int64_t h = h0; h < h1; h++)
        for (int64_t w = w0; w < w1; w++) s += nb_get(x, ((n * x->shape[1] + c) * H + h) * W + w);
    return s / (double)((h1 - h0) * (w1 - w0));
}
typedef struct {
    int64_t oh, ow;
} adaptive_size;
static nb_tensor *f_adaptive_sq(nb_ctx *c, nb_tensor *const *in, void *u) {
    const adaptive_size *a = u;
    nb_tensor *y = nb_adaptive_avg_pool2d(c, in[0], a->oh, a->ow);
    return nb_mul(c, y, y); /* not linear: the second derivative is not zero */
}
Test(pool, adaptive_avg_any_size_matches_pytorch_windows) {
    const int64_t sizes[][4] = {{5, 2, 1, 2}, {10, 10, 7, 7}, {6, 9, 3, 3}, {3, 4, 5, 7}, {7, 5, 2, 3}, {1, 1, 2, 3}};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
        for (int d = 0; d < 2; d++) {
            const int64_t H = sizes[k][0], W = sizes[k][1], oh = sizes[k][2], ow = sizes[k][3];
            nb_tensor *x = nb_randn(ctx, d ? NB_F64 : NB_F32, NB_SHAPE(2, 3, H, W));
            nb_tensor *y = nb_adaptive_avg_pool2d(ctx, x, oh, ow);
            cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
            cr_assert(y->shape[0] == 2 && y->shape[1] == 3 && y->shape[2] == oh && y->shape[3] == ow && y->dtype == x->dtype);
            for (int64_t n = 0; n < 2; n++)
                for (int64_t c = 0; c < 3; c++)
                    for (int64_t i = 0; i < oh; i++)
                        for (int64_t j = 0; j < ow; j++)
                            assert_close(nb_get(y, ((n * 3 + c) * oh + i) * ow + j), window_mean(x, n, c, i, j, oh, ow),
                                         d ? 1e-14 : 1e-6, 0);
            if (d) {
                adaptive_size a = {oh, ow};
                nb_requires_grad(x, true);
                cr_assert_eq(nb_gradcheck(ctx, f_adaptive_sq, 1, &x, &a, NULL, NULL), NB_OK, "%s", nb_ctx_error(ctx));
                cr_assert_eq(nb_gradgradcheck(ctx, f_adaptive_sq, 1, &x, &a, NULL, NULL), NB_OK, "%s", nb_ctx_error(ctx));
            }
            nb_ctx_reset(ctx);
        }
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
    pool_cfg cases[] = {{3, 2, 1, true}, {2, 0, 0, true}, {2, 1, 1, true}, {3, 1, 0, true}, {4, 3, 2, true},
                        {3, 2, 1, false}, {2, 1, 0, false}};
    /* max pooling too to second order: its backward (scatter at the arg-max) is itself an op */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_grads(ctx, f_pool, 1, &x, &cases[i], true);
    check_grads(ctx, f_adaptive, 1, &x, NULL, true);
}

Test(pool, errors) {
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(1, 2, 4, 4));
    ASSERT_ERROR(ctx, nb_max_pool2d(ctx, x, 7, 1, 1), NB_ERR_SHAPE, "max_pool2d", "(1,2,4,4)", "7x7", "6x6");
    ASSERT_ERROR(ctx, nb_avg_pool2d(ctx, x, 2, 1, 2), NB_ERR_VALUE, "avg_pool2d", "padding 2");
    ASSERT_ERROR(ctx, nb_max_pool2d(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(4, 4)), 2, 2, 0), NB_ERR_SHAPE, "(4,4)", "4-D");
}

/* The composite max pooling nb_max_pool2d used to be (unfold with the lowest finite value as
 * padding, max over the kernel axis): values must match it exactly, gradients too where no
 * window has a tie (random normal inputs). */
static nb_tensor *old_max_pool(nb_ctx *c, nb_tensor *x, int k, int s, int p) {
    if (s == 0) s = k;
    const int64_t oh = (x->shape[2] + 2 * p - k) / s + 1, ow = (x->shape[3] + 2 * p - k) / s + 1;
    nb_tensor *w = nb_unfold(c, x, NB_WINDOW2D(k, s, p, 1), x->dtype == NB_F32 ? -FLT_MAX : -DBL_MAX);
    w = nb_reshape(c, w, NB_SHAPE(x->shape[0], x->shape[1], (int64_t)k * k, oh * ow));
    int axis = 2;
    return nb_reshape(c, nb_max(c, w, 1, &axis, false), NB_SHAPE(x->shape[0], x->shape[1], oh, ow));
}

Test(pool, max_pool_equals_the_composite) {
    const pool_cfg cases[] = {{2, 2, 0, true}, {3, 2, 1, true}, {2, 1, 1, true}, {3, 1, 1, true}, {4, 3, 2, true},
                              {5, 2, 2, true}, {1, 1, 0, true}};
    for (int dt = 0; dt < 2; dt++)
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            const pool_cfg *k = &cases[i];
            nb_tensor *x = nb_randn(ctx, dt ? NB_F64 : NB_F32, NB_SHAPE(3, 2, 9, 7));
            nb_requires_grad(x, true);
            nb_tensor *a = nb_max_pool2d(ctx, x, k->k, k->s, k->p), *b = old_max_pool(ctx, x, k->k, k->s, k->p);
            cr_assert(a && b && nb_same_shape(a, b), "%s", nb_ctx_error(ctx));
            for (int64_t j = 0; j < a->numel; j++) cr_assert_eq(nb_get(a, j), nb_get(b, j), "case %zu value %lld", i, (long long)j);
            nb_tensor *g = nb_randn(ctx, x->dtype, a->ndim, a->shape), *ga, *gb;
            cr_assert_eq(nb_grad(ctx, 1, &a, &g, 1, &x, &ga, false), NB_OK, "%s", nb_ctx_error(ctx));
            cr_assert_eq(nb_grad(ctx, 1, &b, &g, 1, &x, &gb, false), NB_OK, "%s", nb_ctx_error(ctx));
            for (int64_t j = 0; j < x->numel; j++)
                assert_close(nb_get(ga, j), nb_get(gb, j), dt ? 1e-14 : 1e-6, 0, "case %zu grad %lld", i, (long long)j);
        }
}

Test(pool, max_pool_ties_and_nan_follow_pytorch) {
    /* ties: the first maximum in row-major order gets the whole gradient (PyTorch's rule) */
    const double v[8] = {1, 3, 3, 0, /* row 0 */ 3, 2, 0, 0 /* row 1 */};
    nb_tensor *x = nb_from(ctx, NB_F64, NB_SHAPE(1, 1, 2, 4), v);
    nb_requires_grad(x, true);
    nb_tensor *y = nb_max_pool2d(ctx, x, 2, 2, 0);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, y), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    const double want_y[2] = {3, 3}, want_g[8] = {0, 1, 1, 0, 0, 0, 0, 0};
    assert_values(y, want_y, 2, 0);
    assert_values(x->grad, want_g, 8, 0);
    /* a NaN anywhere in a window is its maximum, in the unrolled and in the clipped path */
    const float f[9] = {1, NAN, 2, 3, 4, 5, 6, 7, NAN};
    nb_tensor *xf = nb_from(ctx, NB_F32, NB_SHAPE(1, 1, 3, 3), f);
    nb_tensor *m = nb_max_pool2d(ctx, xf, 2, 1, 0), *mp = nb_max_pool2d(ctx, xf, 2, 2, 1);
    cr_assert(isnan(nb_get(m, 0)) && isnan(nb_get(m, 1)) && nb_get(m, 2) == 7 && isnan(nb_get(m, 3)));
    cr_assert(nb_get(mp, 0) == 1 && isnan(nb_get(mp, 1)) && nb_get(mp, 2) == 6 && isnan(nb_get(mp, 3)));
}

Test(pool, max_pool_double_backward_values) {
    /* y = sum(maxpool(x)^2): dy/dx = 2 x at the arg-maxes; d/dx <dy/dx, v> = 2 v at the arg-maxes */
    const double v[4] = {0.5, 2.0, -1.0, 1.5};
    nb_tensor *x = nb_from(ctx, NB_F64, NB_SHAPE(1, 1, 2, 2), v);
    nb_requires_grad(x, true);
    nb_tensor *p = nb_max_pool2d(ctx, x, 2, 2, 0);
    nb_tensor *y = nb_sum_all(ctx, nb_mul(ctx, p, p)), *g;
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, &g, true), NB_OK, "%s", nb_ctx_error(ctx));
    const double want_g[4] = {0, 4, 0, 0};
    assert_values(g, want_g, 4, 0);
    nb_tensor *dir = nb_full(ctx, NB_F64, NB_SHAPE(1, 1, 2, 2), 3.0), *h;
    nb_tensor *gv = nb_sum_all(ctx, nb_mul(ctx, g, dir));
    cr_assert_eq(nb_grad(ctx, 1, &gv, NULL, 1, &x, &h, false), NB_OK, "%s", nb_ctx_error(ctx));
    const double want_h[4] = {0, 6, 0, 0};
    assert_values(h, want_h, 4, 0);
}

Test(pool, max_pool_same_bits_for_any_thread_count, .timeout = 60) {
    /* overlapping windows: the backward adds several gradients into one element */
    nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(8, 16, 24, 24));
    nb_requires_grad(x, true);
    nb_tensor *g = nb_randn(ctx, NB_F32, NB_SHAPE(8, 16, 12, 12)), *gr[2], *y[2];
    const int saved = nb_get_num_threads();
    for (int t = 0; t < 2; t++) {
        nb_set_num_threads(t + 1);
        y[t] = nb_max_pool2d(ctx, x, 3, 2, 1);
        cr_assert_eq(nb_grad(ctx, 1, &y[t], &g, 1, &x, &gr[t], false), NB_OK, "%s", nb_ctx_error(ctx));
    }
    nb_set_num_threads(saved);
    cr_assert(memcmp(y[0]->data, y[1]->data, (size_t)y[0]->numel * 4) == 0);
    cr_assert(memcmp(gr[0]->data, gr[1]->data, (size_t)gr[0]->numel * 4) == 0);
}

/* Without a graph (no-grad, or an input that does not require grad) max pooling keeps no
 * indices: the context grows by the output (an i64 index tensor twice its size made a
 * Sequential's no-grad peak 87.8 instead of 62.7 MB), with the same values as with a graph,
 * at 1 and 2 threads. */
Test(pool, max_pool_without_a_graph_keeps_no_indices) {
    nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(16, 8, 32, 32));
    const int saved = nb_get_num_threads();
    nb_tensor *y[3];
    for (int t = 0; t < 2; t++) {
        nb_set_num_threads(t + 1);
        const size_t before = nb_ctx_bytes_used(ctx);
        NB_NO_GRAD(ctx) { y[t] = nb_max_pool2d(ctx, x, 2, 2, 0); }
        cr_assert_not_null(y[t], "%s", nb_ctx_error(ctx));
        const size_t grew = nb_ctx_bytes_used(ctx) - before, out = (size_t)y[t]->numel * 4;
        cr_assert(grew <= out + 65536, "no-grad max_pool2d took %zu bytes for a %zu-byte output", grew, out);
    }
    nb_set_num_threads(saved);
    nb_requires_grad(x, true);
    y[2] = nb_max_pool2d(ctx, x, 2, 2, 0);
    for (int t = 0; t < 2; t++) cr_assert(memcmp(y[t]->data, y[2]->data, (size_t)y[2]->numel * 4) == 0);
}

/* ---- options (nb_pool_opts): rectangular windows, dilation, ceil mode, divisors, 1-D --------- */
#include "ref/layers_ref.h"

static void assert_shape4(const nb_tensor *t, int64_t a, int64_t b, int64_t c, int64_t d) {
    cr_assert(t && t->ndim == 4 && t->shape[0] == a && t->shape[1] == b && t->shape[2] == c && t->shape[3] == d,
              "shape %s", t ? "differs" : nb_last_error());
}

Test(pool, options_match_pytorch) {
    nb_tensor *x = ref_tensor(ctx, NB_SHAPE(2, 3, 7, 8), 0.3, false);
    nb_tensor *y = nb_max_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1}, .dilation = {1, 2}});
    assert_shape4(y, 2, 3, 4, 8);
    assert_ref(y, REF_MAXPOOL_RECT);
    /* ceil mode: W gives (8 - 3)/2 rounded up + 1 = 4 windows; H's fourth window, starting at 3*3 - 1 = 8
     * >= 7 + 1, is dropped: 3 rows */
    y = nb_max_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {2, 3}, .stride = {3, 2}, .padding = {1, 0}, .ceil_mode = true});
    assert_shape4(y, 2, 3, 3, 4);
    assert_ref(y, REF_MAXPOOL_CEIL);
    y = nb_avg_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true});
    assert_shape4(y, 2, 3, 4, 5);
    assert_ref(y, REF_AVGPOOL_CEIL);
    y = nb_avg_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {3, 2}, .stride = {2, 3}, .padding = {1, 1}, .ceil_mode = true,
                                                 .exclude_pad = true});
    assert_ref(y, REF_AVGPOOL_CEIL_EXCL);
    assert_ref(nb_avg_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}, .exclude_pad = true}),
               REF_AVGPOOL_EXCL);
    assert_ref(nb_avg_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {2, 3}, .stride = {2, 2}, .padding = {1, 0}, .ceil_mode = true,
                                                        .divisor_override = 4}),
               REF_AVGPOOL_DIVISOR);
    nb_tensor *x1 = ref_tensor(ctx, NB_SHAPE(2, 3, 9), 0.4, false);
    y = nb_max_pool1d(ctx, x1, &(nb_pool_opts){.kernel = {3}, .stride = {2}, .padding = {1}, .dilation = {2}, .ceil_mode = true});
    cr_assert(y && y->ndim == 3 && y->shape[2] == 4);
    assert_ref(y, REF_MAXPOOL1D);
    assert_ref(nb_avg_pool1d(ctx, x1, &(nb_pool_opts){.kernel = {4}, .stride = {3}, .padding = {2}, .ceil_mode = true, .exclude_pad = true}),
               REF_AVGPOOL1D);
}

Test(pool, ceil_mode_divisor_by_hand) {
    /* one row 1..5, kernel 2, stride 2, ceil: windows [1,2] [3,4] [5]; the last one sticks out past
     * the input (no padding) and PyTorch divides by the 1 element it covers */
    double v[5] = {1, 2, 3, 4, 5};
    nb_tensor *x = nb_from(ctx, NB_F64, NB_SHAPE(1, 1, 1, 5), v);
    nb_tensor *y = nb_avg_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {1, 2}, .ceil_mode = true});
    assert_values(y, (const double[]){1.5, 3.5, 5}, 3, 1e-15);
    /* padding 1, count_include_pad: windows [0,1] [2,3] [4,5] -> divisor 2 each (the padded zero counts) */
    y = nb_avg_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {1, 2}, .padding = {0, 1}, .ceil_mode = true});
    assert_values(y, (const double[]){0.5, 2.5, 4.5}, 3, 1e-15);
    y = nb_avg_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {1, 2}, .padding = {0, 1}, .exclude_pad = true});
    assert_values(y, (const double[]){1, 2.5, 4.5}, 3, 1e-15);
    y = nb_max_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {1, 2}, .ceil_mode = true});
    assert_values(y, (const double[]){2, 4, 5}, 3, 0);
}

static nb_tensor *f_pool_ex(nb_ctx *c, nb_tensor *const *in, void *u) {
    const nb_pool_opts *o = u;
    return o->dilation[0] || o->dilation[1] ? nb_max_pool2d_ex(c, in[0], o) : nb_avg_pool2d_ex(c, in[0], o);
}
static nb_tensor *f_pool1d(nb_ctx *c, nb_tensor *const *in, void *u) {
    return nb_avg_pool1d(c, nb_max_pool1d(c, in[0], u), &(nb_pool_opts){.kernel = {2}, .stride = {1}});
}

Test(pool, option_gradients) {
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(1, 2, 6, 7));
    nb_pool_opts cases[] = {
        {.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1}, .dilation = {1, 2}},
        {.kernel = {2, 3}, .stride = {3, 2}, .padding = {1, 0}, .dilation = {1, 1}, .ceil_mode = true},
        {.kernel = {3, 2}, .stride = {2, 3}, .padding = {1, 1}, .ceil_mode = true, .exclude_pad = true},
        {.kernel = {2, 3}, .stride = {2, 2}, .padding = {1, 0}, .ceil_mode = true, .divisor_override = 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_grads(ctx, f_pool_ex, 1, &x, &cases[i], true);
    nb_tensor *x1 = rand_leaf(ctx, NB_SHAPE(2, 2, 9));
    nb_pool_opts o1 = {.kernel = {3}, .stride = {2}, .dilation = {2}, .ceil_mode = true};
    check_grads(ctx, f_pool1d, 1, &x1, &o1, true);
}

Test(pool, option_errors) {
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(1, 2, 4, 5));
    ASSERT_ERROR(ctx, nb_max_pool2d_ex(ctx, x, NULL), NB_ERR_NULL, "max_pool2d", "kernel");
    ASSERT_ERROR(ctx, nb_max_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {0, 2}}), NB_ERR_VALUE, "max_pool2d", "kernel 0x2");
    ASSERT_ERROR(ctx, nb_max_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {2, 2}, .padding = {0, 2}}), NB_ERR_VALUE,
                 "padding 0x2", "(1,2,4,5)");
    ASSERT_ERROR(ctx, nb_max_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {2, 2}, .stride = {-1, 1}}), NB_ERR_VALUE, "stride -1x1");
    ASSERT_ERROR(ctx, nb_avg_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {2, 2}, .dilation = {2, 1}}), NB_ERR_VALUE,
                 "avg_pool2d", "dilation");
    ASSERT_ERROR(ctx, nb_avg_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {2, 2}, .divisor_override = -3}), NB_ERR_VALUE,
                 "divisor -3");
    ASSERT_ERROR(ctx, nb_max_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {2, 2}, .exclude_pad = true}), NB_ERR_VALUE,
                 "max_pool2d", "exclude_pad");
    ASSERT_ERROR(ctx, nb_max_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {3, 2}, .dilation = {2, 1}}), NB_ERR_SHAPE,
                 "max_pool2d", "3x2", "(1,2,4,5)");
    /* dilation 3, kernel 2, padding 1 on a 2-row input: the window at -1 taps rows -1 and 2 only */
    ASSERT_ERROR(ctx, nb_max_pool2d_ex(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(1, 1, 2, 4)),
                                       &(nb_pool_opts){.kernel = {2, 2}, .stride = {1, 1}, .padding = {1, 0}, .dilation = {3, 1}}),
                 NB_ERR_VALUE, "only padding");
    ASSERT_ERROR(ctx, nb_max_pool1d(ctx, x, &(nb_pool_opts){.kernel = {2}}), NB_ERR_SHAPE, "max_pool1d", "3-D");
    ASSERT_ERROR(ctx, nb_avg_pool1d(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(1, 2, 4)), &(nb_pool_opts){.kernel = {2, 2}}),
                 NB_ERR_VALUE, "avg_pool1d", "second must be 0");
    ASSERT_ERROR(ctx, nb_max_pool1d(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(1, 2, 4)), NULL), NB_ERR_NULL, "max_pool1d");
}

/* Uneven windows (5x5 to 3x3): a NaN or inf stays in the windows that hold it, as torch (the
 * averaging matrices spread it over the whole channel: 0 * NaN); values are the windows' means. */
Test(pool, adaptive_avg_keeps_non_finite_values_in_their_windows) {
    nb_tensor *x = nb_ones(ctx, NB_F64, NB_SHAPE(1, 1, 5, 5));
    for (int k = 0; k < 2; k++) {
        nb_set(x, 0, k ? INFINITY : NAN);
        nb_tensor *y = nb_adaptive_avg_pool2d(ctx, x, 3, 3);
        cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
        cr_assert(k ? nb_get(y, 0) == INFINITY : isnan(nb_get(y, 0)), "window 0: %g", nb_get(y, 0));
        for (int i = 1; i < 9; i++) cr_assert_eq(nb_get(y, i), 1.0, "window %d: %g", i, nb_get(y, i));
    }
    /* windows [0,2) [1,4) [3,5) of 0..4: means 0.5, 2, 3.5 along each axis */
    nb_tensor *r = nb_reshape(ctx, nb_arange(ctx, NB_F64, 0, 5, 1), NB_SHAPE(1, 1, 1, 5));
    nb_tensor *y = nb_adaptive_avg_pool2d(ctx, nb_expand(ctx, r, NB_SHAPE(1, 1, 5, 5)), 3, 3);
    const double means[3] = {0.5, 2, 3.5};
    for (int i = 0; i < 9; i++) assert_close(nb_get(y, i), means[i % 3], 1e-15, 0);
}
