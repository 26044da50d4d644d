/* unfold/fold, conv2d, conv_transpose2d: values (hand and PyTorch), adjointness, gradients of
 * first and second order, error messages. */
#include "nn_test_util.h"

static nb_ctx *ctx;
static void setup(void) { ctx = nb_ctx_new(); nb_ctx_seed(ctx, 7); }
static void teardown(void) { nb_ctx_free(ctx); }
TestSuite(conv, .init = setup, .fini = teardown, .timeout = 60);

Test(conv, unfold_by_hand) {
    /* x = 0..8 as (1,1,3,3); 2x2 windows, stride 1, padding 0 -> rows are the 4 taps */
    nb_tensor *x = nb_reshape(ctx, nb_arange(ctx, NB_F64, 0, 9, 1), NB_SHAPE(1, 1, 3, 3));
    nb_tensor *u = nb_unfold(ctx, x, NB_WINDOW2D(2, 1, 0, 1), 0.0);
    const double want[16] = {0, 1, 3, 4, 1, 2, 4, 5, 3, 4, 6, 7, 4, 5, 7, 8};
    assert_values(u, want, 16, 0);
    cr_assert_eq(u->shape[1], 4);
    /* padding 1, stride 2, pad value -5: windows at (-1,-1), (-1,1), (1,-1), (1,1) */
    u = nb_unfold(ctx, x, NB_WINDOW2D(2, 2, 1, 1), -5.0);
    const double want2[16] = {-5, -5, -5, 4, -5, -5, 3, 5, -5, 1, -5, 7, 0, 2, 6, 8};
    assert_values(u, want2, 16, 0);
}

Test(conv, fold_is_adjoint_of_unfold) {
    /* <unfold(x), y> == <x, fold(y)> for a window with stride, padding and dilation */
    nb_window2d w = {3, 2, 2, 1, 1, 2, 2, 1};
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(2, 3, 7, 5));
    nb_tensor *u = nb_unfold(ctx, x, w, 0.0);
    cr_assert_not_null(u, "%s", nb_ctx_error(ctx));
    nb_tensor *y = nb_randn(ctx, NB_F64, u->ndim, u->shape);
    double lhs = nb_item(nb_sum_all(ctx, nb_mul(ctx, u, y)));
    double rhs = nb_item(nb_sum_all(ctx, nb_mul(ctx, x, nb_fold(ctx, y, 7, 5, w))));
    assert_close(lhs, rhs, 1e-10, 1e-12);
    /* fold of ones counts how many windows cover each pixel: 3x3 stride 1 on 3x3 padding 1 */
    nb_tensor *cnt = nb_fold(ctx, nb_ones(ctx, NB_F64, NB_SHAPE(1, 9, 9)), 3, 3, NB_WINDOW2D(3, 1, 1, 1));
    const double want[9] = {4, 6, 4, 6, 9, 6, 4, 6, 4};
    assert_values(cnt, want, 9, 0);
}

Test(conv, conv2d_matches_pytorch) {
    nb_tensor *x = ref_tensor(ctx, NB_SHAPE(2, 4, 7, 6), 0.1, false), *w = ref_tensor(ctx, NB_SHAPE(6, 2, 3, 3), 0.2, false);
    nb_tensor *b = ref_tensor(ctx, NB_SHAPE(6), 0.3, false);
    nb_tensor *y = nb_conv2d(ctx, x, w, b, 2, 1, 2, 2);
    assert_ref(y, REF_CONV2D_G2);
    cr_assert(y->shape[2] == 3 && y->shape[3] == 2);
    x = ref_tensor(ctx, NB_SHAPE(1, 3, 5, 5), 0.4, false), w = ref_tensor(ctx, NB_SHAPE(2, 3, 2, 3), 0.5, false);
    assert_ref(nb_conv2d(ctx, x, w, NULL, 1, 0, 1, 1), REF_CONV2D_RECT);
    /* f32 gives the same numbers to float precision */
    nb_tensor *y32 = nb_conv2d(ctx, nb_cast(ctx, x, NB_F32), nb_cast(ctx, w, NB_F32), NULL, 1, 0, 1, 1);
    assert_values(y32, REF_CONV2D_RECT, 24, 1e-5);
}

Test(conv, conv_transpose2d_matches_pytorch) {
    nb_tensor *x = ref_tensor(ctx, NB_SHAPE(2, 4, 3, 3), 0.6, false), *w = ref_tensor(ctx, NB_SHAPE(4, 3, 3, 3), 0.7, false);
    nb_tensor *b = ref_tensor(ctx, NB_SHAPE(6), 0.8, false);
    assert_ref(nb_conv_transpose2d(ctx, x, w, b, 2, 1, 1, 2, 1), REF_CONVT_G2);
    x = ref_tensor(ctx, NB_SHAPE(1, 2, 3, 2), 0.9, false), w = ref_tensor(ctx, NB_SHAPE(2, 2, 2, 2), 1.0, false);
    assert_ref(nb_conv_transpose2d(ctx, x, w, NULL, 2, 0, 1, 1, 2), REF_CONVT_DIL);
}

Test(conv, per_axis_options_and_same_padding_match_pytorch) {
    nb_tensor *x = ref_tensor(ctx, NB_SHAPE(2, 2, 7, 8), 1.1, false), *w = ref_tensor(ctx, NB_SHAPE(3, 2, 3, 2), 1.2, false);
    nb_tensor *b = ref_tensor(ctx, NB_SHAPE(3), 1.3, false);
    nb_tensor *y = nb_conv2d_ex(ctx, x, w, b, &(nb_conv_opts){.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}});
    cr_assert(y && y->shape[2] == 4 && y->shape[3] == 6, "%s", nb_ctx_error(ctx));
    assert_ref(y, REF_CONV2D_AXES);
    nb_tensor *w5 = ref_tensor(ctx, NB_SHAPE(3, 2, 3, 5), 1.4, false);
    nb_tensor *same = nb_conv2d_ex(ctx, x, w5, NULL, &(nb_conv_opts){.same = true, .dilation = {2, 1}});
    cr_assert(same && same->shape[2] == 7 && same->shape[3] == 8, "%s", nb_ctx_error(ctx));
    assert_ref(same, REF_CONV2D_SAME);
    nb_tensor *xt = ref_tensor(ctx, NB_SHAPE(1, 2, 3, 4), 1.5, false), *wt = ref_tensor(ctx, NB_SHAPE(2, 3, 2, 3), 1.6, false);
    nb_tensor *bt = ref_tensor(ctx, NB_SHAPE(3), 1.7, false);
    assert_ref(nb_conv_transpose2d_ex(ctx, xt, wt, bt,
                                      &(nb_conv_opts){.stride = {2, 1}, .padding = {0, 1}, .output_padding = {1, 1},
                                                      .dilation = {1, 2}}),
               REF_CONVT_AXES);
    /* NULL options are the defaults; the positional forms agree with the options */
    assert_ref(nb_conv2d_ex(ctx, ref_tensor(ctx, NB_SHAPE(1, 3, 5, 5), 0.4, false), ref_tensor(ctx, NB_SHAPE(2, 3, 2, 3), 0.5, false),
                            NULL, NULL),
               REF_CONV2D_RECT);
}

