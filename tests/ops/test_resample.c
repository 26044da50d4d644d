/* interpolate (nearest, bilinear), pixel_shuffle / pixel_unshuffle: PyTorch values, gradients,
 * errors. */
#include "nn_test_util.h"
#include "ref/layers_ref.h"

static nb_ctx *ctx;
static void setup(void) { ctx = nb_ctx_new(); nb_ctx_seed(ctx, 12); }
static void teardown(void) { nb_ctx_free(ctx); }
TestSuite(resample, .init = setup, .fini = teardown, .timeout = 60);

#define NEAREST NB_INTERP_NEAREST
#define BILINEAR NB_INTERP_BILINEAR

static nb_tensor *interp(nb_tensor *x, nb_interp_opts o, int64_t oh, int64_t ow) {
    nb_tensor *y = nb_interpolate(ctx, x, &o);
    cr_assert(y && y->ndim == 4 && y->shape[2] == oh && y->shape[3] == ow, "%s", y ? "shape" : nb_ctx_error(ctx));
    return y;
}

Test(resample, interpolate_matches_pytorch) {
    nb_tensor *x = ref_tensor(ctx, NB_SHAPE(1, 2, 3, 4), 0.9, false);
    /* 1e-12, not 0: the C and Python fills of the input (sin of arguments up to ~40) differ in
     * the last bits */
    assert_values(interp(x, (nb_interp_opts){.scale_factor = {2, 2}}, 6, 8), REF_NEAREST_X2, 96, 1e-12);
    assert_values(interp(x, (nb_interp_opts){.size = {5, 7}}, 5, 7), REF_NEAREST_SIZE, 70, 1e-12);
    assert_values(interp(x, (nb_interp_opts){.scale_factor = {1.7, 0.6}}, 5, 2), REF_NEAREST_SCALE, 20, 1e-12);
    assert_values(interp(x, (nb_interp_opts){.size = {5, 7}, .mode = BILINEAR}, 5, 7), REF_BILINEAR_SIZE, 70, 1e-12);
    assert_values(interp(x, (nb_interp_opts){.size = {5, 7}, .mode = BILINEAR, .align_corners = true}, 5, 7), REF_BILINEAR_ALIGN,
                  70, 1e-12);
    assert_values(interp(x, (nb_interp_opts){.scale_factor = {1.7, 0.6}, .mode = BILINEAR}, 5, 2), REF_BILINEAR_SCALE, 20,
                  1e-12);
    assert_values(interp(x, (nb_interp_opts){.scale_factor = {1.7, 2.3}, .mode = BILINEAR, .recompute_scale_factor = true}, 5, 9),
                  REF_BILINEAR_RECOMPUTE, 90, 1e-12);
    /* scale 2.3 over 3 rows: 6 rows sampled at floor(r / 2.3) = 0 0 0 1 1 2 (1/scale, not 3/6
     * although 6 = 2 x 3; torch's contiguous kernel) */
    nb_tensor *y = interp(x, (nb_interp_opts){.scale_factor = {2.3, 1}}, 6, 4);
    const int64_t src[6] = {0, 0, 0, 1, 1, 2};
    for (int64_t c = 0; c < 2; c++)
        for (int64_t r = 0; r < 6; r++)
            for (int64_t q = 0; q < 4; q++)
                cr_assert_eq(nb_get(y, (c * 6 + r) * 4 + q), nb_get(x, (c * 3 + src[r]) * 4 + q), "row %lld", (long long)r);
    /* same size: the identity */
    nb_tensor *same = interp(x, (nb_interp_opts){.size = {3, 4}, .mode = BILINEAR}, 3, 4);
    for (int64_t i = 0; i < x->numel; i++) cr_assert_eq(nb_get(same, i), nb_get(x, i));
}

Test(resample, bilinear_gradient_matches_pytorch) {
    nb_tensor *x = ref_tensor(ctx, NB_SHAPE(1, 2, 3, 4), 0.9, true);
    nb_tensor *y = nb_interpolate(ctx, x, &(nb_interp_opts){.size = {5, 7}, .mode = BILINEAR});
    nb_tensor *w = ref_tensor(ctx, y->ndim, y->shape, 1.0, false);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, nb_mul(ctx, y, w)), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    assert_ref(x->grad, REF_BILINEAR_GRAD);
}

static nb_tensor *f_interp(nb_ctx *c, nb_tensor *const *in, void *u) { return nb_interpolate(c, in[0], u); }
static nb_tensor *f_shuffle(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_pixel_unshuffle(c, nb_mul(c, nb_pixel_shuffle(c, in[0], 2), nb_pixel_shuffle(c, in[0], 2)), 2);
}

