/* matmul and linear (src/ops/linalg.c) against PyTorch; gradients through BLIS with strided,
 * transposed, broadcast-batched and vector operands. */
#include "common.h"
#include "ref/torch_refs.h"

TestSuite(linalg, .init = ctx_setup, .fini = ctx_teardown);

Test(linalg, forward_matches_torch) {
    nb_tensor *m1 = test_from(ctx, REF_M1, NB_SHAPE(2, 3, 4)), *m2 = test_from(ctx, REF_M2, NB_SHAPE(4, 5));
    nb_tensor *v = test_from(ctx, REF_V4, NB_SHAPE(4));
    nb_tensor *y = nb_matmul(ctx, m1, m2);
    cr_assert(y && y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 3 && y->shape[2] == 5, "%s", nb_ctx_error(ctx));
    assert_values(y, REF_MM_BATCH, 30, 1e-13);
    nb_tensor *r = nb_matmul(ctx, nb_slice(ctx, m1, 0, 0, 1, 1), v);  /* (1,3,4) @ (4) -> (1,3) */
    cr_assert(r && r->ndim == 2 && r->shape[1] == 3, "%s", nb_ctx_error(ctx));
    assert_values(r, REF_MM_VEC_RIGHT, 3, 1e-13);
    nb_tensor *l = nb_matmul(ctx, v, m2);
    cr_assert(l && l->ndim == 1 && l->shape[0] == 5);
    assert_values(l, REF_MM_VEC_LEFT, 5, 1e-13);
    nb_tensor *dot = nb_matmul(ctx, v, v);
    cr_assert(dot && dot->ndim == 0);
    assert_close(nb_item(dot), 0.25 + 1 + 4 + 0.0625, 1e-14, 0);
    /* transposed operand passed by strides: (m2^T)^T = m2 */
    nb_tensor *m2t = nb_contiguous(ctx, nb_transpose(ctx, m2, 0, 1));
    assert_values(nb_matmul(ctx, m1, nb_transpose(ctx, m2t, 0, 1)), REF_MM_BATCH, 30, 1e-13);
    nb_tensor *w = test_from(ctx, REF_W, NB_SHAPE(3, 4)), *b = test_from(ctx, REF_BIAS, NB_SHAPE(3));
    assert_values(nb_linear(ctx, m1, w, b), REF_LINEAR, 18, 1e-13);
    /* f32 */
    nb_tensor *y32 = nb_matmul(ctx, nb_cast(ctx, m1, NB_F32), nb_cast(ctx, m2, NB_F32));
    cr_assert_eq(y32->dtype, NB_F32);
    assert_values(y32, REF_MM_BATCH, 30, 1e-5);
}

static nb_tensor *mm(nb_ctx *c, nb_tensor *const *in, void *u) { return nb_matmul(c, in[0], in[1]); }
static nb_tensor *mm_tanh(nb_ctx *c, nb_tensor *const *in, void *u) { return nb_tanh(c, nb_matmul(c, in[0], in[1])); }
static nb_tensor *mm_t_inside(nb_ctx *c, nb_tensor *const *in, void *u) {
    return nb_matmul(c, nb_transpose(c, in[0], -1, -2), nb_slice(c, in[1], 0, 1, 100, 2));
}
static nb_tensor *lin(nb_ctx *c, nb_tensor *const *in, void *u) { return nb_gelu(c, nb_linear(c, in[0], in[1], in[2])); }

Test(linalg, matmul_gradients) {
    struct {
        int na, nb;
        int64_t sa[4], sb[4];
        test_layout la, lb;
        nb_fn f;
    } cases[] = {
        {2, 2, {3, 4}, {4, 5}, LAYOUT_CONTIG, LAYOUT_CONTIG, mm},
        {2, 2, {3, 4}, {4, 5}, LAYOUT_T, LAYOUT_T, mm},
        {2, 2, {3, 4}, {4, 5}, LAYOUT_SLICE, LAYOUT_SLICE, mm_tanh},
        {3, 2, {2, 3, 4}, {4, 2}, LAYOUT_CONTIG, LAYOUT_T, mm},              /* batch broadcast */
        {3, 4, {3, 1, 4}, {2, 1, 4, 2}, LAYOUT_T, LAYOUT_CONTIG, mm_tanh},   /* (3,1,4)@(2,1,4,2) -> (2,3,1,2) */
        {4, 3, {2, 1, 3, 4}, {3, 4, 2}, LAYOUT_CONTIG, LAYOUT_SLICE, mm},
        {1, 2, {4}, {4, 3}, LAYOUT_SLICE, LAYOUT_CONTIG, mm_tanh},           /* vector @ matrix */
        {3, 1, {2, 3, 4}, {4}, LAYOUT_CONTIG, LAYOUT_SLICE, mm_tanh},        /* batch @ vector */
        {1, 1, {5}, {5}, LAYOUT_CONTIG, LAYOUT_SLICE, mm_tanh},              /* dot */
        {2, 2, {4, 3}, {8, 5}, LAYOUT_CONTIG, LAYOUT_CONTIG, mm_t_inside},  /* views made inside */
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        nb_mark m = nb_ctx_mark(ctx);
        nb_tensor *in[2] = {test_leaf(ctx, cases[k].na, cases[k].sa, cases[k].la, DOM_ANY),
                            test_leaf(ctx, cases[k].nb, cases[k].sb, cases[k].lb, DOM_ANY)};
        char what[32];
        snprintf(what, sizeof what, "matmul case %zu", k);
        check_grads_named(cases[k].f, 2, in, NULL, true, what);
        nb_ctx_release(ctx, m);
    }
}

Test(linalg, linear_gradients) {
    nb_tensor *in[3] = {test_leaf(ctx, NB_SHAPE(2, 3, 4), LAYOUT_SLICE, DOM_ANY), test_leaf(ctx, NB_SHAPE(5, 4), LAYOUT_T, DOM_ANY),
                        test_leaf(ctx, NB_SHAPE(5), LAYOUT_CONTIG, DOM_ANY)};
    check_grads_named(lin, 3, in, NULL, true, "linear");
}

Test(linalg, large_matmul_matches_naive) {
    /* big enough for BLIS's threaded path and its packing */
    const int64_t M = 67, K = 129, N = 45;
    nb_tensor *a = nb_randn(ctx, NB_F64, NB_SHAPE(M, K)), *b = nb_randn(ctx, NB_F64, NB_SHAPE(N, K));
    nb_tensor *y = nb_matmul(ctx, a, nb_transpose(ctx, b, 0, 1));
    for (int64_t i = 0; i < M; i += 7)
        for (int64_t j = 0; j < N; j += 5) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += nb_get(a, i * K + k) * nb_get(b, j * K + k);
            assert_close(nb_get(y, i * N + j), s, 1e-12, 1e-12);
        }
}