Test(conv, per_axis_option_errors) {
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(1, 2, 5, 5)), *w = nb_randn(ctx, NB_F64, NB_SHAPE(2, 2, 2, 3));
    /* "same" needs an odd dilated kernel on every axis (2 is even) and stride 1 */
    cr_assert_null(nb_conv2d_ex(ctx, x, w, NULL, &(nb_conv_opts){.same = true}));
    cr_assert(strstr(nb_ctx_error(ctx), "conv2d") && strstr(nb_ctx_error(ctx), "same"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    nb_tensor *w3 = nb_randn(ctx, NB_F64, NB_SHAPE(2, 2, 3, 3));
    cr_assert_null(nb_conv2d_ex(ctx, x, w3, NULL, &(nb_conv_opts){.same = true, .stride = {2, 1}}));
    nb_ctx_clear_error(ctx);
    /* output_padding < max(stride, dilation) per axis: 1 is fine with stride 1 and dilation 2 */
    nb_tensor *wt = nb_randn(ctx, NB_F64, NB_SHAPE(2, 2, 2, 2));
    cr_assert_not_null(nb_conv_transpose2d_ex(ctx, x, wt, NULL, &(nb_conv_opts){.dilation = {2, 2}, .output_padding = {1, 1}}),
                       "%s", nb_ctx_error(ctx));
    cr_assert_null(nb_conv_transpose2d_ex(ctx, x, wt, NULL, &(nb_conv_opts){.stride = {2, 1}, .output_padding = {0, 1}}));
    cr_assert(strstr(nb_ctx_error(ctx), "output_padding 1 on axis 1"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    /* the positional forms keep refusing a zero stride */
    cr_assert_null(nb_conv2d(ctx, x, w3, NULL, 0, 0, 1, 1));
    cr_assert(strstr(nb_ctx_error(ctx), "invalid window"), "%s", nb_ctx_error(ctx));
}

/* ---- gradients ------------------------------------------------------------------------------ */
typedef struct { int stride, padding, dilation, groups, output_padding; } conv_cfg;

static nb_tensor *f_conv2d(nb_ctx *c, nb_tensor *const *in, void *u) {
    const conv_cfg *k = u;
    return nb_conv2d(c, in[0], in[1], in[2], k->stride, k->padding, k->dilation, k->groups);
}
static nb_tensor *f_conv2d_nobias(nb_ctx *c, nb_tensor *const *in, void *u) {
    const conv_cfg *k = u;
    return nb_conv2d(c, in[0], in[1], NULL, k->stride, k->padding, k->dilation, k->groups);
}
static nb_tensor *f_convt(nb_ctx *c, nb_tensor *const *in, void *u) {
    const conv_cfg *k = u;
    return nb_conv_transpose2d(c, in[0], in[1], in[2], k->stride, k->padding, k->output_padding, k->groups, k->dilation);
}
static nb_tensor *f_unfold(nb_ctx *c, nb_tensor *const *in, void *u) {
    return nb_unfold(c, in[0], *(const nb_window2d *)u, 3.0);
}
static nb_tensor *f_fold(nb_ctx *c, nb_tensor *const *in, void *u) {
    return nb_fold(c, in[0], 5, 4, *(const nb_window2d *)u);
}

Test(conv, conv2d_gradients_first_and_second_order) {
    conv_cfg k = {2, 1, 2, 2, 0};
    nb_tensor *in[3] = {rand_leaf(ctx, NB_SHAPE(2, 4, 5, 5)), rand_leaf(ctx, NB_SHAPE(4, 2, 2, 2)), rand_leaf(ctx, NB_SHAPE(4))};
    check_grads(ctx, f_conv2d, 3, in, &k, true);
    check_grads(ctx, f_conv2d_nobias, 2, in, &k, true);
    conv_cfg plain = {1, 0, 1, 1, 0};
    nb_tensor *in2[2] = {rand_leaf(ctx, NB_SHAPE(1, 2, 4, 4)), rand_leaf(ctx, NB_SHAPE(3, 2, 3, 2))};
    check_grads(ctx, f_conv2d_nobias, 2, in2, &plain, false);
}

Test(conv, conv_transpose2d_gradients_first_and_second_order) {
    conv_cfg k = {2, 1, 1, 2, 1};
    nb_tensor *in[3] = {rand_leaf(ctx, NB_SHAPE(2, 4, 3, 3)), rand_leaf(ctx, NB_SHAPE(4, 1, 3, 3)), rand_leaf(ctx, NB_SHAPE(2))};
    check_grads(ctx, f_convt, 3, in, &k, true);
    conv_cfg d = {2, 0, 2, 1, 1};
    nb_tensor *in2[3] = {rand_leaf(ctx, NB_SHAPE(1, 2, 3, 2)), rand_leaf(ctx, NB_SHAPE(2, 2, 2, 2)), rand_leaf(ctx, NB_SHAPE(2))};
    check_grads(ctx, f_convt, 3, in2, &d, false);
}

Test(conv, unfold_fold_gradients) {
    nb_window2d w = {3, 2, 2, 1, 1, 0, 1, 2};
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(2, 2, 5, 4));
    check_grads(ctx, f_unfold, 1, &x, &w, true);
    nb_tensor *cols = nb_unfold(ctx, x, w, 0.0);
    nb_tensor *y = rand_leaf(ctx, cols->ndim, cols->shape);
    check_grads(ctx, f_fold, 1, &y, &w, true);
}

/* ---- errors --------------------------------------------------------------------------------- */
Test(conv, errors_name_the_shapes) {
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3, 8, 8));
    nb_tensor *r = nb_conv2d(ctx, x, nb_zeros(ctx, NB_F32, NB_SHAPE(4, 2, 3, 3)), NULL, 1, 0, 1, 1);
    ASSERT_ERROR(ctx, r, NB_ERR_SHAPE, "conv2d", "(2,3,8,8)", "(4,2,3,3)", "3 channels", "expects 2");
    r = nb_conv2d(ctx, x, nb_zeros(ctx, NB_F32, NB_SHAPE(4, 3, 9, 9)), NULL, 1, 0, 1, 1);
    ASSERT_ERROR(ctx, r, NB_ERR_SHAPE, "conv2d", "larger than the padded input", "(2,3,8,8)", "9x9");
    r = nb_conv2d(ctx, x, nb_zeros(ctx, NB_F32, NB_SHAPE(3, 1, 3, 3)), NULL, 1, 0, 5, 3); /* dilated 11x11 */
    ASSERT_ERROR(ctx, r, NB_ERR_SHAPE, "effective 11x11");
    r = nb_conv2d(ctx, x, nb_zeros(ctx, NB_F32, NB_SHAPE(4, 1, 3, 3)), NULL, 1, 0, 1, 2);
    ASSERT_ERROR(ctx, r, NB_ERR_VALUE, "groups 2", "(2,3,8,8)", "(4,1,3,3)");
    r = nb_conv2d(ctx, x, nb_zeros(ctx, NB_F32, NB_SHAPE(4, 3, 3, 3)), nb_zeros(ctx, NB_F32, NB_SHAPE(5)), 1, 0, 1, 1);
    ASSERT_ERROR(ctx, r, NB_ERR_SHAPE, "bias (5)");
    r = nb_conv2d(ctx, x, nb_zeros(ctx, NB_F32, NB_SHAPE(4, 3, 3, 3)), NULL, 0, 0, 1, 1);
    ASSERT_ERROR(ctx, r, NB_ERR_VALUE, "stride 0x0");
    r = nb_conv_transpose2d(ctx, x, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 4, 3, 3)), NULL, 1, 0, 0, 1, 1);
    ASSERT_ERROR(ctx, r, NB_ERR_SHAPE, "conv_transpose2d", "3 channels", "(2,4,3,3)");
    r = nb_conv_transpose2d(ctx, x, nb_zeros(ctx, NB_F32, NB_SHAPE(3, 4, 3, 3)), NULL, 2, 0, 2, 1, 1);
    ASSERT_ERROR(ctx, r, NB_ERR_VALUE, "output_padding 2");
    r = nb_fold(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(1, 9, 5)), 3, 3, NB_WINDOW2D(3, 1, 1, 1));
    ASSERT_ERROR(ctx, r, NB_ERR_SHAPE, "fold", "(1,9,5)");
    r = nb_unfold(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(3, 8, 8)), NB_WINDOW2D(3, 1, 1, 1), 0);
    ASSERT_ERROR(ctx, r, NB_ERR_SHAPE, "unfold", "(3,8,8)", "4-D");
    /* a NULL input keeps the first error */
    cr_assert_null(nb_conv2d(ctx, NULL, x, NULL, 1, 0, 1, 1));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_NULL);
}