Test(resample, gradients) {
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(2, 2, 3, 4));
    nb_interp_opts cases[] = {{.size = {5, 7}, .mode = BILINEAR}, {.scale_factor = {0.7, 1.6}, .mode = BILINEAR, .align_corners = true},
                              {.size = {7, 3}}, {.scale_factor = {2, 2}}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_grads(ctx, f_interp, 1, &x, &cases[i], true);
    nb_tensor *s = rand_leaf(ctx, NB_SHAPE(2, 4, 2, 3));
    check_grads(ctx, f_shuffle, 1, &s, NULL, true);
}

Test(resample, pixel_shuffle_matches_pytorch) {
    nb_tensor *x = ref_tensor(ctx, NB_SHAPE(2, 8, 2, 3), 1.1, false);
    nb_tensor *y = nb_pixel_shuffle(ctx, x, 2);
    cr_assert(y && y->shape[1] == 2 && y->shape[2] == 4 && y->shape[3] == 6);
    assert_values(y, REF_PIXEL_SHUFFLE, 96, 1e-12);
    nb_tensor *back = nb_pixel_unshuffle(ctx, y, 2);
    for (int64_t i = 0; i < x->numel; i++) cr_assert_eq(nb_get(back, i), nb_get(x, i));
    nb_tensor *u = nb_pixel_unshuffle(ctx, ref_tensor(ctx, NB_SHAPE(1, 2, 4, 6), 1.2, false), 2);
    cr_assert(u && u->shape[1] == 8 && u->shape[2] == 2 && u->shape[3] == 3);
    assert_values(u, REF_PIXEL_UNSHUFFLE, 48, 1e-12);
    /* leading axes: (2, 3, 4, 1, 1) -> (2, 3, 1, 2, 2) */
    nb_tensor *z = nb_pixel_shuffle(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3, 4, 1, 1)), 2);
    cr_assert(z && z->ndim == 5 && z->shape[1] == 3 && z->shape[2] == 1 && z->shape[4] == 2);
}

Test(resample, errors) {
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(1, 2, 3, 4));
    ASSERT_ERROR(ctx, nb_interpolate(ctx, x, NULL), NB_ERR_NULL, "interpolate");
    ASSERT_ERROR(ctx, nb_interpolate(ctx, x, &(nb_interp_opts){0}), NB_ERR_VALUE, "interpolate", "exactly one", "(1,2,3,4)");
    ASSERT_ERROR(ctx, nb_interpolate(ctx, x, &(nb_interp_opts){.size = {2, 2}, .scale_factor = {2, 2}}), NB_ERR_VALUE,
                 "exactly one");
    ASSERT_ERROR(ctx, nb_interpolate(ctx, x, &(nb_interp_opts){.scale_factor = {2, -1}}), NB_ERR_VALUE, "scale_factor -1");
    ASSERT_ERROR(ctx, nb_interpolate(ctx, x, &(nb_interp_opts){.scale_factor = {NAN, 1}}), NB_ERR_VALUE, "scale_factor");
    ASSERT_ERROR(ctx, nb_interpolate(ctx, x, &(nb_interp_opts){.scale_factor = {0.2, 1}}), NB_ERR_SHAPE, "interpolate",
                 "positive");
    ASSERT_ERROR(ctx, nb_interpolate(ctx, x, &(nb_interp_opts){.size = {2, 2}, .align_corners = true}), NB_ERR_VALUE,
                 "align_corners");
    ASSERT_ERROR(ctx, nb_interpolate(ctx, x, &(nb_interp_opts){.size = {2, 2}, .mode = 7}), NB_ERR_VALUE, "mode 7");
    ASSERT_ERROR(ctx, nb_interpolate(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3, 4)), &(nb_interp_opts){.size = {2, 2}}),
                 NB_ERR_SHAPE, "4-D");
    ASSERT_ERROR(ctx, nb_pixel_shuffle(ctx, x, 2), NB_ERR_SHAPE, "pixel_shuffle", "(1,2,3,4)", "r = 2");
    ASSERT_ERROR(ctx, nb_pixel_shuffle(ctx, x, 0), NB_ERR_SHAPE, "pixel_shuffle", "r = 0");
    ASSERT_ERROR(ctx, nb_pixel_unshuffle(ctx, x, 2), NB_ERR_SHAPE, "pixel_unshuffle", "(1,2,3,4)");
    ASSERT_ERROR(ctx, nb_pixel_unshuffle(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(4, 4)), 2), NB_ERR_SHAPE, "pixel_unshuffle");
    ASSERT_ERROR(ctx, nb_pixel_shuffle(ctx, NULL, 2), NB_ERR_NULL, "pixel_shuffle");
}
