/* Helpers shared by the nn tests (conv, pool, norm, layers, rnn): f64 inputs filled with the
 * reference formula, comparison with PyTorch numbers, and gradcheck + gradgradcheck. */
#ifndef NABLA_NN_TEST_UTIL_H
#define NABLA_NN_TEST_UTIL_H

#include "common.h"
#include "ref/nn_ref.h"

#include <string.h>

/* f64 step tensor with ref_fill(seed) values; requires grad if grad */
static inline nb_tensor *ref_tensor(nb_ctx *c, int ndim, const int64_t *shape, double seed, bool grad) {
    nb_tensor *t = nb_zeros(c, NB_F64, ndim, shape);
    cr_assert_not_null(t);
    ref_fill(t, seed);
    if (grad) nb_requires_grad(t, true);
    return t;
}

/* out against PyTorch's numbers */
#define assert_ref(out, REF) assert_values((out), (REF), (int64_t)(sizeof(REF) / sizeof(REF[0])), 1e-10)

/* gradcheck (and gradgradcheck when second) of f over inputs, failing with the report */
#define check_grads(c, f, n, in, user, second) check_grads_in((c), (f), (n), (in), (user), (second), #f)

/* the op failed with status s and a message containing every string in the NULL-terminated list */
static inline void assert_error(nb_ctx *c, const nb_tensor *r, nb_status s, const char *const *parts) {
    cr_assert_null(r, "expected failure");
    cr_assert_eq(nb_ctx_status(c), s, "status %s, expected %s: %s", nb_status_name(nb_ctx_status(c)), nb_status_name(s),
                 nb_ctx_error(c));
    for (int i = 0; parts[i]; i++)
        cr_assert_not_null(strstr(nb_ctx_error(c), parts[i]), "message '%s' lacks '%s'", nb_ctx_error(c), parts[i]);
    nb_ctx_clear_error(c);
}
#define ASSERT_ERROR(c, r, s, ...) assert_error((c), (r), (s), (const char *const[]){__VA_ARGS__, NULL})

#endif
