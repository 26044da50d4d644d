/* gradcheck / gradgradcheck: analytic gradients against central finite differences in f64. */
#include "../internal.h"

#include <stdlib.h>

/* <v, f(x)> evaluated with the current input values; NAN on failure */
static double project(nb_ctx *ctx, nb_fn f, nb_tensor *const *in, void *user, const nb_tensor *v) {
    nb_mark m = nb_ctx_mark(ctx);
    nb_tensor *y = f(ctx, in, user);
    double s = NAN;
    if (y && nb_same_shape(y, v)) {
        s = 0;
        for (int64_t i = 0; i < y->numel; i++) s += nb_get(y, i) * nb_get(v, i);
    }
    nb_ctx_release(ctx, m);
    return s;
}

nb_status nb_gradcheck(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *in, void *user, const nb_gradcheck_opts *opts,
                       nb_gradcheck_report *rep) {
    nb_gradcheck_report local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    rep->worst_input = -1;
    if (!ctx || !f || n_in < 1 || !in) return nb_set_error(NB_ERR_NULL, "gradcheck: NULL argument");
    nb_gradcheck_opts o = opts ? *opts : NB_GRADCHECK_DEFAULTS;
    if (!(o.eps > 0 && isfinite(o.eps)) || !(o.atol >= 0) || !(o.rtol >= 0) || o.n_proj < 0)
        return nb__fail(ctx, NB_ERR_VALUE, "gradcheck: eps = %g must be positive and finite, atol = %g and rtol = %g >= 0, "
                        "n_proj = %d >= 0", o.eps, o.atol, o.rtol, o.n_proj),
               NB_ERR_VALUE;
    int nchk = 0;
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) return nb__fail(ctx, NB_ERR_NULL, "gradcheck: input %d is NULL", i), NB_ERR_NULL;
        if (in[i]->requires_grad && in[i]->dtype != NB_F64)
            return nb__fail(ctx, NB_ERR_DTYPE, "gradcheck: input %d is %s; finite differences need f64", i,
                            nb_dtype_name(in[i]->dtype)),
                   NB_ERR_DTYPE;
        if (in[i]->requires_grad)
            for (int a = 0; a < in[i]->ndim; a++)
                if (in[i]->stride[a] == 0 && in[i]->shape[a] > 1) /* one element seen at many indices */
                    return nb__fail(ctx, NB_ERR_VALUE, "gradcheck: input %d has stride 0 along axis %d (an expanded "
                                    "view): a finite difference would move all of its copies; pass nb_contiguous of it",
                                    i, a),
                           NB_ERR_VALUE;
        nchk += in[i]->requires_grad;
    }
    if (!nchk) return nb__fail(ctx, NB_ERR_STATE, "gradcheck: no input requires grad"), NB_ERR_STATE;

    nb_mark outer = nb_ctx_mark(ctx);
    nb_tensor *y0 = f(ctx, in, user);
    if (!y0) {
        nb_status s = ctx->status ? ctx->status : NB_ERR_NULL;
        if (!ctx->status) nb__fail(ctx, NB_ERR_NULL, "gradcheck: the function returned NULL without setting an error");
        snprintf(rep->message, sizeof rep->message, "gradcheck: the function failed: %s", nb_ctx_error(ctx));
        nb_ctx_release(ctx, outer);
        return s;
    }
    if (y0->dtype != NB_F64) {
        nb_ctx_release(ctx, outer);
        return nb__fail(ctx, NB_ERR_DTYPE, "gradcheck: the function returned %s; it must compute in f64", nb_dtype_name(y0->dtype)),
               NB_ERR_DTYPE;
    }
    int ny = y0->ndim;
    int64_t yshape[NB_MAX_DIMS];
    memcpy(yshape, y0->shape, sizeof yshape);
    const int64_t ynum = y0->numel;
    nb_ctx_release(ctx, outer);

    nb_status st = NB_OK;
    double worst = 0.0;
    int nproj = o.n_proj > 0 ? o.n_proj : (int)ynum;
    nb_rng rng = nb_rng_new(o.seed ^ 0x9e3779b97f4a7c15ull);
    for (int pj = 0; pj < nproj && st == NB_OK; pj++) {
        nb_mark m = nb_ctx_mark(ctx);
        nb_tensor *v = nb__new(ctx, NB_F64, ny, yshape);
        nb_tensor **grads = nb_ctx_alloc(ctx, (size_t)n_in * sizeof *grads);
        if (!v || !grads) {
            st = ctx->status;
            break;
        }
        if (o.n_proj > 0) nb_rng_normal(&rng, v, 0.0, 1.0);
        else {
            nb_fill(v, 0.0);
            nb_set(v, pj, 1.0);
        }
        /* analytic: one backward with grad_out = v */
        nb_tensor *chk[64];
        int map[64], nc = 0;
        for (int i = 0; i < n_in && nc < 64; i++)
            if (in[i]->requires_grad) map[nc] = i, chk[nc++] = in[i];
        nb_tensor *y = f(ctx, in, user);
        if (!y) {
            st = ctx->status ? ctx->status : NB_ERR_NULL;
            break;
        }
        if (y->requires_grad) {
            st = nb_grad(ctx, 1, &y, &v, nc, chk, grads, false);
        } else {  /* the output is constant in the inputs (e.g. a second derivative of a linear op) */
            for (int c = 0; c < nc; c++)
                if (!(grads[c] = nb_zeros_like(ctx, chk[c]))) st = ctx->status;
        }
        if (st != NB_OK) break;
        for (int c = 0; c < nc && st == NB_OK; c++) {
            nb_tensor *x = chk[c], *g = grads[c];
            int i = map[c];
            for (int64_t e = 0; e < x->numel; e++) {
                int64_t off = nb__offset(x, e);
                double *px = (double *)x->data + off, x0 = *px;
                *px = x0 + o.eps;
                double fp = project(ctx, f, in, user, v);
                *px = x0 - o.eps;
                double fm = project(ctx, f, in, user, v);
                *px = x0;
                double num = (fp - fm) / (2 * o.eps), ana = nb_get(g, e);
                double err = fabs(ana - num), tol = o.atol + o.rtol * fabs(num);
                double rel = err / (fabs(num) > 1e-12 ? fabs(num) : 1e-12);
                if (i < 8) {
                    if (err > rep->max_abs_err[i]) rep->max_abs_err[i] = err;
                    if (rel > rep->max_rel_err[i]) rep->max_rel_err[i] = rel;
                }
                if (!(err <= tol) && (err - tol > worst || rep->worst_input < 0 || isnan(err))) {
                    worst = isnan(err) ? INFINITY : err - tol;
                    rep->worst_input = i;
                    rep->worst_index = e;
                    rep->analytic = ana;
                    rep->numeric = num;
                }
            }
        }
        nb_ctx_release(ctx, m);
    }
    if (st != NB_OK) {
        nb_ctx_release(ctx, outer);
        snprintf(rep->message, sizeof rep->message, "gradcheck: %s", nb_ctx_error(ctx));
        return st;
    }
    nb_ctx_release(ctx, outer);
    rep->ok = rep->worst_input < 0;
    if (rep->ok) {
        snprintf(rep->message, sizeof rep->message, "gradcheck: ok");
        return NB_OK;
    }
    char b[128];
    snprintf(rep->message, sizeof rep->message,
             "gradcheck: input %d %s, element %lld: analytic %.10g vs numeric %.10g (|diff| %.3g > atol %.1g + rtol %.1g * |numeric|)",
             rep->worst_input, nb_shape_str(in[rep->worst_input], b, sizeof b), (long long)rep->worst_index, rep->analytic,
             rep->numeric, fabs(rep->analytic - rep->numeric), o.atol, o.rtol);
    nb_set_error(NB_ERR_NUMERIC, "%s", rep->message);
    return NB_ERR_NUMERIC;
}

