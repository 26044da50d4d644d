/* Shape ops, views and indexing (src/ops/shape.c). Values by index arithmetic; gradients and
 * second derivatives by finite differences. Each function multiplies by a fixed non-uniform
 * weight (via sum of x*x) so that a permuted gradient cannot pass by symmetry. */
#include "common.h"

TestSuite(shape, .init = ctx_setup, .fini = ctx_teardown);

static nb_tensor *idx_tensor(nb_ctx *c, int ndim, const int64_t *shape, const int64_t *v) {
    nb_tensor *t = nb_from(c, NB_I64, ndim, shape, v);
    cr_assert_not_null(t);
    return t;
}

/* f(x) = op(x) * op(x): nonlinear, so second derivatives are not trivially zero */
#define SQ(expr) nb_tensor *y_ = (expr); return nb_mul(c, y_, y_)

static nb_tensor *f_reshape(nb_ctx *c, nb_tensor *const *in, void *u) { SQ(nb_reshape(c, in[0], NB_SHAPE(4, -1))); }
static nb_tensor *f_permute(nb_ctx *c, nb_tensor *const *in, void *u) { SQ(nb_permute(c, in[0], (int[]){2, 0, 1})); }
static nb_tensor *f_transpose(nb_ctx *c, nb_tensor *const *in, void *u) { SQ(nb_transpose(c, in[0], 0, -1)); }
static nb_tensor *f_slice(nb_ctx *c, nb_tensor *const *in, void *u) { SQ(nb_slice(c, in[0], 2, -3, 100, 2)); }
static nb_tensor *f_expand(nb_ctx *c, nb_tensor *const *in, void *u) {
    SQ(nb_expand(c, nb_slice(c, in[0], 1, 0, 1, 1), NB_SHAPE(3, 2, 3, 4)));
}
static nb_tensor *f_contiguous(nb_ctx *c, nb_tensor *const *in, void *u) { SQ(nb_contiguous(c, nb_transpose(c, in[0], 0, 1))); }
static nb_tensor *f_squeeze(nb_ctx *c, nb_tensor *const *in, void *u) {
    SQ(nb_squeeze(c, nb_unsqueeze(c, in[0], 1), 1));
}
static nb_tensor *f_flatten(nb_ctx *c, nb_tensor *const *in, void *u) { SQ(nb_flatten(c, nb_transpose(c, in[0], 1, 2), 1)); }
static nb_tensor *f_concat(nb_ctx *c, nb_tensor *const *in, void *u) { SQ(nb_concat(c, 2, in, 1)); }
static nb_tensor *f_stack(nb_ctx *c, nb_tensor *const *in, void *u) {
    nb_tensor *xs[3] = {in[0], in[1], in[0]};
    SQ(nb_stack(c, 3, xs, -1));
}
static nb_tensor *f_index_select(nb_ctx *c, nb_tensor *const *in, void *u) { SQ(nb_index_select(c, in[0], 1, u)); }
static nb_tensor *f_index_add(nb_ctx *c, nb_tensor *const *in, void *u) { SQ(nb_index_add(c, in[0], 1, u, in[1])); }
static nb_tensor *f_gather(nb_ctx *c, nb_tensor *const *in, void *u) { SQ(nb_gather(c, in[0], 1, u)); }
static nb_tensor *f_scatter_add(nb_ctx *c, nb_tensor *const *in, void *u) { SQ(nb_scatter_add(c, in[0], 1, u, in[1])); }
static nb_tensor *f_cast(nb_ctx *c, nb_tensor *const *in, void *u) { SQ(nb_cast(c, in[0], NB_F64)); }

typedef struct {
    const char *name;
    nb_fn f;
    int n_in;
    int nd[2];
    int64_t s[2][3];
    int idx;  /* which index tensor the function gets: 0 none, 1 (4) along axis 1, 2 gather (2,2,4) */
} shape_case;