/* ---- the convolution primitives against unfold + matmul ------------------------------------- */
/* conv2d by its definition: unfold, one matmul per group, reshape (the composite the primitive
 * replaced), with the same inputs. */
static nb_tensor *conv_by_unfold(nb_ctx *c, nb_tensor *x, nb_tensor *w, nb_window2d win, int64_t G) {
    const int64_t N = x->shape[0], O = w->shape[0], K = w->shape[1] * win.kh * win.kw;
    nb_tensor *cols = nb_unfold(c, x, win, 0.0); /* (N, C*kk, L) */
    const int64_t L = cols->shape[2];
    nb_tensor *cg = nb_reshape(c, cols, NB_SHAPE(N, G, K, L));
    nb_tensor *wg = nb_reshape(c, w, NB_SHAPE(G, O / G, K));
    nb_tensor *y = nb_matmul(c, wg, cg); /* (N, G, O/G, L) */
    const int64_t OH = (x->shape[2] + 2 * win.ph - win.dh * (win.kh - 1) - 1) / win.sh + 1;
    return nb_reshape(c, y, NB_SHAPE(N, O, OH, L / OH));
}

typedef struct {
    int64_t N, C, H, W, O, k, stride, pad, dil, G;
    bool strided_x; /* x a transposed view (H and W swapped in memory) */
} conv_case;

static void assert_same_values(nb_tensor *a, nb_tensor *b, double tol, const char *what) {
    cr_assert_not_null(a, "%s: %s", what, nb_ctx_error(ctx));
    cr_assert_not_null(b, "%s: %s", what, nb_ctx_error(ctx));
    cr_assert(nb_same_shape(a, b), "%s: shapes differ", what);
    for (int64_t i = 0; i < a->numel; i++)
        assert_close(nb_get(a, i), nb_get(b, i), tol, tol, "%s: element %lld", what, (long long)i);
}

/* forward, input and weight gradients, and the gradient of a gradient, against the composite */
static void check_against_unfold(const conv_case *k, nb_dtype dt) {
    nb_tensor *x = nb_randn(ctx, dt, NB_SHAPE(k->N, k->C, k->strided_x ? k->W : k->H, k->strided_x ? k->H : k->W));
    if (k->strided_x) x = nb_transpose(ctx, x, 2, 3);
    nb_tensor *w = nb_randn(ctx, dt, NB_SHAPE(k->O, k->C / k->G, k->k, k->k));
    nb_requires_grad(x, true), nb_requires_grad(w, true);
    const nb_window2d win = {k->k, k->k, k->stride, k->stride, k->pad, k->pad, k->dil, k->dil};
    nb_tensor *y = nb_conv2d(ctx, x, w, NULL, (int)k->stride, (int)k->pad, (int)k->dil, (int)k->G);
    nb_tensor *yr = conv_by_unfold(ctx, x, w, win, k->G);
    const double tol = dt == NB_F32 ? 2e-4 : 1e-11;
    assert_same_values(y, yr, tol, "forward");
    nb_tensor *gy = nb_randn(ctx, dt, y->ndim, y->shape);
    /* a scalar of the gradients, so the second order runs through every primitive */
    nb_tensor *in[2] = {x, w}, *g[2], *gr[2];
    cr_assert_eq(nb_grad(ctx, 1, &y, &gy, 2, in, g, true), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_grad(ctx, 1, &yr, &gy, 2, in, gr, true), NB_OK, "%s", nb_ctx_error(ctx));
    assert_same_values(g[0], gr[0], tol, "input gradient");
    assert_same_values(g[1], gr[1], tol * 10, "weight gradient");
    nb_tensor *s = nb_add(ctx, nb_sum_all(ctx, nb_mul(ctx, g[0], g[0])), nb_sum_all(ctx, nb_mul(ctx, g[1], g[1])));
    nb_tensor *sr = nb_add(ctx, nb_sum_all(ctx, nb_mul(ctx, gr[0], gr[0])), nb_sum_all(ctx, nb_mul(ctx, gr[1], gr[1])));
    nb_tensor *h[2], *hr[2];
    cr_assert_eq(nb_grad(ctx, 1, &s, NULL, 2, in, h, false), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_grad(ctx, 1, &sr, NULL, 2, in, hr, false), NB_OK, "%s", nb_ctx_error(ctx));
    assert_same_values(h[0], hr[0], tol * 100, "second order, x");
    assert_same_values(h[1], hr[1], tol * 100, "second order, w");
}

