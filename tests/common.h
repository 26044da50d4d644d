/* Shared helpers for nabla's Criterion tests. */
#ifndef NABLA_TEST_COMMON_H
#define NABLA_TEST_COMMON_H

#include <criterion/criterion.h>
#include <math.h>
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

/* |a - b| <= atol + rtol * |b| */
#define assert_close(a, b, atol, rtol, ...)                                                              \
    do {                                                                                                 \
        double a_ = (a), b_ = (b);                                                                       \
        cr_assert(fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_), "%s = %.10g, expected %.10g " __VA_ARGS__, \
                  #a, a_, b_);                                                                           \
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

#endif