static const shape_case CASES[] = {
    {"reshape", f_reshape, 1, {3}, {{2, 3, 4}}, 0},
    {"permute", f_permute, 1, {3}, {{2, 3, 4}}, 0},
    {"transpose", f_transpose, 1, {3}, {{2, 3, 4}}, 0},
    {"slice", f_slice, 1, {3}, {{2, 3, 7}}, 0},
    {"expand", f_expand, 1, {3}, {{2, 3, 4}}, 0},
    {"contiguous", f_contiguous, 1, {3}, {{2, 3, 4}}, 0},
    {"squeeze", f_squeeze, 1, {3}, {{2, 3, 4}}, 0},
    {"flatten", f_flatten, 1, {3}, {{2, 3, 4}}, 0},
    {"concat", f_concat, 2, {3, 3}, {{2, 3, 4}, {2, 1, 4}}, 0},
    {"stack", f_stack, 2, {2, 2}, {{3, 4}, {3, 4}}, 0},
    {"index_select", f_index_select, 1, {3}, {{2, 3, 4}}, 1},
    {"index_add", f_index_add, 2, {3, 3}, {{2, 3, 4}, {2, 4, 4}}, 1},
    {"gather", f_gather, 1, {3}, {{2, 3, 4}}, 2},
    {"scatter_add", f_scatter_add, 2, {3, 3}, {{2, 3, 4}, {2, 2, 4}}, 2},
    {"cast", f_cast, 1, {2}, {{3, 4}}, 0},
};

Test(shape, gradients_all_ops_and_layouts) {
    /* repeated indices check that index_select/gather gradients accumulate */
    nb_tensor *sel = idx_tensor(ctx, NB_SHAPE(4), (int64_t[]){2, 0, 2, 1});
    nb_tensor *gat = idx_tensor(ctx, NB_SHAPE(2, 2, 4), (int64_t[]){0, 1, 2, 0, 2, 2, 1, 0, 1, 1, 0, 2, 0, 0, 2, 1});
    for (size_t k = 0; k < sizeof CASES / sizeof *CASES; k++) {
        const shape_case *c = &CASES[k];
        void *user = c->idx == 1 ? sel : c->idx == 2 ? gat : NULL;
        for (int lay = LAYOUT_CONTIG; lay <= LAYOUT_SLICE; lay++) {
            nb_mark m = nb_ctx_mark(ctx);
            nb_tensor *in[2];
            for (int i = 0; i < c->n_in; i++) in[i] = test_leaf(ctx, c->nd[i], c->s[i], (test_layout)lay, DOM_ANY);
            char what[64];
            snprintf(what, sizeof what, "%s layout %d", c->name, lay);
            check_grads_named(c->f, c->n_in, in, user, true, what);
            nb_ctx_release(ctx, m);
        }
    }
}

/* x[i] = i for a (2,3,4) tensor */
static nb_tensor *iota(void) { return nb_reshape(ctx, nb_arange(ctx, NB_F64, 0, 24, 1), NB_SHAPE(2, 3, 4)); }

Test(shape, views_share_data_and_index_correctly) {
    nb_tensor *x = iota();
    nb_tensor *p = nb_permute(ctx, x, (int[]){2, 0, 1});  /* (4,2,3): p[k,i,j] = x[i,j,k] */
    cr_assert(p->shape[0] == 4 && p->shape[1] == 2 && p->shape[2] == 3 && p->data == x->data);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) cr_assert_eq(nb_get(p, k * 6 + i * 3 + j), i * 12 + j * 4 + k);
    nb_tensor *s = nb_slice(ctx, x, -1, -3, 100, 2);  /* columns 1, 3 */
    cr_assert(s->shape[2] == 2 && s->data != NULL);
    for (int i = 0; i < 12; i++) cr_assert_eq(nb_get(s, i), (i / 2) * 4 + 1 + 2 * (i % 2));
    nb_tensor *e = nb_slice(ctx, x, 1, 5, 9, 1);  /* empty, clamped like Python */
    cr_assert_eq(e->numel, 0);
    /* reshape of a transposed view must copy; the copy holds the right order */
    nb_tensor *t = nb_transpose(ctx, x, 1, 2);    /* (2,4,3) */
    nb_tensor *r = nb_reshape(ctx, t, NB_SHAPE(8, 3));
    for (int i = 0; i < 24; i++) cr_assert_eq(nb_get(r, i), nb_get(t, i));
    /* reshape of a contiguous tensor is a view */
    nb_tensor *v = nb_reshape(ctx, x, NB_SHAPE(6, -1));
    cr_assert(v->data == x->data && v->shape[1] == 4);
    nb_tensor *ex = nb_expand(ctx, nb_slice(ctx, x, 1, 0, 1, 1), NB_SHAPE(5, 2, 3, 4));
    cr_assert(ex->stride[0] == 0 && ex->stride[2] == 0);
    for (int i = 0; i < ex->numel; i++) cr_assert_eq(nb_get(ex, i), ((i / 12) % 2) * 12 + i % 4);
    nb_tensor *f = nb_flatten(ctx, x, 1);
    cr_assert(f->ndim == 2 && f->shape[1] == 12);
    nb_tensor *sq = nb_squeeze(ctx, x, 0);  /* not size 1: unchanged */
    cr_assert_eq(sq, x);
    nb_tensor *u = nb_unsqueeze(ctx, x, -1);
    cr_assert(u->ndim == 4 && u->shape[3] == 1);
}

