/* pad, repeat/tile and repeat_interleave (src/ops/pad.c): values and gradients against PyTorch
 * 1.13 (tests/ref/make_tensor_refs.py), both orders of derivative by finite differences in
 * every layout, and the size rules of each mode. */
#include "common.h"
#include "ref/tensor_refs.h"

TestSuite(pad, .init = ctx_setup, .fini = ctx_teardown);

typedef struct {
    const char *name;
    int npad;
    int64_t pad[6];
    nb_pad_mode mode;
    double value;
    const int64_t *shape;  /* PyTorch's result for TR_X (2,3,4) */
    const double *ref, *grad; /* F.pad(X, ...) and d sum(sin(arange) * F.pad(X, ...)) / dX */
} pad_case;

static const pad_case CASES[] = {
    {"constant", 4, {1, 2, -1, 1}, NB_PAD_CONSTANT, 0.5, TR_PAD_CONST_SHAPE, TR_PAD_CONST, TR_PAD_CONST_GRAD},
    {"constant 3 axes", 6, {1, 0, 0, 1, 1, 1}, NB_PAD_CONSTANT, -2.0, TR_PAD_CONST3_SHAPE, TR_PAD_CONST3, TR_PAD_CONST3_GRAD},
    {"reflect", 4, {2, 1, 1, 2}, NB_PAD_REFLECT, 0, TR_PAD_REFLECT_SHAPE, TR_PAD_REFLECT, TR_PAD_REFLECT_GRAD},
    {"reflect crop", 2, {-1, 3}, NB_PAD_REFLECT, 0, TR_PAD_REFLECT_CROP_SHAPE, TR_PAD_REFLECT_CROP, TR_PAD_REFLECT_CROP_GRAD},
    {"replicate", 4, {3, 1, -1, 2}, NB_PAD_REPLICATE, 0, TR_PAD_REPLICATE_SHAPE, TR_PAD_REPLICATE, TR_PAD_REPLICATE_GRAD},
    {"circular", 4, {1, 4, 2, -1}, NB_PAD_CIRCULAR, 0, TR_PAD_CIRCULAR_SHAPE, TR_PAD_CIRCULAR, TR_PAD_CIRCULAR_GRAD},
};
#define N_CASES (int)(sizeof CASES / sizeof *CASES)

static nb_tensor *case_f(nb_ctx *c, nb_tensor *const *in, void *u) {
    const pad_case *k = u;
    nb_tensor *y = nb_pad(c, in[0], k->npad, k->pad, k->mode, k->value);
    return nb_mul(c, y, y); /* nonlinear, so the second derivative is not trivially zero */
}

static double *sin_weights(int64_t n) {
    double *w = nb_ctx_alloc(ctx, (size_t)n * sizeof *w);
    for (int64_t i = 0; i < n; i++) w[i] = sin((double)i);
    return w;
}

Test(pad, values_and_gradients_match_torch) {
    for (int k = 0; k < N_CASES; k++) {
        const pad_case *c = &CASES[k];
        nb_tensor *x = test_from(ctx, TR_X, NB_SHAPE(2, 3, 4));
        nb_requires_grad(x, true);
        nb_tensor *y = nb_pad(ctx, x, c->npad, c->pad, c->mode, c->value);
        cr_assert_not_null(y, "%s: %s", c->name, nb_ctx_error(ctx));
        cr_assert(y->ndim == 3 && y->shape[0] == c->shape[0] && y->shape[1] == c->shape[1] && y->shape[2] == c->shape[2],
                  "%s: shape", c->name);
        for (int64_t i = 0; i < y->numel; i++) assert_close(nb_get(y, i), c->ref[i], 0, 0, "(%s element %lld)", c->name, (long long)i);
        nb_tensor *g = weighted_grad(ctx, y, sin_weights(y->numel), x, false);
        for (int64_t i = 0; i < 24; i++) assert_close(nb_get(g, i), c->grad[i], 1e-12, 1e-12, "(%s gradient %lld)", c->name, (long long)i);
        nb_tensor *y32 = nb_pad(ctx, nb_cast(ctx, x, NB_F32), c->npad, c->pad, c->mode, c->value);
        cr_assert(y32 && y32->dtype == NB_F32);
        for (int64_t i = 0; i < y->numel; i++) assert_close(nb_get(y32, i), c->ref[i], 1e-6, 1e-6, "(%s f32)", c->name);
    }
}