Test(conv, primitives_match_unfold_matmul) {
    const conv_case cases[] = {
        {3, 4, 7, 6, 6, 3, 1, 1, 1, 1, false}, /* plain 3x3 */
        {2, 4, 9, 8, 4, 3, 2, 1, 2, 2, true},  /* stride, dilation, groups, strided input */
        {3, 6, 5, 5, 6, 1, 1, 0, 1, 3, false}, /* 1x1: the image is its own columns */
        {2, 3, 5, 4, 5, 1, 1, 0, 1, 1, true},  /* 1x1 on a strided image: unfolded */
        {2, 4, 6, 6, 4, 3, 1, 1, 1, 4, false}, /* depthwise */
        {2, 3, 6, 5, 2, 2, 2, 0, 1, 1, false}, /* even kernel, stride 2 */
        /* the implicit GEMM (conv_gemm.c): K = 432 past BLIS's k block, 7 outputs (a part weight
         * panel), 125 positions (a part last panel; panels that cross samples) */
        {5, 48, 5, 5, 7, 3, 1, 1, 1, 1, false},
        {20, 3, 3, 3, 5, 2, 1, 0, 1, 1, false}, /* 4 positions a sample: a panel spans many */
        {3, 4, 6, 7, 26, 3, 1, 3, 2, 2, true},  /* padding past the kernel's reach, dilation, groups */
        /* 1x1 stride 2, C*taps = 5: the weight gradient cut over chunks of positions too */
        {8, 5, 30, 30, 6, 1, 2, 0, 1, 1, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check_against_unfold(&cases[i], NB_F64);
        nb_ctx_reset(ctx);
    }
}

/* Large enough for the threaded paths: samples split over threads, the weight gradient in
 * chunks; f32 against the f64 composite, and the same bits at 1 and 2 threads. */
Test(conv, threaded_path_same_bits_any_thread_count) {
    const conv_case big = {20, 8, 12, 12, 16, 3, 1, 1, 1, 1, false};
    check_against_unfold(&big, NB_F32);
    nb_ctx_reset(ctx);
    const conv_case small_f32 = {7, 5, 9, 4, 13, 3, 1, 1, 1, 1, true};
    check_against_unfold(&small_f32, NB_F32);
    nb_ctx_reset(ctx);
    /* rows of 19 read with stride 1: the weight gradient packs eight taps at a time where all
     * eight read inside the image, element by element at the padded and dilated edges */
    const conv_case wide_f32 = {3, 5, 17, 19, 7, 3, 1, 2, 2, 1, false};
    check_against_unfold(&wide_f32, NB_F32);
    nb_ctx_reset(ctx);
    /* 3x3 stride 1 (the direct kernels), then 1x1 stride 2 (the implicit GEMM, its weight
     * gradient over chunks of positions) */
    const int k[2] = {3, 1}, stride[2] = {1, 2}, side[2] = {12, 30};
    for (int c = 0; c < 2; c++) {
        nb_tensor *res[2][3];
        const int64_t o = (side[c] - 1) / stride[c] + 1;
        nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(20, 8, side[c], side[c])), *w = nb_randn(ctx, NB_F32, NB_SHAPE(16, 8, k[c], k[c]));
        nb_requires_grad(x, true), nb_requires_grad(w, true);
        nb_tensor *gy = nb_randn(ctx, NB_F32, NB_SHAPE(20, 16, o, o));
        for (int t = 0; t < 2; t++) {
            nb_set_num_threads(t + 1);
            nb_tensor *y = nb_conv2d(ctx, x, w, NULL, stride[c], k[c] / 2, 1, 1), *in[2] = {x, w}, *g[2];
            cr_assert_eq(nb_grad(ctx, 1, &y, &gy, 2, in, g, false), NB_OK, "%s", nb_ctx_error(ctx));
            res[t][0] = y, res[t][1] = g[0], res[t][2] = g[1];
        }
        nb_set_num_threads(0);
        for (int r = 0; r < 3; r++)
            cr_assert(memcmp(res[0][r]->data, res[1][r]->data, (size_t)res[0][r]->numel * sizeof(float)) == 0,
                      "case %d: result %d differs between 1 and 2 threads", c, r);
    }
}

/* The column matrix (N*C*kh*kw*OH*OW floats, 29 MB here) is never on the tape: a training
 * step's arena holds the input, the output, their gradients and a bounded scratch. */
Test(conv, columns_stay_out_of_the_arena) {
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(64, 16, 28, 28)), *w = nb_tensor_new(NB_F32, NB_SHAPE(16, 16, 3, 3));
    nb_rng r = nb_rng_new(3);
    nb_rng_normal(&r, x, 0, 1), nb_rng_normal(&r, w, 0, 0.1);
    nb_requires_grad(x, true), nb_requires_grad(w, true);
    const size_t image = (size_t)x->numel * sizeof(float), cols = image * 9;
    const size_t before = nb_ctx_bytes_used(ctx);
    nb_tensor *y = nb_conv2d(ctx, x, w, NULL, 1, 1, 1, 1);
    cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
    cr_assert_lt(nb_ctx_bytes_used(ctx) - before, image + 4096, "the forward kept more than its output");
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, y), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    /* y, the (materialised) ones gradient, x's gradient, w's, one sample's columns per thread */
    cr_assert_lt(nb_ctx_bytes_peak(ctx), 5 * image, "peak %zu bytes; the columns alone are %zu", nb_ctx_bytes_peak(ctx), cols);
    nb_tensor_free(x), nb_tensor_free(w);
}

/* ---- conv1d: a view over conv2d ------------------------------------------------------------ */
#include "ref/layers_ref.h"

Test(conv, conv1d_matches_pytorch) {
    nb_tensor *x = ref_tensor(ctx, NB_SHAPE(2, 4, 9), 0.5, false), *w = ref_tensor(ctx, NB_SHAPE(6, 2, 3), 0.6, false);
    nb_tensor *b = ref_tensor(ctx, NB_SHAPE(6), 0.7, false);
    nb_tensor *y = nb_conv1d(ctx, x, w, b, &(nb_conv_opts){.stride = {2}, .padding = {1}, .dilation = {2}, .groups = 2});
    cr_assert(y && y->ndim == 3 && y->shape[1] == 6 && y->shape[2] == 4, "%s", nb_ctx_error(ctx));
    assert_ref(y, REF_CONV1D);
    nb_tensor *w2 = ref_tensor(ctx, NB_SHAPE(3, 4, 3), 0.8, false);
    y = nb_conv1d(ctx, x, w2, NULL, &(nb_conv_opts){.dilation = {2}, .same = true});
    cr_assert(y && y->shape[2] == 9);
    assert_ref(y, REF_CONV1D_SAME);
    /* NULL options: stride 1, no padding */
    y = nb_conv1d(ctx, x, w2, NULL, NULL);
    cr_assert(y && y->shape[2] == 7);
}

static nb_tensor *f_conv1d(nb_ctx *c, nb_tensor *const *in, void *u) {
    return nb_conv1d(c, in[0], in[1], in[2], u);
}

Test(conv, conv1d_gradients_and_errors) {
    nb_tensor *in[3] = {rand_leaf(ctx, NB_SHAPE(2, 4, 7)), rand_leaf(ctx, NB_SHAPE(4, 2, 2)), rand_leaf(ctx, NB_SHAPE(4))};
    nb_conv_opts o = {.stride = {2}, .padding = {1}, .dilation = {2}, .groups = 2};
    check_grads(ctx, f_conv1d, 3, in, &o, true);
    ASSERT_ERROR(ctx, nb_conv1d(ctx, in[0], nb_zeros(ctx, NB_F64, NB_SHAPE(3, 3, 2)), NULL, NULL), NB_ERR_SHAPE, "conv");
    ASSERT_ERROR(ctx, nb_conv1d(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(2, 4, 7, 1)), in[1], NULL, NULL), NB_ERR_SHAPE, "conv1d",
                 "(N, C, L)", "(2,4,7,1)");
    ASSERT_ERROR(ctx, nb_conv1d(ctx, in[0], in[1], NULL, &(nb_conv_opts){.stride = {1, 2}}), NB_ERR_VALUE, "conv1d",
                 "second must be 0");
    ASSERT_ERROR(ctx, nb_conv1d(ctx, NULL, in[1], NULL, NULL), NB_ERR_NULL, "conv1d");
}