Test(shape, concat_stack_and_indexing_values) {
    nb_tensor *x = iota();
    nb_tensor *y = nb_mul_scalar(ctx, iota(), -1);
    nb_tensor *xs[2] = {x, nb_slice(ctx, y, 1, 0, 1, 1)};
    nb_tensor *c = nb_concat(ctx, 2, xs, 1);  /* (2,4,4) */
    cr_assert(c->shape[1] == 4);
    for (int b = 0; b < 2; b++)
        for (int r = 0; r < 4; r++)
            for (int k = 0; k < 4; k++)
                cr_assert_eq(nb_get(c, b * 16 + r * 4 + k), r < 3 ? b * 12 + r * 4 + k : -(b * 12 + k));
    nb_tensor *st = nb_stack(ctx, 2, (nb_tensor *[]){x, y}, 0);
    cr_assert(st->ndim == 4 && st->shape[0] == 2);
    for (int i = 0; i < 24; i++) cr_assert(nb_get(st, i) == i && nb_get(st, 24 + i) == -i);

    nb_tensor *sel = idx_tensor(ctx, NB_SHAPE(3), (int64_t[]){2, 2, 0});
    nb_tensor *is = nb_index_select(ctx, x, 1, sel);
    for (int b = 0; b < 2; b++)
        for (int r = 0; r < 3; r++)
            for (int k = 0; k < 4; k++) cr_assert_eq(nb_get(is, b * 12 + r * 4 + k), b * 12 + ((int64_t[]){2, 2, 0})[r] * 4 + k);
    nb_tensor *ia = nb_index_add(ctx, nb_zeros_like(ctx, x), 1, sel, nb_ones(ctx, NB_F64, NB_SHAPE(2, 3, 4)));
    for (int i = 0; i < 24; i++) cr_assert_eq(nb_get(ia, i), ((i / 4) % 3 == 2) ? 2.0 : ((i / 4) % 3 == 0) ? 1.0 : 0.0);

    nb_tensor *m = test_from(ctx, (double[]){1, 2, 3, 4, 5, 6}, NB_SHAPE(2, 3));
    nb_tensor *gi = idx_tensor(ctx, NB_SHAPE(2, 2), (int64_t[]){2, 0, 1, 1});
    assert_values(nb_gather(ctx, m, 1, gi), (double[]){3, 1, 5, 5}, 4, 0);
    nb_tensor *sa = nb_scatter_add(ctx, nb_zeros_like(ctx, m), 1, gi, test_from(ctx, (double[]){10, 20, 30, 40}, NB_SHAPE(2, 2)));
    assert_values(sa, (double[]){20, 0, 10, 0, 70, 0}, 6, 0);
    /* gather along axis 0 */
    nb_tensor *g0 = nb_gather(ctx, m, 0, idx_tensor(ctx, NB_SHAPE(1, 3), (int64_t[]){1, 0, 1}));
    assert_values(g0, (double[]){4, 2, 6}, 3, 0);
}

/* ---- scatter (PyTorch 1.13 references in tests/ref/tensor_refs.h) ------------------------------- */
#include "ref/tensor_refs.h"

