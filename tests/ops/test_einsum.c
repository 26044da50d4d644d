/* einsum (src/ops/einsum.c): values against the definition (a sum over every assignment of the
 * labels, computed here by brute force), PyTorch 1.13 values for the implicit output, ellipsis
 * and broadcasting, gradchecks of contractions, diagonals and traces, and bad specs. */
#include "common.h"

#include <string.h>

TestSuite(einsum, .init = ctx_setup, .fini = ctx_teardown);

/* out[o] = sum over the labels missing from the output of prod_k x_k[its labels], by looping over
 * every assignment of the labels: explicit "->" specs of letters, operands of the labels' sizes. */
static void by_definition(const char *spec, int n, nb_tensor *const *xs, double *out, int64_t numel) {
    char terms[8][16] = {{0}}, outt[16] = {0};
    int k = 0, len = 0;
    const char *p = spec;
    for (; *p != '-'; p++) {
        if (*p == ',') terms[k][len] = 0, k++, len = 0;
        else terms[k][len++] = *p;
    }
    strcpy(outt, p + 2);
    cr_assert_eq(k + 1, n);
    int64_t size[128] = {0};
    char labels[32];
    int nl = 0;
    for (int i = 0; i < n; i++)
        for (int d = 0; terms[i][d]; d++) {
            const char c = terms[i][d];
            if (!size[(int)c]) labels[nl++] = c;
            size[(int)c] = xs[i]->shape[d];
        }
    memset(out, 0, (size_t)numel * sizeof *out);
    int64_t val[128] = {0}, total = 1;
    for (int l = 0; l < nl; l++) total *= size[(int)labels[l]];
    for (int64_t a = 0; a < total; a++) {
        int64_t r = a;
        for (int l = nl - 1; l >= 0; l--) val[(int)labels[l]] = r % size[(int)labels[l]], r /= size[(int)labels[l]];
        double prod = 1;
        for (int i = 0; i < n; i++) {
            int64_t flat = 0;
            for (int d = 0; terms[i][d]; d++) flat = flat * xs[i]->shape[d] + val[(int)terms[i][d]];
            prod *= nb_get(xs[i], flat);
        }
        int64_t o = 0;
        for (int d = 0; outt[d]; d++) o = o * size[(int)outt[d]] + val[(int)outt[d]];
        out[o] += prod;
    }
}

typedef struct {
    const char *spec;
    int n;
    int ndim[3];
    int64_t shape[3][4];
} ein_case;

static const ein_case CASES[] = {
    {"ij,jk->ik", 2, {2, 2}, {{2, 3}, {3, 4}}},
    {"bij,bjk->bik", 2, {3, 3}, {{2, 3, 4}, {2, 4, 2}}},
    {"bij,bkj->bki", 2, {3, 3}, {{2, 3, 4}, {2, 2, 4}}},
    {"ij->ji", 1, {2}, {{2, 3}}},
    {"ii->i", 1, {2}, {{3, 3}}},
    {"ii->", 1, {2}, {{4, 4}}},
    {"iji->j", 1, {3}, {{3, 2, 3}}},
    {"ij->", 1, {2}, {{2, 3}}},
    {"ij->j", 1, {2}, {{2, 3}}},
    {"i,j->ij", 2, {1, 1}, {{2}, {3}}},
    {"i,i->", 2, {1, 1}, {{4}, {4}}},
    {"ab,ab->ab", 2, {2, 2}, {{2, 3}, {2, 3}}},
    {"ab,ab->ba", 2, {2, 2}, {{2, 3}, {2, 3}}},
    {"ijk,jl,lk->il", 3, {3, 2, 2}, {{2, 3, 2}, {3, 4}, {4, 2}}},
    {"a,b,c->cab", 3, {1, 1, 1}, {{2}, {3}, {2}}},
    {"ij,kl->", 2, {2, 2}, {{2, 2}, {3, 1}}},
    {"bxi,bii->bx", 2, {3, 3}, {{2, 3, 2}, {2, 2, 2}}},
};

Test(einsum, values_against_the_definition) {
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        const ein_case *e = &CASES[c];
        nb_tensor *x[3];
        for (int i = 0; i < e->n; i++) x[i] = nb_randn(ctx, NB_F64, e->ndim[i], e->shape[i]);
        nb_tensor *y = nb_einsum(ctx, e->spec, e->n, x);
        cr_assert_not_null(y, "%s: %s", e->spec, nb_ctx_error(ctx));
        double want[64];
        cr_assert_leq(y->numel, 64);
        by_definition(e->spec, e->n, x, want, y->numel);
        for (int64_t k = 0; k < y->numel; k++)
            assert_close(nb_get(y, k), want[k], 1e-13, 1e-12, "(%s, element %lld)", e->spec, (long long)k);
    }
}