/* ---- conv3d: depth taps of conv2d ------------------------------------------------------------ */
Test(conv, conv3d_matches_pytorch) {
    nb_tensor *x = ref_tensor(ctx, NB_SHAPE(2, 4, 5, 4, 6), 0.85, false), *w = ref_tensor(ctx, NB_SHAPE(6, 2, 3, 2, 3), 0.86, false);
    nb_tensor *b = ref_tensor(ctx, NB_SHAPE(6), 0.87, false);
    nb_tensor *y = nb_conv3d(ctx, x, w, b,
                             &(nb_conv3d_opts){.stride = {2, 1, 2}, .padding = {1, 0, 1}, .dilation = {1, 2, 1}, .groups = 2});
    cr_assert(y && y->ndim == 5 && y->shape[1] == 6 && y->shape[2] == 3 && y->shape[3] == 2 && y->shape[4] == 3, "%s",
              nb_ctx_error(ctx));
    assert_ref(y, REF_CONV3D);
}

static nb_tensor *f_conv3d(nb_ctx *c, nb_tensor *const *in, void *u) {
    return nb_conv3d(c, in[0], in[1], in[2], u);
}

Test(conv, conv3d_gradients_and_errors) {
    nb_tensor *in[3] = {rand_leaf(ctx, NB_SHAPE(1, 2, 4, 3, 3)), rand_leaf(ctx, NB_SHAPE(2, 2, 2, 2, 2)), rand_leaf(ctx, NB_SHAPE(2))};
    nb_conv3d_opts o = {.stride = {2, 1, 1}, .padding = {1, 1, 0}, .dilation = {1, 1, 2}};
    check_grads(ctx, f_conv3d, 3, in, &o, true);
    ASSERT_ERROR(ctx, nb_conv3d(ctx, in[1], in[0], NULL, NULL), NB_ERR_SHAPE, "conv3d", "deeper", "(2,2,2,2,2)");
    ASSERT_ERROR(ctx, nb_conv3d(ctx, in[0], nb_zeros(ctx, NB_F64, NB_SHAPE(2, 2, 2, 2)), NULL, NULL), NB_ERR_SHAPE, "conv3d",
                 "(O, C/groups, kd, kh, kw)");
    ASSERT_ERROR(ctx, nb_conv3d(ctx, in[0], in[1], NULL, &(nb_conv3d_opts){.stride = {1, -1, 1}}), NB_ERR_VALUE, "conv3d",
                 "axis 1", "stride -1");
    ASSERT_ERROR(ctx, nb_conv3d(ctx, in[0], nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3, 2, 2, 2)), NULL, NULL), NB_ERR_SHAPE, "conv");
    ASSERT_ERROR(ctx, nb_conv3d(ctx, in[0], NULL, NULL, NULL), NB_ERR_NULL, "conv3d");
}

/* The implicit-GEMM input gradient (conv_gemm.c, nb__conv_gemm_bx): gy's panels cross samples,
 * the output channels (the micro-kernel's k) pass BLIS's k block, channel blocks end in part
 * micro-panels; conv_transpose2d with bias over the same kernel; gradients of every order. */
Test(conv, implicit_input_gradient_odd_shapes) {
    const conv_case cases[] = {
        {2, 20, 4, 4, 300, 3, 1, 1, 1, 1, false}, /* 300 output channels: past the k block */
        {4, 7, 5, 6, 9, 3, 2, 1, 1, 1, true},    /* stride 2, 7 channels: a part block */
        {3, 6, 7, 5, 6, 2, 1, 2, 2, 3, false},   /* even kernel, padding, dilation, groups */
        {2, 13, 4, 4, 3, 1, 2, 0, 1, 1, false},  /* 1x1 stride 2: taps with no overlap */
        {9, 1, 3, 3, 4, 3, 1, 1, 1, 1, false},   /* one channel, 9 positions a sample */
        {16, 16, 28, 28, 32, 1, 2, 0, 1, 1, false}, /* 1x1 stride 2, one channel block: tiles of positions split over the threads */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check_against_unfold(&cases[i], NB_F64);
        nb_ctx_reset(ctx);
    }
    conv_cfg k = {2, 1, 2, 1, 1};
    nb_tensor *in[3] = {rand_leaf(ctx, NB_SHAPE(3, 5, 3, 4)), rand_leaf(ctx, NB_SHAPE(5, 4, 3, 3)), rand_leaf(ctx, NB_SHAPE(4))};
    check_grads(ctx, f_convt, 3, in, &k, true);
}

/* conv_transpose2d (the input-gradient kernel alone) with groups and bias: the same bits at 1
 * and 2 threads, the channel blocks split over the threads. */
Test(conv, input_gradient_same_bits_any_thread_count) {
    nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(6, 24, 9, 11)), *w = nb_randn(ctx, NB_F32, NB_SHAPE(24, 10, 3, 3));
    nb_tensor *b = nb_randn(ctx, NB_F32, NB_SHAPE(20)), *res[2];
    for (int t = 0; t < 2; t++) {
        nb_set_num_threads(t + 1);
        res[t] = nb_conv_transpose2d(ctx, x, w, b, 2, 1, 1, 2, 1);
        cr_assert_not_null(res[t], "%s", nb_ctx_error(ctx));
    }
    nb_set_num_threads(0);
    cr_assert(memcmp(res[0]->data, res[1]->data, (size_t)res[0]->numel * sizeof(float)) == 0,
              "conv_transpose2d differs between 1 and 2 threads");
    /* 1x1 stride 2 (windows that do not overlap): tiles of positions over the threads */
    x = nb_randn(ctx, NB_F32, NB_SHAPE(16, 32, 14, 14)), w = nb_randn(ctx, NB_F32, NB_SHAPE(32, 16, 1, 1));
    for (int t = 0; t < 2; t++) {
        nb_set_num_threads(t + 1);
        res[t] = nb_conv_transpose2d(ctx, x, w, NULL, 2, 0, 1, 1, 1);
        cr_assert_not_null(res[t], "%s", nb_ctx_error(ctx));
    }
    nb_set_num_threads(0);
    cr_assert(res[0]->shape[2] == 28 && memcmp(res[0]->data, res[1]->data, (size_t)res[0]->numel * sizeof(float)) == 0,
              "1x1 stride-2 conv_transpose2d differs between 1 and 2 threads");
}

/* ---- the direct kernels (conv_direct.c: f32, stride 1) against the f64 implicit GEMM ---------- */
static void assert_close_scaled(nb_tensor *a, nb_tensor *ref, double tol, const char *what, int k) {
    cr_assert_not_null(a, "case %d %s: %s", k, what, nb_ctx_error(ctx));
    cr_assert_not_null(ref, "case %d %s: %s", k, what, nb_ctx_error(ctx));
    cr_assert(nb_same_shape(a, ref), "case %d %s: shapes differ", k, what);
    double scale = 1.0;
    for (int64_t i = 0; i < ref->numel; i++) scale = fmax(scale, fabs(nb_get(ref, i)));
    for (int64_t i = 0; i < a->numel; i++)
        cr_assert(fabs(nb_get(a, i) - nb_get(ref, i)) <= tol * scale, "case %d %s: element %lld is %g, f64 gives %g", k,
                  what, (long long)i, nb_get(a, i), nb_get(ref, i));
}

typedef struct {
    int64_t N, C, H, W, O, kh, kw;
    nb_conv_opts o;
    bool transposed, strided_x;
} direct_case;

/* The arena's memory filled with NaN, then released: an output element a kernel leaves
 * unwritten reads NaN, not a stale value that might happen to be right. */
