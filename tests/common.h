/* Shared helpers for nabla's Criterion tests. */
#ifndef NABLA_TEST_COMMON_H
#define NABLA_TEST_COMMON_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <nabla/nabla.h>

/* A fresh context per test: `static nb_ctx *ctx;` + TestSuite(x, .init = ctx_setup, .fini = ctx_teardown) */
static nb_ctx *ctx;
static inline void ctx_setup(void) {
    ctx = nb_ctx_new();
    nb_ctx_seed(ctx, 1234);
}
static inline void ctx_teardown(void) {
    nb_ctx_free(ctx);
    ctx = NULL;
}

/* true if s is well-formed UTF-8 without control bytes other than tab, newline, return (what an
 * XML parser, or Graphviz's SVG output, accepts) */
static inline bool clean_text(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        if (!n || (*p >= 0xC0 && *p < 0xC2) || *p > 0xF4) return false;
        if (n == 1 && *p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') return false;
        for (int k = 1; k < n; k++)
            if ((p[k] & 0xC0) != 0x80) return false;
        p += n;
    }
    return true;
}

/* |a - b| <= atol + rtol * |b|; an optional printf-style note follows: (..., "(%s)", name) */
#define assert_close(a, b, atol, rtol, ...)                                                               \
    do {                                                                                                  \
        double a_ = (a), b_ = (b);                                                                        \
        if (!(fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_))) {                                                \
            char note_[256];                                                                              \
            snprintf(note_, sizeof note_, " " __VA_ARGS__);                                               \
            cr_assert_fail("%s = %.10g, expected %.10g%s", #a, a_, b_, note_);                            \
        }                                                                                                 \
    } while (0)

/* Every element of t against the array want[] */
static inline void assert_values(const nb_tensor *t, const double *want, int64_t n, double tol) {
    cr_assert_not_null(t, "tensor is NULL: %s", nb_last_error());
    cr_assert_eq(t->numel, n, "numel %lld, expected %lld", (long long)t->numel, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        double v = nb_get(t, i);
        cr_assert(fabs(v - want[i]) <= tol * (1 + fabs(want[i])), "element %lld = %.10g, expected %.10g", (long long)i, v,
                  want[i]);
    }
}

/* An f64 step tensor with random normal values that requires grad. */
static inline nb_tensor *rand_leaf(nb_ctx *c, int ndim, const int64_t *shape) {
    nb_tensor *t = nb_randn(c, NB_F64, ndim, shape);
    nb_requires_grad(t, true);
    return t;
}

/* Input layouts for gradient tests: contiguous, a transposed view of the last two axes, or a
 * strided slice (every other element of a bigger tensor's last axis). Views are leaves. */
typedef enum { LAYOUT_CONTIG, LAYOUT_T, LAYOUT_SLICE } test_layout;
/* Value domains keeping finite differences away from kinks and poles. */
typedef enum {
    DOM_ANY,   /* standard normal */
    DOM_POS,   /* |N| + 0.5 (log, sqrt, pow bases) */
    DOM_AWAY0, /* sign(N) * (|N| + 0.25) (relu, abs, divisors) */
    DOM_UNIT   /* uniform in (0.1, 0.9) (probabilities, targets) */
} test_domain;

/* An f64 leaf that requires grad with random values from ctx's generator, in the given layout
 * and domain. Shapes are those of the result. */
static inline nb_tensor *test_leaf(nb_ctx *c, int ndim, const int64_t *shape, test_layout lay, test_domain dom) {
    int64_t s[NB_MAX_DIMS] = {0};
    for (int i = 0; i < ndim; i++) s[i] = shape[i];
    if (lay == LAYOUT_T && ndim < 2) lay = LAYOUT_SLICE;
    if (lay == LAYOUT_SLICE && ndim < 1) lay = LAYOUT_CONTIG;
    if (lay == LAYOUT_T) s[ndim - 2] = shape[ndim - 1], s[ndim - 1] = shape[ndim - 2];
    if (lay == LAYOUT_SLICE) s[ndim - 1] = 2 * shape[ndim - 1] + 1;
    nb_tensor *t = nb_randn(c, NB_F64, ndim, s);
    if (lay == LAYOUT_T) t = nb_transpose(c, t, -1, -2);
    if (lay == LAYOUT_SLICE) t = nb_slice(c, t, -1, 1, s[ndim - 1], 2);
    cr_assert_not_null(t, "test_leaf: %s", nb_last_error());
    for (int64_t i = 0; i < t->numel; i++) {
        double v = nb_get(t, i);
        switch (dom) {
        case DOM_ANY: break;
        case DOM_POS: v = fabs(v) + 0.5; break;
        case DOM_AWAY0: v = (v < 0 ? -1 : 1) * (fabs(v) + 0.25); break;
        case DOM_UNIT: v = 0.1 + 0.8 / (1 + exp(-v)); break;
        }
        nb_set(t, i, v);
    }
    cr_assert_eq(nb_requires_grad(t, true), NB_OK, "%s", nb_last_error());
    return t;
}

/* An f64 step tensor holding data[] with the given shape. */
static inline nb_tensor *test_from(nb_ctx *c, const double *data, int ndim, const int64_t *shape) {
    nb_tensor *t = nb_from(c, NB_F64, ndim, shape, data);
    cr_assert_not_null(t, "%s", nb_last_error());
    return t;
}

/* gradcheck (and gradgradcheck when `second`) of f at inputs, failing with the report. */
static inline void check_grads_in(nb_ctx *c, nb_fn f, int n, nb_tensor *const *in, void *user, bool second,
                                  const char *what) {
    nb_gradcheck_report rep;
    nb_status st = nb_gradcheck(c, f, n, in, user, NULL, &rep);
    cr_assert_eq(st, NB_OK, "%s: %s | %s", what, rep.message, nb_ctx_error(c));
    if (second) {
        st = nb_gradgradcheck(c, f, n, in, user, NULL, &rep);
        cr_assert_eq(st, NB_OK, "%s (second order): %s | %s", what, rep.message, nb_ctx_error(c));
    }
}
#define check_grads_named(...) check_grads_in(ctx, __VA_ARGS__)

/* d sum(w * y) / dx, y computed from the leaf x and w[] holding y->numel weights; with
 * create_graph the result can be differentiated again (a Hessian-vector product is then
 * weighted_grad(c, weighted_grad(c, y, w, x, true), v, x, false)). */
static inline nb_tensor *weighted_grad(nb_ctx *c, nb_tensor *y, const double *w, nb_tensor *x, bool create_graph) {
    cr_assert_not_null(y, "%s", nb_ctx_error(c));
    nb_tensor *wt = nb_cast(c, nb_from(c, NB_F64, y->ndim, y->shape, w), y->dtype);
    nb_tensor *s = nb_sum_all(c, nb_mul(c, y, wt)), *g = NULL;
    cr_assert_eq(nb_grad(c, 1, &s, NULL, 1, &x, &g, create_graph), NB_OK, "%s", nb_ctx_error(c));
    return g;
}

#endif