/* x -> sum_i <d<v, f(x)>/dx_i, w_i>, differentiable through create_graph */
typedef struct {
    nb_fn f;
    void *user;
    int n_in;
    nb_tensor *v;
    nb_tensor **w;
} gg_data;

static nb_tensor *grad_projection(nb_ctx *ctx, nb_tensor *const *in, void *p) {
    gg_data *d = p;
    nb_tensor *y = d->f(ctx, in, d->user);
    if (!y) return NULL;
    nb_tensor *chk[64], *g[64];
    int nc = 0;
    for (int i = 0; i < d->n_in && nc < 64; i++)
        if (in[i]->requires_grad) chk[nc++] = in[i];
    if (nb_grad(ctx, 1, &y, &d->v, nc, chk, g, true) != NB_OK) return NULL;
    nb_tensor *s = NULL;
    for (int c = 0; c < nc; c++) {
        nb_tensor *t = nb_sum_all(ctx, nb_mul(ctx, g[c], d->w[c]));
        s = s ? nb_add(ctx, s, t) : t;
    }
    return s;
}

nb_status nb_gradgradcheck(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *in, void *user, const nb_gradcheck_opts *opts,
                           nb_gradcheck_report *rep) {
    if (!ctx || !f || n_in < 1 || !in) return nb_set_error(NB_ERR_NULL, "gradgradcheck: NULL argument");
    nb_gradcheck_opts o = opts ? *opts : NB_GRADCHECK_DEFAULTS;
    nb_mark outer = nb_ctx_mark(ctx);
    nb_tensor *y0 = f(ctx, in, user);
    if (!y0) {
        if (!ctx->status) nb__fail(ctx, NB_ERR_NULL, "gradgradcheck: the function returned NULL without setting an error");
        if (rep) snprintf(rep->message, sizeof rep->message, "gradgradcheck: the function failed: %s", nb_ctx_error(ctx));
        nb_ctx_release(ctx, outer);
        return ctx->status ? ctx->status : NB_ERR_NULL;
    }
    nb_rng rng = nb_rng_new(o.seed ^ 0x5851f42d4c957f2dull);
    gg_data d = {f, user, n_in, nb__new(ctx, NB_F64, y0->ndim, y0->shape), nb_ctx_alloc(ctx, 64 * sizeof(nb_tensor *))};
    if (!d.v || !d.w) return nb_ctx_release(ctx, outer), ctx->status;
    nb_rng_normal(&rng, d.v, 0.0, 1.0);
    int nc = 0;
    for (int i = 0; i < n_in && nc < 64; i++)
        if (in[i]->requires_grad) {
            d.w[nc] = nb__new(ctx, NB_F64, in[i]->ndim, in[i]->shape);
            if (!d.w[nc]) return nb_ctx_release(ctx, outer), ctx->status;
            nb_rng_normal(&rng, d.w[nc++], 0.0, 1.0);
        }
    o.n_proj = 1;  /* the projection is already a scalar */
    nb_gradcheck_report local;
    if (!rep) rep = &local;
    nb_status st = nb_gradcheck(ctx, grad_projection, n_in, in, &d, &o, rep);
    nb_ctx_release(ctx, outer);
    if (st != NB_OK && !strncmp(rep->message, "gradcheck: ", 11)) {
        /* the checked function is the gradient: say so, or a wrong second derivative reads as a
         * wrong first one */
        char m[sizeof rep->message];
        snprintf(m, sizeof m, "gradgradcheck (second derivatives, the gradient of <f, v> checked): %s", rep->message + 11);
        snprintf(rep->message, sizeof rep->message, "%s", m);
        if (st == NB_ERR_NUMERIC) nb_set_error(NB_ERR_NUMERIC, "%s", rep->message);
    }
    if (st == NB_OK) snprintf(rep->message, sizeof rep->message, "gradgradcheck: ok");
    return st;
}