static void poison_arena(void) {
    cr_assert_not_null(nb_full(ctx, NB_F64, NB_SHAPE(1 << 20), NAN));
    nb_ctx_reset(ctx);
}

/* y and the gradients of x, w and b for one upstream gradient, in f32 and in f64 (same values) */
static void check_direct_case(const direct_case *k, int idx) {
    poison_arena();
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(k->N, k->C, k->strided_x ? k->W : k->H, k->strided_x ? k->H : k->W));
    if (k->strided_x) x = nb_transpose(ctx, x, 2, 3);
    /* conv: (O, C, kh, kw); transposed: (C, O, kh, kw) */
    const int64_t ws[4] = {k->transposed ? k->C : k->O, k->transposed ? k->O : k->C, k->kh, k->kw};
    nb_tensor *w = nb_randn(ctx, NB_F64, 4, ws);
    nb_tensor *b = nb_randn(ctx, NB_F64, NB_SHAPE(k->O));
    nb_tensor *leaves[2][3], *y[2];
    for (int d = 0; d < 2; d++) {
        const nb_dtype dt = d ? NB_F64 : NB_F32;
        leaves[d][0] = nb_detach(ctx, nb_cast(ctx, x, dt));
        if (k->strided_x && d == 0) leaves[d][0] = nb_transpose(ctx, nb_contiguous(ctx, nb_transpose(ctx, leaves[d][0], 2, 3)), 2, 3);
        leaves[d][1] = nb_detach(ctx, nb_cast(ctx, w, dt));
        leaves[d][2] = nb_detach(ctx, nb_cast(ctx, b, dt));
        for (int i = 0; i < 3; i++) nb_requires_grad(leaves[d][i], true);
        y[d] = k->transposed ? nb_conv_transpose2d_ex(ctx, leaves[d][0], leaves[d][1], leaves[d][2], &k->o)
                             : nb_conv2d_ex(ctx, leaves[d][0], leaves[d][1], leaves[d][2], &k->o);
        cr_assert_not_null(y[d], "case %d: %s", idx, nb_ctx_error(ctx));
    }
    assert_close_scaled(y[0], y[1], 1e-5, "forward", idx);
    nb_tensor *gy = nb_randn(ctx, NB_F64, y[1]->ndim, y[1]->shape), *g[2][3];
    for (int d = 0; d < 2; d++) {
        nb_tensor *seed = nb_cast(ctx, gy, d ? NB_F64 : NB_F32);
        cr_assert_eq(nb_grad(ctx, 1, &y[d], &seed, 3, leaves[d], g[d], false), NB_OK, "%s", nb_ctx_error(ctx));
    }
    assert_close_scaled(g[0][0], g[1][0], 1e-5, "input gradient", idx);
    assert_close_scaled(g[0][1], g[1][1], 1e-5, "weight gradient", idx);
    assert_close_scaled(g[0][2], g[1][2], 1e-5, "bias gradient", idx);
}

Test(conv, direct_kernels_match_f64) {
    const direct_case cases[] = {
        /* strided input, 11 outputs: a part block */
        {3, 5, 7, 9, 11, 3, 3, .o = {.padding = {1, 1}}, .strided_x = true},
        {2, 3, 6, 40, 17, 5, 5, .o = {.padding = {2, 2}}}, /* 5x5; position blocks cross rows */
        {2, 4, 9, 8, 9, 3, 3, .o = {.padding = {2, 2}, .dilation = {2, 2}}},
        {1, 2, 5, 6, 3, 2, 3, .o = {.padding = {1, 0}}},   /* even kernel, padding on one axis */
        {2, 9, 4, 4, 8, 3, 3, .o = {.groups = 1}},          /* no padding */
        {5, 16, 14, 14, 20, 3, 3, .o = {.padding = {1, 1}}}, /* the input gradient direct too (C >= 8) */
        {2, 8, 3, 11, 8, 1, 7, .o = {.padding = {0, 3}}},   /* 1x7 */
        {3, 8, 1, 50, 5, 1, 3, .o = {.padding = {0, 1}}},   /* one row, as conv1d makes */
        /* conv_transpose2d, stride 1, bias; then dilation with output_padding */
        {2, 12, 5, 7, 9, 3, 3, .o = {.padding = {1, 1}}, .transposed = true},
        {2, 10, 4, 6, 8, 3, 2, .o = {.padding = {1, 0}, .dilation = {2, 1}, .output_padding = {1, 0}}, .transposed = true},
        /* strides: phase planes; the input gradient (C >= 8) one stride-1 conv per output phase */
        {2, 8, 9, 10, 6, 3, 3, .o = {.stride = {2, 2}, .padding = {1, 1}}},
        {2, 8, 7, 9, 4, 1, 2, .o = {.stride = {1, 3}}}, /* column phase 2: no tap reaches it */
        {1, 8, 11, 13, 5, 5, 5, .o = {.stride = {3, 2}, .padding = {4, 2}, .dilation = {2, 1}}},
        {2, 12, 4, 5, 9, 3, 3, .o = {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 0}}, .transposed = true},
        {2, 12, 3, 4, 8, 2, 3, .o = {.stride = {3, 1}, .padding = {0, 1}}, .transposed = true},
        {3, 5, 9, 10, 11, 3, 3, .o = {.stride = {2, 2}, .padding = {1, 1}}, .strided_x = true},
        {2, 4, 8, 9, 6, 3, 2, .o = {.stride = {2, 1}, .padding = {1, 1}, .dilation = {1, 2}}},
        {2, 3, 13, 11, 5, 5, 5, .o = {.stride = {3, 3}, .padding = {2, 2}}},
        /* stride-2 rows of 9 to 16 and more phase elements (vector gathers, odd and even widths) */
        {2, 4, 7, 29, 5, 3, 3, .o = {.stride = {2, 2}, .padding = {1, 1}}},
        {2, 3, 5, 44, 4, 1, 1, .o = {.stride = {2, 2}}},
        {1, 3, 6, 19, 4, 2, 2, .o = {.stride = {2, 2}}},
        /* the input gradient's phases share one padded gy: odd sizes, so that the first row and
         * column phases have one more output than the last (the shared height and pitch are the
         * largest any phase needs) */
        {2, 8, 9, 11, 5, 2, 2, .o = {.stride = {2, 2}}},
        {2, 9, 5, 6, 8, 2, 2, .o = {.stride = {2, 2}, .output_padding = {1, 1}}, .transposed = true},
        /* a left padding wider than the window: the row pitch still holds every output (it
         * fell below the output width, and the last row's last outputs were never written) */
        {1, 1, 4, 4, 1, 3, 3, .o = {.padding = {3, 3}}},
        {1, 1, 1, 1, 1, 1, 3, .o = {.padding = {0, 3}}},
        {5, 5, 1, 7, 31, 1, 3, .o = {.padding = {0, 3}}},
        {1, 8, 1, 9, 8, 1, 3, .o = {.stride = {1, 2}, .padding = {0, 1}, .dilation = {1, 3}}},
        {2, 8, 6, 7, 9, 3, 3, .o = {.stride = {2, 3}, .padding = {4, 4}, .dilation = {1, 2}}, .transposed = true},
        /* the weight gradient in chunks of samples (7 chunks: 6 of 3, one of 2) */
        {20, 16, 28, 28, 16, 3, 3, .o = {.padding = {1, 1}}},
        /* a strided 1x1 weight gradient: register blocks of channels (the last one partial),
         * output channels not a multiple of the block, padding, a strided input, chunks */
        {3, 7, 9, 12, 6, 1, 1, .o = {.stride = {2, 2}}},
        {2, 5, 8, 13, 9, 1, 1, .o = {.stride = {1, 3}, .padding = {1, 0}}},
        {2, 6, 7, 10, 5, 1, 1, .o = {.stride = {2, 2}}, .strided_x = true},
        {20, 16, 28, 28, 32, 1, 1, .o = {.stride = {2, 2}}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check_direct_case(&cases[i], (int)i);
        nb_ctx_reset(ctx);
    }
}