static nb_tensor *arange(double n, int ndim, const int64_t *shape) {
    return nb_reshape(ctx, nb_arange(ctx, NB_F64, 0, n, 1), ndim, shape);
}

Test(einsum, implicit_output_ellipsis_and_broadcasting_as_torch) {
    nb_tensor *a = arange(6, NB_SHAPE(2, 3)), *sq = arange(9, NB_SHAPE(3, 3));
    /* torch.einsum("bA", a).shape == (3, 2): the implicit output is in ASCII order */
    nb_tensor *t = nb_einsum(ctx, "bA", 1, &a);
    cr_assert(t && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 2, "%s", nb_ctx_error(ctx));
    assert_values(t, (double[]){0, 3, 1, 4, 2, 5}, 6, 0);
    assert_values(nb_einsum(ctx, "ii", 1, &sq), (double[]){12}, 1, 0);  /* torch: tensor(12.) */
    assert_values(nb_einsum(ctx, " i j -> j i ", 1, &a), (double[]){0, 3, 1, 4, 2, 5}, 6, 0);
    /* torch.einsum("...ii->...i", arange(18).reshape(2, 3, 3)) */
    nb_tensor *b = arange(18, NB_SHAPE(2, 3, 3));
    assert_values(nb_einsum(ctx, "...ii->...i", 1, &b), (double[]){0, 4, 8, 9, 13, 17}, 6, 0);
    /* torch.einsum("i...->...", arange(6).reshape(2, 3)) and the ellipsis summed away */
    assert_values(nb_einsum(ctx, "i...->...", 1, &a), (double[]){3, 5, 7}, 3, 0);
    assert_values(nb_einsum(ctx, "...j->j", 1, &b), (double[]){45, 51, 57}, 3, 0); /* torch.einsum("...j->j", b) */
    /* batched matmul with broadcast batch axes: (2, 1, 2, 3) x (4, 3, 2) -> (2, 4, 2, 2) */
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(2, 1, 2, 3)), *y = nb_randn(ctx, NB_F64, NB_SHAPE(4, 3, 2));
    nb_tensor *e = nb_einsum(ctx, "...ij,...jk->...ik", 2, (nb_tensor *[]){x, y}), *m = nb_matmul(ctx, x, y);
    cr_assert(e && e->ndim == 4 && nb_same_shape(e, m), "%s", nb_ctx_error(ctx));
    for (int64_t k = 0; k < m->numel; k++) assert_close(nb_get(e, k), nb_get(m, k), 1e-14, 1e-13);
    /* torch.einsum("ij,jk->ik", ones(2, 1), ones(3, 4)): j broadcasts, the sum has 3 terms */
    nb_tensor *o = nb_einsum(ctx, "ij,jk->ik", 2, (nb_tensor *[]){nb_ones(ctx, NB_F64, NB_SHAPE(2, 1)), nb_ones(ctx, NB_F64, NB_SHAPE(3, 4))});
    cr_assert(o && o->shape[0] == 2 && o->shape[1] == 4, "%s", nb_ctx_error(ctx));
    for (int64_t k = 0; k < 8; k++) cr_assert_eq(nb_get(o, k), 3.0);
    /* 0-d operands and empty axes */
    nb_tensor *s = nb_scalar(ctx, NB_F64, 2), *v = arange(3, NB_SHAPE(3));
    assert_values(nb_einsum(ctx, ",i->i", 2, (nb_tensor *[]){s, v}), (double[]){0, 2, 4}, 3, 0);
    nb_tensor *z = nb_einsum(ctx, "ij,jk->ik", 2, (nb_tensor *[]){nb_ones(ctx, NB_F64, NB_SHAPE(2, 0)), nb_ones(ctx, NB_F64, NB_SHAPE(0, 3))});
    cr_assert(z && z->shape[0] == 2 && z->shape[1] == 3, "%s", nb_ctx_error(ctx));
    assert_values(z, (double[]){0, 0, 0, 0, 0, 0}, 6, 0);
    nb_tensor *z2 = nb_einsum(ctx, "ij,jk->ik", 2, (nb_tensor *[]){nb_ones(ctx, NB_F64, NB_SHAPE(0, 2)), nb_ones(ctx, NB_F64, NB_SHAPE(2, 3))});
    cr_assert(z2 && z2->shape[0] == 0 && z2->shape[1] == 3, "%s", nb_ctx_error(ctx));
    /* f32 stays f32 */
    nb_tensor *f = nb_einsum(ctx, "ij,jk", 2, (nb_tensor *[]){nb_ones(ctx, NB_F32, NB_SHAPE(2, 3)), nb_ones(ctx, NB_F32, NB_SHAPE(3, 2))});
    cr_assert(f && f->dtype == NB_F32);
    assert_values(f, (double[]){3, 3, 3, 3}, 4, 0);
}

static nb_tensor *g_einsum(nb_ctx *c, nb_tensor *const *in, void *u) {
    const ein_case *e = u;
    return nb_einsum(c, e->spec, e->n, in);
}