Test(pad, gradients_every_mode_and_layout) {
    for (int k = 0; k < N_CASES; k++)
        for (int lay = LAYOUT_CONTIG; lay <= LAYOUT_SLICE; lay++) {
            nb_mark m = nb_ctx_mark(ctx);
            nb_tensor *x = test_leaf(ctx, NB_SHAPE(2, 3, 4), (test_layout)lay, DOM_ANY);
            char what[64];
            snprintf(what, sizeof what, "%s layout %d", CASES[k].name, lay);
            check_grads_named(case_f, 1, &x, (void *)&CASES[k], true, what);
            nb_ctx_release(ctx, m);
        }
}

Test(pad, crops_empties_and_identities) {
    nb_tensor *x = nb_reshape(ctx, nb_arange(ctx, NB_F64, 1, 7, 1), NB_SHAPE(2, 3));
    cr_assert_eq(nb_pad(ctx, x, 2, (int64_t[]){0, 0}, NB_PAD_REFLECT, 0), x);
    nb_tensor *e = nb_pad(ctx, x, 2, (int64_t[]){-2, -1}, NB_PAD_CONSTANT, 0); /* torch: shape (2, 0) */
    cr_assert(e && e->shape[0] == 2 && e->shape[1] == 0, "%s", nb_ctx_error(ctx));
    nb_tensor *z = nb_pad(ctx, x, 2, (int64_t[]){0, -3}, NB_PAD_CIRCULAR, 0);
    cr_assert(z && z->shape[1] == 0, "%s", nb_ctx_error(ctx));
    /* crop one side, grow the other: out[j] = x[j - l] */
    nb_tensor *w = nb_pad(ctx, x, 2, (int64_t[]){-2, 2}, NB_PAD_CONSTANT, NAN);
    cr_assert(w && w->shape[1] == 3);
    for (int i = 0; i < 6; i++) cr_assert(i % 3 ? isnan(nb_get(w, i)) : nb_get(w, i) == (i ? 6 : 3), "element %d", i);
    /* replicate pads past the length (torch allows it); circular up to it */
    assert_values(nb_pad(ctx, x, 2, (int64_t[]){4, 0}, NB_PAD_REPLICATE, 0),
                  (double[]){1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 4, 4, 5, 6}, 14, 0);
    assert_values(nb_pad(ctx, x, 4, (int64_t[]){3, 0, 0, 2}, NB_PAD_CIRCULAR, 0),
                  (double[]){1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6, 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6}, 24, 0);
    /* a 1-D input (PyTorch's reflect needs 2-D) and a 0-d one with no pads */
    assert_values(nb_pad(ctx, nb_arange(ctx, NB_F64, 0, 3, 1), 2, (int64_t[]){2, 2}, NB_PAD_REFLECT, 0),
                  (double[]){2, 1, 0, 1, 2, 1, 0}, 7, 0);
    nb_tensor *s = nb_scalar(ctx, NB_F64, 4);
    cr_assert_eq(nb_pad(ctx, s, 0, NULL, NB_PAD_CONSTANT, 0), s);
}

Test(pad, refuses_bad_arguments) {
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3));
    struct {
        int npad;
        int64_t pad[6];
        nb_pad_mode mode;
        nb_status st;
        const char *msg;
    } bad[] = {
        {3, {1, 1, 1}, NB_PAD_CONSTANT, NB_ERR_SHAPE, "3 pad values"},
        {6, {1, 1, 1, 1, 1, 1}, NB_PAD_CONSTANT, NB_ERR_SHAPE, "6 pad values for (2,3)"},
        {2, {-2, -2}, NB_PAD_CONSTANT, NB_ERR_SHAPE, "(-2, -2) of axis 1 of (2,3) is invalid in constant mode"},
        {2, {3, 0}, NB_PAD_REFLECT, NB_ERR_SHAPE, "reflect"},
        {2, {-2, -1}, NB_PAD_REFLECT, NB_ERR_SHAPE, "reflect"},  /* torch: output W 0 */
        {2, {0, 4}, NB_PAD_CIRCULAR, NB_ERR_SHAPE, "circular"},
        {2, {-2, -1}, NB_PAD_REPLICATE, NB_ERR_SHAPE, "replicate"},
        {2, {1, 1}, (nb_pad_mode)7, NB_ERR_VALUE, "unknown mode 7"},
        {2, {INT64_MAX, 0}, NB_PAD_CONSTANT, NB_ERR_SHAPE, "constant"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nb_ctx_clear_error(ctx);
        cr_assert_null(nb_pad(ctx, x, bad[i].npad, bad[i].pad, bad[i].mode, 0), "case %zu", i);
        cr_assert_eq(nb_ctx_status(ctx), bad[i].st, "case %zu: %s", i, nb_ctx_error(ctx));
        cr_assert(strstr(nb_ctx_error(ctx), "pad: ") && strstr(nb_ctx_error(ctx), bad[i].msg), "case %zu: %s", i, nb_ctx_error(ctx));
    }
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_pad(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(2, 0)), 2, (int64_t[]){1, 1}, NB_PAD_REPLICATE, 0));
    cr_assert(strstr(nb_ctx_error(ctx), "replicate"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_pad(ctx, x, 2, NULL, NB_PAD_CONSTANT, 0));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_pad(ctx, nb_zeros(ctx, NB_I64, NB_SHAPE(2)), 2, (int64_t[]){1, 1}, NB_PAD_CONSTANT, 0));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_DTYPE);
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_pad(ctx, NULL, 0, NULL, NB_PAD_CONSTANT, 0));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_NULL);
}