/* Winograd F(2x2, 3x3) (conv_wino.c: 3x3, stride 1, 8+ channels on both sides of the forward
 * and of the input gradient, 16+ for the weight gradient) against f64, values and gradients:
 * odd outputs (a last tile half outside), rows of more tiles than a vector has lanes, padding 0
 * and 2 (the input gradient's own padding is 2 - p), a 1x1 image, unequal paddings, a strided
 * input, channels so many that a batch holds one tile row, conv_transpose2d with stride 1; the
 * same with 16 channels for the weight gradient, and 45 samples in weight-gradient chunks of
 * 20, 20 and 5. */
Test(conv, winograd_matches_f64) {
    const direct_case cases[] = {
        {2, 8, 9, 11, 8, 3, 3, .o = {.padding = {1, 1}}},
        {3, 12, 6, 70, 9, 3, 3, .o = {.padding = {1, 1}}},
        {2, 9, 5, 5, 10, 3, 3, .o = {.padding = {0, 0}}},
        {2, 8, 4, 6, 8, 3, 3, .o = {.padding = {2, 2}}},
        {3, 10, 1, 1, 12, 3, 3, .o = {.padding = {1, 1}}},
        {2, 8, 2, 3, 8, 3, 3, .o = {.padding = {1, 2}}},
        {3, 8, 7, 10, 9, 3, 3, .o = {.padding = {1, 1}}, .strided_x = true},
        {2, 700, 6, 20, 8, 3, 3, .o = {.padding = {1, 1}}},
        {2, 12, 5, 7, 9, 3, 3, .o = {.padding = {0, 0}}, .transposed = true},
        {2, 9, 6, 5, 16, 3, 3, .o = {.padding = {2, 1}}, .transposed = true},
        {2, 16, 9, 11, 16, 3, 3, .o = {.padding = {1, 1}}},
        {2, 16, 6, 40, 17, 3, 3, .o = {.padding = {1, 1}}},
        {2, 16, 5, 5, 16, 3, 3, .o = {.padding = {0, 0}}},
        {2, 17, 4, 6, 16, 3, 3, .o = {.padding = {2, 2}}},
        {3, 16, 1, 1, 16, 3, 3, .o = {.padding = {1, 1}}},
        {3, 16, 7, 10, 20, 3, 3, .o = {.padding = {1, 2}}, .strided_x = true},
        {2, 300, 6, 20, 16, 3, 3, .o = {.padding = {1, 1}}},
        {2, 16, 6, 5, 16, 3, 3, .o = {.padding = {2, 1}}, .transposed = true},
        {45, 16, 10, 10, 16, 3, 3, .o = {.padding = {1, 1}}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check_direct_case(&cases[i], (int)i);
        nb_ctx_reset(ctx);
    }
}

/* A gradient penalty through Winograd layers (16 channels a side: all three parts are Winograd
 * in f32): P = |d/dx sum(conv(x, w)^2)|^2, then dP/dw and dP/dx, in f32 against f64 (direct and
 * implicit-GEMM kernels). The second-order pass runs every primitive again, with create_graph. */
Test(conv, winograd_gradient_penalty_matches_f64) {
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(3, 16, 7, 9)), *w = nb_randn(ctx, NB_F64, NB_SHAPE(16, 16, 3, 3));
    nb_tensor *res[2][2];
    for (int d = 0; d < 2; d++) {
        const nb_dtype dt = d ? NB_F64 : NB_F32;
        nb_tensor *xs = nb_detach(ctx, nb_cast(ctx, x, dt)), *ws = nb_detach(ctx, nb_cast(ctx, nb_mul_scalar(ctx, w, 0.2), dt));
        nb_requires_grad(xs, true), nb_requires_grad(ws, true);
        nb_tensor *y = nb_conv2d(ctx, xs, ws, NULL, 1, 1, 1, 1);
        nb_tensor *l = nb_sum_all(ctx, nb_mul(ctx, y, y)), *gx;
        cr_assert_eq(nb_grad(ctx, 1, &l, NULL, 1, &xs, &gx, true), NB_OK, "%s", nb_ctx_error(ctx));
        nb_tensor *pen = nb_sum_all(ctx, nb_mul(ctx, gx, gx)), *in[2] = {xs, ws};
        cr_assert_eq(nb_grad(ctx, 1, &pen, NULL, 2, in, res[d], false), NB_OK, "%s", nb_ctx_error(ctx));
    }
    assert_close_scaled(res[0][0], res[1][0], 2e-5, "penalty's x gradient", 0);
    assert_close_scaled(res[0][1], res[1][1], 2e-5, "penalty's w gradient", 0);
}

/* Seven chunks of samples in the weight gradient (six of 3, one of 2), in waves of one chunk
 * per thread: the same bits with two threads or one; for a 3x3 window and for a strided 1x1. */
static void check_direct_bits(int64_t O, int64_t k, int stride) {
    const int pad = (int)k / 2, OHW = (28 + 2 * pad - (int)k) / stride + 1;
    nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(20, 16, 28, 28)), *w = nb_randn(ctx, NB_F32, NB_SHAPE(O, 16, k, k));
    nb_tensor *b = nb_randn(ctx, NB_F32, NB_SHAPE(O)), *gy = nb_randn(ctx, NB_F32, NB_SHAPE(20, O, OHW, OHW));
    nb_requires_grad(x, true), nb_requires_grad(w, true);
    nb_tensor *res[2][3];
    for (int t = 0; t < 2; t++) {
        nb_set_num_threads(t + 1);
        nb_tensor *y = nb_conv2d(ctx, x, w, b, stride, pad, 1, 1), *in[2] = {x, w}, *g[2];
        cr_assert_eq(nb_grad(ctx, 1, &y, &gy, 2, in, g, false), NB_OK, "%s", nb_ctx_error(ctx));
        res[t][0] = y, res[t][1] = g[0], res[t][2] = g[1];
    }
    nb_set_num_threads(0);
    for (int r = 0; r < 3; r++)
        cr_assert(memcmp(res[0][r]->data, res[1][r]->data, (size_t)res[0][r]->numel * sizeof(float)) == 0,
                  "%lldx%lld stride %d: result %d differs between 1 and 2 threads", (long long)k, (long long)k, stride, r);
}
Test(conv, direct_kernels_same_bits_any_thread_count) {
    check_direct_bits(16, 3, 1);
    check_direct_bits(32, 1, 2);
}

/* Sums over nothing: no input channel, no output channel of a transposed conv, no sample. The
 * outputs are the bias or zeros and the gradients zeros, in f32 and f64 and on every path
 * (3x3: the direct kernels in f32, the implicit GEMM in f64); the arena is poisoned first. */