Test(einsum, gradients_of_contractions_diagonals_and_traces) {
    static const ein_case g[] = {
        {"ii->i", 1, {2}, {{3, 3}}},
        {"ii", 1, {2}, {{3, 3}}},
        {"iji->j", 1, {3}, {{3, 2, 3}}},
        {"ij->", 1, {2}, {{2, 3}}},
        {"ijk,jl,lk->il", 3, {3, 2, 2}, {{2, 3, 2}, {3, 4}, {4, 2}}},
        {"...ij,...jk->...ik", 2, {4, 3}, {{2, 1, 2, 3}, {2, 3, 2}}},
        {"bxi,bii->bx", 2, {3, 3}, {{2, 3, 2}, {2, 2, 2}}},
        {"i,j->ji", 2, {1, 1}, {{2}, {3}}},
    };
    for (size_t c = 0; c < sizeof g / sizeof *g; c++) {
        nb_tensor *in[3];
        for (int i = 0; i < g[c].n; i++) in[i] = test_leaf(ctx, g[c].ndim[i], g[c].shape[i], i % 2 ? LAYOUT_SLICE : LAYOUT_T, DOM_ANY);
        check_grads_named(g_einsum, g[c].n, in, (void *)&g[c], true, g[c].spec);
    }
}

Test(einsum, bad_specs_are_named) {
    nb_tensor *a = nb_ones(ctx, NB_F64, NB_SHAPE(2, 3)), *b = nb_ones(ctx, NB_F64, NB_SHAPE(3, 4));
    nb_tensor *ab[2] = {a, b};
    struct {
        const char *spec;
        int n;
        nb_status st;
        const char *word;
    } bad[] = {
        {"ij,j1->i", 2, NB_ERR_VALUE, "invalid character '1' at position 4"},
        {"ij,jk->ik", 1, NB_ERR_VALUE, "names 2 operands, 1 given"},
        {"ijk,jk->ik", 2, NB_ERR_SHAPE, "operand 0 (2,3) has 2 dims, but its subscripts \"ijk\""},
        {"ik,jk->ij", 2, NB_ERR_SHAPE, "label 'k' of \"ik,jk->ij\" has sizes 3 and 4"},
        {"ij,jk->iz", 2, NB_ERR_VALUE, "output label 'z' of \"ij,jk->iz\" is in no operand"},
        {"ij,jk->ii", 2, NB_ERR_VALUE, "output label 'i' of \"ij,jk->ii\" appears twice"},
        {"i..j,jk->ik", 2, NB_ERR_VALUE, "bad ellipsis at position 1"},
        {"......,jk", 2, NB_ERR_VALUE, "bad ellipsis"},
        {"ij,jk-ik", 2, NB_ERR_VALUE, "unexpected '-' at position 5"},
        {"ij,jk->i,k", 2, NB_ERR_VALUE, "unexpected ','"},
        {"ij,jk->i->k", 2, NB_ERR_VALUE, "unexpected '-'"},
        {"abcdefghi,jk", 2, NB_ERR_SHAPE, "more than 8 dims"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        cr_assert_null(nb_einsum(ctx, bad[k].spec, bad[k].n, ab), "%s was accepted", bad[k].spec);
        cr_assert_eq(nb_ctx_status(ctx), bad[k].st, "%s: %s", bad[k].spec, nb_ctx_error(ctx));
        cr_assert(strstr(nb_ctx_error(ctx), "einsum: ") && strstr(nb_ctx_error(ctx), bad[k].word), "%s: '%s' lacks '%s'",
                  bad[k].spec, nb_ctx_error(ctx), bad[k].word);
        nb_ctx_clear_error(ctx);
    }
    /* NULL, dtypes, and an output over 8 dims */
    cr_assert_null(nb_einsum(ctx, NULL, 2, ab));
    cr_assert(strstr(nb_ctx_error(ctx), "einsum"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_einsum(ctx, "ij,jk", 2, (nb_tensor *[]){a, NULL}));
    cr_assert(strstr(nb_ctx_error(ctx), "einsum: operand 1 is NULL"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_einsum(ctx, "ij,jk", 2, (nb_tensor *[]){a, nb_ones(ctx, NB_F32, NB_SHAPE(3, 4))}));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_DTYPE);
    cr_assert(strstr(nb_ctx_error(ctx), "einsum: operand 1 is f32"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    nb_tensor *v = nb_ones(ctx, NB_F64, NB_SHAPE(1));
    cr_assert_null(nb_einsum(ctx, "a,b,c,d,e,f,g,h,i", 9, (nb_tensor *[]){v, v, v, v, v, v, v, v, v}));
    cr_assert(strstr(nb_ctx_error(ctx), "einsum: the output of") && strstr(nb_ctx_error(ctx), "more than 8 dims"), "%s",
              nb_ctx_error(ctx));
}