/* ---- repeat / tile / repeat_interleave ------------------------------------------------------------- */
Test(pad, repeat_tile_interleave_match_torch) {
    nb_tensor *x = test_from(ctx, TR_X, NB_SHAPE(3, 4));
    nb_tensor *r = nb_repeat(ctx, x, 3, (int64_t[]){2, 1, 3});
    cr_assert(r && r->ndim == 3 && r->shape[0] == 2 && r->shape[1] == 3 && r->shape[2] == 12, "%s", nb_ctx_error(ctx));
    assert_values(r, TR_REPEAT_213, 72, 0);
    nb_tensor *t = nb_repeat(ctx, x, 1, (int64_t[]){2});  /* torch.tile: fewer repeats than axes */
    cr_assert(t && t->ndim == 2 && t->shape[1] == 8);
    assert_values(t, TR_TILE_2, 24, 0);
    nb_requires_grad(x, true);
    nb_tensor *ri = nb_repeat_interleave(ctx, x, 2, -1);
    cr_assert(ri && ri->shape[0] == 3 && ri->shape[1] == 8);
    assert_values(ri, TR_INTERLEAVE_2_AX1, 24, 0);
    double w[24];
    for (int i = 0; i < 24; i++) w[i] = cos((double)i);
    assert_values(weighted_grad(ctx, ri, w, x, false), TR_INTERLEAVE_GRAD, 12, 1e-14);
    /* repeats of 0 empty an axis; of 1 change nothing */
    nb_tensor *z = nb_repeat(ctx, x, 2, (int64_t[]){0, 1});
    cr_assert(z && z->shape[0] == 0 && z->shape[1] == 4);
    cr_assert_eq(nb_repeat_interleave(ctx, x, 1, 0), x);
    nb_tensor *zi = nb_repeat_interleave(ctx, x, 0, 0);
    cr_assert(zi && zi->shape[0] == 0 && zi->shape[1] == 4);
}

static nb_tensor *f_repeat(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_tensor *y = nb_repeat(c, in[0], 4, (int64_t[]){2, 1, 2, 3});
    return nb_mul(c, y, nb_repeat_interleave(c, nb_repeat_interleave(c, in[0], 2, 1), 3, 2));
}

Test(pad, repeat_gradients_every_layout) {
    for (int lay = LAYOUT_CONTIG; lay <= LAYOUT_SLICE; lay++) {
        nb_tensor *x = test_leaf(ctx, NB_SHAPE(2, 3, 2), (test_layout)lay, DOM_ANY);
        check_grads_named(f_repeat, 1, &x, NULL, true, "repeat");
    }
}

Test(pad, repeat_refuses_bad_arguments) {
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3));
    cr_assert_null(nb_repeat(ctx, x, 2, (int64_t[]){2, -1}));
    cr_assert(strstr(nb_ctx_error(ctx), "repeat: repeat -1 of axis 1 of (2,3)"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_repeat(ctx, x, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}));
    cr_assert(strstr(nb_ctx_error(ctx), "repeat: 9 repeats for (2,3)"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_repeat(ctx, x, 2, (int64_t[]){INT64_MAX, 2}));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_repeat_interleave(ctx, x, -2, 0));
    cr_assert(strstr(nb_ctx_error(ctx), "repeat_interleave: repeats -2"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_repeat_interleave(ctx, x, 2, 2));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_AXIS);
}