Test(conv, empty_sums_give_bias_or_zeros) {
    for (int d = 0; d < 2; d++) {
        const nb_dtype dt = d ? NB_F64 : NB_F32;
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            poison_arena();
            nb_tensor *b = with_bias ? nb_full(ctx, dt, NB_SHAPE(4), 0.5) : NULL;
            /* conv2d, 0 input channels: y = b */
            nb_tensor *y = nb_conv2d(ctx, nb_zeros(ctx, dt, NB_SHAPE(2, 0, 5, 5)), nb_zeros(ctx, dt, NB_SHAPE(4, 0, 3, 3)), b,
                                     1, 1, 1, 1);
            cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
            cr_assert(y->numel == 2 * 4 * 25);
            for (int64_t i = 0; i < y->numel; i++) cr_assert_eq(nb_get(y, i), with_bias ? 0.5 : 0.0, "conv2d %d %d", d, with_bias);
            /* conv_transpose2d, 0 input channels (w (0, 4, 3, 3)): y = b */
            y = nb_conv_transpose2d(ctx, nb_zeros(ctx, dt, NB_SHAPE(2, 0, 5, 5)), nb_zeros(ctx, dt, NB_SHAPE(0, 4, 3, 3)), b, 2,
                                    1, 0, 1, 1);
            cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
            for (int64_t i = 0; i < y->numel; i++)
                cr_assert_eq(nb_get(y, i), with_bias ? 0.5 : 0.0, "conv_transpose2d %d %d", d, with_bias);
        }
        /* conv_transpose2d with 0 output channels: the input gradient is zeros */
        poison_arena();
        nb_tensor *x = nb_randn(ctx, dt, NB_SHAPE(2, 4, 5, 5)), *w = nb_randn(ctx, dt, NB_SHAPE(4, 0, 3, 3));
        nb_requires_grad(x, true);
        nb_tensor *y = nb_conv_transpose2d(ctx, x, w, NULL, 1, 1, 0, 1, 1), *gx;
        cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
        cr_assert_eq(nb_grad(ctx, 1, (nb_tensor *[]){nb_sum_all(ctx, y)}, NULL, 1, &x, &gx, false), NB_OK, "%s",
                     nb_ctx_error(ctx));
        for (int64_t i = 0; i < gx->numel; i++) cr_assert_eq(nb_get(gx, i), 0.0, "gx %d", d);
        /* no sample: the weight gradient is zeros */
        poison_arena();
        x = nb_zeros(ctx, dt, NB_SHAPE(0, 8, 6, 6)), w = nb_randn(ctx, dt, NB_SHAPE(8, 8, 3, 3));
        nb_requires_grad(w, true);
        nb_tensor *gw;
        y = nb_conv2d(ctx, x, w, NULL, 1, 1, 1, 1);
        cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
        cr_assert_eq(nb_grad(ctx, 1, (nb_tensor *[]){nb_sum_all(ctx, y)}, NULL, 1, &w, &gw, false), NB_OK, "%s",
                     nb_ctx_error(ctx));
        for (int64_t i = 0; i < gw->numel; i++) cr_assert_eq(nb_get(gw, i), 0.0, "gw %d", d);
        nb_ctx_reset(ctx);
    }
}

/* An inf (or a value near FLT_MAX) entering Winograd's transforms made inf - inf: NaN in the
 * outputs around it where the direct sum gives inf, and NaN for an overflow the sum does not
 * reach. Such a part is computed again directly: inf where torch has inf, and 3e38 x 1e-3
 * summed over 72 taps is 2.16e37 (forward and input gradient, 8 channels). */
Test(conv, winograd_keeps_infinities_and_large_values) {
    nb_tensor *x = nb_ones(ctx, NB_F32, NB_SHAPE(1, 8, 6, 6)), *w = nb_ones(ctx, NB_F32, NB_SHAPE(8, 8, 3, 3));
    nb_set(x, 2 * 6 + 2, INFINITY); /* channel 0, (2, 2) */
    nb_tensor *y = nb_conv2d(ctx, x, w, NULL, 1, 1, 1, 1);
    cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
    for (int64_t i = 0; i < y->numel; i++) {
        const int64_t r = i / 6 % 6, c = i % 6;
        const bool near = r >= 1 && r <= 3 && c >= 1 && c <= 3;
        const double v = nb_get(y, i);
        cr_assert(near ? v == INFINITY : isfinite(v), "output %lld (%lld, %lld) = %g", (long long)i, (long long)r,
                  (long long)c, v);
    }
    nb_tensor *big = nb_full(ctx, NB_F32, NB_SHAPE(1, 8, 4, 4), 3e38), *wsmall = nb_full(ctx, NB_F32, NB_SHAPE(8, 8, 3, 3), 1e-3);
    y = nb_conv2d(ctx, big, wsmall, NULL, 1, 0, 1, 1);
    cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
    for (int64_t i = 0; i < y->numel; i++) assert_close(nb_get(y, i), 3e38 * 1e-3 * 72, 0, 1e-5);
    /* the input gradient: an inf in gy */
    nb_tensor *xg = nb_ones(ctx, NB_F32, NB_SHAPE(1, 8, 6, 6));
    nb_requires_grad(xg, true);
    nb_tensor *gy = nb_ones(ctx, NB_F32, NB_SHAPE(1, 8, 6, 6));
    nb_set(gy, 2 * 6 + 2, INFINITY);
    nb_tensor *gx;
    cr_assert_eq(nb_grad(ctx, 1, (nb_tensor *[]){nb_conv2d(ctx, xg, w, NULL, 1, 1, 1, 1)}, &gy, 1, &xg, &gx, false), NB_OK);
    for (int64_t i = 0; i < gx->numel; i++) cr_assert(!isnan(nb_get(gx, i)), "gx[%lld] is NaN", (long long)i);
    /* the weight gradient (16 channels each way, where it takes Winograd's route): an inf in x
     * reaches every tap of channel 0 (each tap's window covers it) as +inf, the others stay 36 */
    nb_tensor *xw = nb_ones(ctx, NB_F32, NB_SHAPE(1, 16, 6, 6)), *ww = nb_ones(ctx, NB_F32, NB_SHAPE(16, 16, 3, 3));
    nb_set(xw, 2 * 6 + 2, INFINITY);
    nb_requires_grad(ww, true);
    nb_tensor *gw;
    cr_assert_eq(nb_grad(ctx, 1, (nb_tensor *[]){nb_sum_all(ctx, nb_conv2d(ctx, xw, ww, NULL, 1, 1, 1, 1))}, NULL, 1, &ww, &gw,
                         false),
                 NB_OK, "%s", nb_ctx_error(ctx));
    for (int64_t i = 0; i < gw->numel; i++) {
        const int64_t c = i / 9 % 16, tap = i % 9, ti = tap / 3, tj = tap % 3;
        const double v = nb_get(gw, i), want = c == 0 ? INFINITY : (double)((ti == 1 ? 6 : 5) * (tj == 1 ? 6 : 5));
        cr_assert(v == want, "gw[%lld] (c %lld, tap %lld) = %g, expected %g", (long long)i, (long long)c, (long long)tap, v,
                  want);
    }
}
