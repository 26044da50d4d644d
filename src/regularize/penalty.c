/* Penalties as scalar graph terms, composed from ops: autodiff gives their gradients. */
#include "../internal.h"

static bool check_coef(nb_ctx *ctx, const char *fn, const char *name, double v) {
    if (v >= 0.0 && isfinite(v)) return true;
    nb__fail(ctx, NB_ERR_VALUE, "%s: %s = %g must be finite and >= 0", fn, name, v);
    return false;
}

static bool check_list(nb_ctx *ctx, const char *fn, int n, nb_tensor *const *ws) {
    if (!ctx) return nb_set_error(NB_ERR_NULL, "%s: context is NULL", fn), false;
    if (n < 1 || !ws) return nb__fail(ctx, NB_ERR_NULL, "%s: no tensors given", fn), false;
    for (int k = 0; k < n; k++) {
        if (!ws[k]) return nb__fail(ctx, NB_ERR_NULL, "%s: tensor %d is NULL", fn, k), false;
        if (ws[k]->dtype != ws[0]->dtype)
            return nb__fail(ctx, NB_ERR_DTYPE, "%s: tensor %d is %s, tensor 0 is %s", fn, k, nb_dtype_name(ws[k]->dtype),
                            nb_dtype_name(ws[0]->dtype)),
                   false;
    }
    return true;
}

/* sqrt(s) of s >= 0 with value 0 and gradient 0 where s == 0 (plain sqrt would give
 * 0 * inf = NaN there); a NaN in s stays NaN (s != 0 holds for it). */
static nb_tensor *safe_sqrt(nb_ctx *ctx, nb_tensor *s) {
    if (!s) return NULL;
    nb_tensor *zero = nb_scalar(ctx, s->dtype, 0.0), *pos = nb_ne(ctx, s, zero);
    nb_tensor *s1 = nb_where(ctx, pos, s, nb_scalar(ctx, s->dtype, 1.0));
    return nb_where(ctx, pos, nb_sqrt(ctx, s1), zero);
}

/* sum_k f(ws[k]) where f is sum(w^2) (square) or sum(|w|) */
static nb_tensor *sum_over(nb_ctx *ctx, int n, nb_tensor *const *ws, bool square) {
    nb_tensor *acc = NULL;
    for (int k = 0; k < n; k++) {
        nb_tensor *t = square ? nb__sum_sq(ctx, ws[k]) : nb__sum_abs(ctx, ws[k]);
        acc = acc ? nb_add(ctx, acc, t) : t;
    }
    return acc;
}

nb_tensor *nb_l2_penalty(nb_ctx *ctx, int n, nb_tensor *const *ws, double lambda) {
    if (!check_list(ctx, "l2_penalty", n, ws) || !check_coef(ctx, "l2_penalty", "lambda", lambda)) return NULL;
    return nb_mul_scalar(ctx, sum_over(ctx, n, ws, true), lambda);
}

nb_tensor *nb_l1_penalty(nb_ctx *ctx, int n, nb_tensor *const *ws, double lambda) {
    if (!check_list(ctx, "l1_penalty", n, ws) || !check_coef(ctx, "l1_penalty", "lambda", lambda)) return NULL;
    return nb_mul_scalar(ctx, sum_over(ctx, n, ws, false), lambda);
}

nb_tensor *nb_elastic_net_penalty(nb_ctx *ctx, int n, nb_tensor *const *ws, double l1, double l2) {
    if (!check_list(ctx, "elastic_net_penalty", n, ws) || !check_coef(ctx, "elastic_net_penalty", "l1", l1) ||
        !check_coef(ctx, "elastic_net_penalty", "l2", l2))
        return NULL;
    return nb_add(ctx, nb_mul_scalar(ctx, sum_over(ctx, n, ws, false), l1),
                  nb_mul_scalar(ctx, sum_over(ctx, n, ws, true), l2));
}

nb_tensor *nb_group_lasso_penalty(nb_ctx *ctx, int n, nb_tensor *const *ws, double lambda, int axis) {
    if (!check_list(ctx, "group_lasso_penalty", n, ws) || !check_coef(ctx, "group_lasso_penalty", "lambda", lambda))
        return NULL;
    if (axis < 0) return nb__fail(ctx, NB_ERR_AXIS, "group_lasso_penalty: axis %d must be >= 0", axis);
    nb_tensor *acc = NULL;
    for (int k = 0; k < n; k++) {
        nb_tensor *w = ws[k];
        int axes[NB_MAX_DIMS], na = 0;
        for (int d = 0; d < w->ndim; d++)
            if (d != axis) axes[na++] = d;
        nb_tensor *sq = nb_mul(ctx, w, w);
        /* per-group sums of squares; with nothing to reduce (1-D w along axis 0) each element is a group */
        nb_tensor *s = w->ndim <= axis ? nb_sum_all(ctx, sq) : na ? nb_sum(ctx, sq, na, axes, false) : sq;
        nb_tensor *t = nb_sum_all(ctx, safe_sqrt(ctx, s));
        acc = acc ? nb_add(ctx, acc, t) : t;
    }
    return nb_mul_scalar(ctx, acc, lambda);
}