Test(shape, scatter_matches_torch_and_last_write_wins) {
    nb_tensor *x = test_from(ctx, TR_X, NB_SHAPE(2, 4));
    nb_tensor *idx = idx_tensor(ctx, NB_SHAPE(2, 3), TR_SCATTER_IDX);
    nb_tensor *src = test_from(ctx, TR_SCATTER_SRC, NB_SHAPE(2, 4)); /* larger than idx: its (2,3) block is used */
    assert_values(nb_scatter(ctx, x, 1, idx, src), TR_SCATTER, 8, 0);
    nb_tensor *s3 = nb_contiguous(ctx, nb_slice(ctx, src, 1, 0, 3, 1));
    nb_requires_grad(x, true);
    nb_requires_grad(s3, true);
    nb_tensor *y = nb_scatter(ctx, x, 1, idx, s3);
    double w[8];
    for (int i = 0; i < 8; i++) w[i] = sin((double)i);
    assert_values(weighted_grad(ctx, y, w, x, false), TR_SCATTER_GRAD_X, 8, 0);
    assert_values(weighted_grad(ctx, y, w, s3, false), TR_SCATTER_GRAD_SRC, 6, 0);
    /* repeated targets (undefined in PyTorch): the last write in idx's order wins and alone gets
     * src's gradient */
    nb_tensor *v = nb_zeros(ctx, NB_F64, NB_SHAPE(4));
    nb_tensor *d = test_from(ctx, (double[]){1, 2, 3, 4}, NB_SHAPE(4));
    nb_requires_grad(d, true);
    nb_tensor *yd = nb_scatter(ctx, v, 0, idx_tensor(ctx, NB_SHAPE(4), (int64_t[]){2, 0, 2, 2}), d);
    assert_values(yd, (double[]){2, 0, 4, 0}, 4, 0);
    assert_values(weighted_grad(ctx, yd, (double[]){10, 20, 30, 40}, d, false), (double[]){0, 10, 0, 30}, 4, 0);
}

static nb_tensor *f_scatter(nb_ctx *c, nb_tensor *const *in, void *u) { SQ(nb_scatter(c, in[0], 1, u, in[1])); }

Test(shape, scatter_gradients_and_errors) {
    /* duplicates included: (0,0,*) and (1,1,*) write twice to some targets */
    nb_tensor *gat = idx_tensor(ctx, NB_SHAPE(2, 2, 4), (int64_t[]){0, 1, 2, 0, 2, 2, 1, 0, 1, 1, 0, 2, 0, 0, 2, 1});
    for (int lay = LAYOUT_CONTIG; lay <= LAYOUT_SLICE; lay++) {
        nb_tensor *in[2] = {test_leaf(ctx, NB_SHAPE(2, 3, 4), (test_layout)lay, DOM_ANY),
                            test_leaf(ctx, NB_SHAPE(2, 2, 4), (test_layout)lay, DOM_ANY)};
        check_grads_named(f_scatter, 2, in, gat, true, "scatter");
    }
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3));
    cr_assert_null(nb_scatter(ctx, x, 1, idx_tensor(ctx, NB_SHAPE(2, 2), (int64_t[]){0, 3, 1, 1}), nb_ones(ctx, NB_F64, NB_SHAPE(2, 2))));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_INDEX);
    cr_assert(strstr(nb_ctx_error(ctx), "scatter: index 3"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_scatter(ctx, x, 1, idx_tensor(ctx, NB_SHAPE(2, 2), (int64_t[]){0, 1, 1, 1}), nb_ones(ctx, NB_F64, NB_SHAPE(2, 1))));
    cr_assert(strstr(nb_ctx_error(ctx), "scatter: source (2,1) is smaller than the index (2,2)"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_scatter(ctx, x, 1, idx_tensor(ctx, NB_SHAPE(2, 2), (int64_t[]){0, 1, 1, 1}), nb_ones(ctx, NB_F32, NB_SHAPE(2, 2))));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_DTYPE);
}

/* A -1 beside a 0 could be any size: refused, as torch (it gave 0); flatten of an empty tensor
 * still works (it computes the size itself). */
Test(shape, reshape_minus_one_beside_zero_is_ambiguous) {
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(0, 3));
    cr_assert_null(nb_reshape(ctx, x, NB_SHAPE(0, -1)));
    cr_assert(strstr(nb_ctx_error(ctx), "ambiguous"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    nb_tensor *f = nb_flatten(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(0, 3, 4)), 1);
    cr_assert(f && f->ndim == 2 && f->shape[0] == 0 && f->shape[1] == 12, "%s", nb_ctx_error(ctx));
    nb_tensor *r = nb_reshape(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(2, 0)), NB_SHAPE(-1));
    cr_assert(r && r->ndim == 1 && r->shape[0] == 0, "%s", nb_ctx_error(ctx));
}