/* ---- over an nb_params ------------------------------------------------------------------ */
/* The selected parameters as an arena array; *n = 0 gives NULL without error. */
static nb_tensor **select_params(nb_ctx *ctx, const char *fn, const nb_params *ps, const bool *include, int *n) {
    *n = 0;
    if (!ctx) return nb_set_error(NB_ERR_NULL, "%s: context is NULL", fn), NULL;
    if (!ps) return nb__fail(ctx, NB_ERR_NULL, "%s: parameters are NULL", fn);
    const bool *sel = include ? include : ps->decay;
    nb_tensor **ws = nb_ctx_alloc(ctx, (size_t)(ps->n ? ps->n : 1) * sizeof *ws);
    if (!ws) return NULL;
    for (int i = 0; i < ps->n; i++)
        if (sel[i]) ws[(*n)++] = ps->p[i];
    return ws;
}

#define PARAMS_FORM(FN, CALL)                                                                          \
    int n;                                                                                             \
    nb_tensor **ws = select_params(ctx, FN, ps, include, &n);                                          \
    if (!ws) return NULL;                                                                              \
    if (n == 0) return nb_scalar(ctx, ps->dtype, 0.0);                                                 \
    return CALL

nb_tensor *nb_l2_penalty_params(nb_ctx *ctx, const nb_params *ps, const bool *include, double lambda) {
    PARAMS_FORM("l2_penalty_params", nb_l2_penalty(ctx, n, ws, lambda));
}
nb_tensor *nb_l1_penalty_params(nb_ctx *ctx, const nb_params *ps, const bool *include, double lambda) {
    PARAMS_FORM("l1_penalty_params", nb_l1_penalty(ctx, n, ws, lambda));
}
nb_tensor *nb_elastic_net_penalty_params(nb_ctx *ctx, const nb_params *ps, const bool *include, double l1,
                                         double l2) {
    PARAMS_FORM("elastic_net_penalty_params", nb_elastic_net_penalty(ctx, n, ws, l1, l2));
}
nb_tensor *nb_group_lasso_penalty_params(nb_ctx *ctx, const nb_params *ps, const bool *include, double lambda,
                                         int axis) {
    PARAMS_FORM("group_lasso_penalty_params", nb_group_lasso_penalty(ctx, n, ws, lambda, axis));
}

/* ---- gradient penalty ---------------------------------------------------------------------- */
nb_tensor *nb_gradient_penalty(nb_ctx *ctx, nb_tensor *out, nb_tensor *x, double target, double lambda) {
    if (nb__null(ctx, "gradient_penalty", 2, out, x)) return NULL;
    if (!check_coef(ctx, "gradient_penalty", "lambda", lambda) || !check_coef(ctx, "gradient_penalty", "target", target))
        return NULL;
    if (x->ndim < 1) return nb__fail(ctx, NB_ERR_SHAPE, "gradient_penalty: x must have a sample axis (N, ...), got a 0-d tensor");
    if (!x->requires_grad) return nb__fail(ctx, NB_ERR_STATE, "gradient_penalty: x does not require grad");
    nb_tensor *ones = nb_ones_like(ctx, out), *g = NULL;
    if (!ones || nb_grad(ctx, 1, &out, &ones, 1, &x, &g, true) != NB_OK) return NULL;
    int axes[NB_MAX_DIMS], na = 0;
    for (int d = 1; d < x->ndim; d++) axes[na++] = d;
    nb_tensor *sq = nb_mul(ctx, g, g);
    nb_tensor *s = na ? nb_sum(ctx, sq, na, axes, false) : sq; /* (N): squared norm per sample */
    nb_tensor *per = target == 0.0 ? s : nb_pow_scalar(ctx, nb_add_scalar(ctx, safe_sqrt(ctx, s), -target), 2.0);
    return nb_mul_scalar(ctx, nb_mean_all(ctx, per), lambda);
}
