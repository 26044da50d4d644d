/* Functional autodiff (torch.autograd.functional) and per-sample gradients: nb_grad calls on a
 * function evaluated at stand-ins of its inputs, and ops — no engine changes. */
#include "../internal.h"

static nb_status failed(const nb_ctx *ctx) { return ctx->status != NB_OK ? ctx->status : NB_ERR_NULL; }

static void *arena_array(nb_ctx *ctx, int n) { return nb_ctx_alloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof(nb_tensor *)); }

/* ---- one evaluation of f ------------------------------------------------------------------- */
/* f evaluated at stand-ins x[i] of the inputs, which require grad: an identity view of the
 * input when create_graph and it requires grad (results stay connected to it), a detached view
 * otherwise. Grad mode is on until end(). */
typedef struct {
    nb_ctx *ctx;
    const char *fn;
    int n;
    nb_tensor **x;
    nb_tensor *y;
    bool prev;
} fcall;

static nb_status end(fcall *c, nb_status st) {
    if (c->ctx) nb_ctx_set_grad_enabled(c->ctx, c->prev);
    return st;
}

static nb_status begin(fcall *c, nb_ctx *ctx, const char *fn, nb_fn f, int n_in, nb_tensor *const *in, void *user,
                       const void *results, bool create_graph) {
    *c = (fcall){ctx, fn, n_in, NULL, NULL, false};
    if (!ctx) return nb_set_error(NB_ERR_NULL, "%s: context is NULL", fn);
    c->prev = nb_ctx_grad_enabled(ctx);
    if (ctx->status != NB_OK) return ctx->status;
    if (!f || !in || !results || n_in < 1)
        return nb__fail(ctx, NB_ERR_NULL, "%s: NULL function, inputs or results, or n_in %d < 1", fn, n_in), NB_ERR_NULL;
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) return nb__fail(ctx, NB_ERR_NULL, "%s: input %d is NULL", fn, i), NB_ERR_NULL;
        if (nb__stale(ctx, fn, in[i])) return NB_ERR_STATE;
        if (in[i]->dtype == NB_I64)
            return nb__fail(ctx, NB_ERR_DTYPE, "%s: input %d is i64; f must take f32 or f64 inputs", fn, i), NB_ERR_DTYPE;
    }
    if (!(c->x = arena_array(ctx, n_in))) return failed(ctx);
    nb_ctx_set_grad_enabled(ctx, true);
    for (int i = 0; i < n_in; i++) {
        nb_tensor *t = in[i];
        if (create_graph && t->requires_grad) c->x[i] = nb_reshape(ctx, t, t->ndim, t->shape);
        else if ((c->x[i] = nb_detach(ctx, t))) nb_requires_grad(c->x[i], true);
        if (!c->x[i]) return failed(ctx);
    }
    c->y = f(ctx, c->x, user);
    if (!c->y) return ctx->status != NB_OK ? ctx->status : (nb__fail(ctx, NB_ERR_NULL, "%s: f returned NULL", fn), NB_ERR_NULL);
    if (c->y->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: f returned an i64 tensor", fn), NB_ERR_DTYPE;
    return NB_OK;
}

/* f's value for the caller: connected to the inputs only with create_graph */
static nb_status give_output(fcall *c, nb_tensor **out, bool create_graph) {
    if (out && !(*out = create_graph ? c->y : nb_detach(c->ctx, c->y))) return failed(c->ctx);
    return NB_OK;
}

static nb_status need_scalar(fcall *c) {
    char s[128];
    if (c->y->numel == 1) return NB_OK;
    return nb__fail(c->ctx, NB_ERR_SHAPE, "%s: f returned %s; it must return one element", c->fn,
                    nb_shape_str(c->y, s, sizeof s)),
           NB_ERR_SHAPE;
}

/* dirs[i] = v[i], checked against like[i] (the output, or input i); v NULL means ones, allowed
 * when each like[i] has one element */
static nb_status directions(fcall *c, int n, nb_tensor *const *v, nb_tensor *const *like, bool output, nb_tensor **dirs) {
    nb_ctx *ctx = c->ctx;
    char a[128], b[128], vi[32], who[32];
    for (int i = 0; i < n; i++) {
        snprintf(vi, sizeof vi, output ? "v" : "v[%d]", i);
        snprintf(who, sizeof who, output ? "the output" : "input %d", i);
        if (!v) {
            if (like[i]->numel != 1)
                return nb__fail(ctx, NB_ERR_NULL, "%s: v is NULL but %s has shape %s (only one-element ones may omit it)", c->fn,
                                who, nb_shape_str(like[i], a, sizeof a)),
                       NB_ERR_NULL;
            if (!(dirs[i] = nb_ones_like(ctx, like[i]))) return failed(ctx);
            continue;
        }
        if (!v[i]) return nb__fail(ctx, NB_ERR_NULL, "%s: %s is NULL", c->fn, vi), NB_ERR_NULL;
        if (nb__stale(ctx, c->fn, v[i])) return NB_ERR_STATE;
        if (!nb_same_shape(v[i], like[i]) || v[i]->dtype != like[i]->dtype)
            return nb__fail(ctx, NB_ERR_SHAPE, "%s: %s %s %s does not match %s, %s %s", c->fn, vi, nb_dtype_name(v[i]->dtype),
                            nb_shape_str(v[i], a, sizeof a), who, nb_dtype_name(like[i]->dtype),
                            nb_shape_str(like[i], b, sizeof b)),
                   NB_ERR_SHAPE;
        dirs[i] = v[i];
    }
    return NB_OK;
}

/* grads[i] = d(sum_k <ys[k], vs[k]>)/d targets[i]; outputs that depend on no input are left out,
 * and a target nothing depends on gets zeros (torch's strict=False) */
static nb_status grads_of(nb_ctx *ctx, int n_out, nb_tensor *const *ys, nb_tensor *const *vs, int n_t,
                          nb_tensor *const *targets, nb_tensor **grads, bool create_graph) {
    nb_tensor **o = arena_array(ctx, n_out), **g = arena_array(ctx, n_out);
    if (!o || !g) return failed(ctx);
    int k = 0;
    for (int j = 0; j < n_out; j++)
        if (ys[j]->requires_grad) o[k] = ys[j], g[k++] = vs ? vs[j] : NULL;
    if (k) return nb_grad(ctx, k, o, g, n_t, targets, grads, create_graph);
    for (int i = 0; i < n_t; i++)
        if (!(grads[i] = nb_zeros_like(ctx, targets[i]))) return failed(ctx);
    return NB_OK;
}

/* jac[i] = d y / d x_i of shape (y's shape..., x_i's shape...): one backward per element of y */
static nb_status jacobian_of(fcall *c, nb_tensor *y, nb_tensor **jac, bool create_graph) {
    nb_ctx *ctx = c->ctx;
    const int64_t m = y->numel;
    for (int i = 0; i < c->n; i++)
        if (y->ndim + c->x[i]->ndim > NB_MAX_DIMS) {
            char a[128], b[128];
            return nb__fail(ctx, NB_ERR_SHAPE, "%s: the Jacobian of %s by input %d %s would have %d dims (at most %d)", c->fn,
                            nb_shape_str(y, a, sizeof a), i, nb_shape_str(c->x[i], b, sizeof b), y->ndim + c->x[i]->ndim,
                            NB_MAX_DIMS),
                   NB_ERR_SHAPE;
        }
    if (m > INT32_MAX)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: %lld output elements is too many for a dense Jacobian", c->fn, (long long)m),
               NB_ERR_SHAPE;
    nb_tensor **rows = nb_ctx_alloc(ctx, (size_t)(c->n * (m ? m : 1)) * sizeof *rows), **g = arena_array(ctx, c->n);
    if (!rows || !g) return failed(ctx);
    for (int64_t k = 0; k < m; k++) {
        nb_tensor *e = nb_zeros_like(ctx, y);
        if (!e) return failed(ctx);
        nb_set(e, k, 1.0);
        nb_status st = grads_of(ctx, 1, &y, &e, c->n, c->x, g, create_graph);
        if (st != NB_OK) return st;
        for (int i = 0; i < c->n; i++) rows[i * m + k] = g[i];
    }
    for (int i = 0; i < c->n; i++) {
        const nb_tensor *x = c->x[i];
        int64_t shape[NB_MAX_DIMS];
        memcpy(shape, y->shape, (size_t)y->ndim * sizeof *shape);
        memcpy(shape + y->ndim, x->shape, (size_t)x->ndim * sizeof *shape);
        const int nd = y->ndim + x->ndim;
        jac[i] = m ? nb_reshape(ctx, nb_stack(ctx, (int)m, rows + i * m, 0), nd, shape) : nb_zeros(ctx, x->dtype, nd, shape);
        if (!jac[i]) return failed(ctx);
    }
    return NB_OK;
}

/* ---- the functional forms ------------------------------------------------------------------- */
nb_status nb_vjp(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *inputs, void *user, nb_tensor *v, nb_tensor **out,
                 nb_tensor **vjps, bool create_graph) {
    fcall c;
    nb_status st = begin(&c, ctx, "vjp", f, n_in, inputs, user, vjps, create_graph);
    nb_tensor *dir;
    if (st == NB_OK) st = directions(&c, 1, v ? &v : NULL, &c.y, true, &dir);
    if (st == NB_OK) st = grads_of(ctx, 1, &c.y, &dir, n_in, c.x, vjps, create_graph);
    if (st == NB_OK) st = give_output(&c, out, create_graph);
    return end(&c, st);
}

nb_status nb_jvp(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *inputs, void *user, nb_tensor *const *v,
                 nb_tensor **out, nb_tensor **jvp, bool create_graph) {
    fcall c;
    nb_status st = begin(&c, ctx, "jvp", f, n_in, inputs, user, jvp, create_graph);
    if (st != NB_OK) return end(&c, st);
    nb_tensor **dirs = arena_array(ctx, n_in), **g = arena_array(ctx, n_in);
    /* g = J^T u for a dummy u (its value is irrelevant: g is linear in u), then J v = d<g, v>/du */
    nb_tensor *u = nb_zeros_like(ctx, c.y);
    if (!dirs || !g || !u) return end(&c, failed(ctx));
    nb_requires_grad(u, true);
    st = directions(&c, n_in, v, c.x, false, dirs);
    if (st == NB_OK) st = grads_of(ctx, 1, &c.y, &u, n_in, c.x, g, true);
    if (st == NB_OK) st = grads_of(ctx, n_in, g, dirs, 1, &u, jvp, create_graph);
    if (st == NB_OK) st = give_output(&c, out, create_graph);
    return end(&c, st);
}

nb_status nb_hvp(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *inputs, void *user, nb_tensor *const *v,
                 nb_tensor **out, nb_tensor **hvps, bool create_graph) {
    fcall c;
    nb_status st = begin(&c, ctx, "hvp", f, n_in, inputs, user, hvps, create_graph);
    if (st == NB_OK) st = need_scalar(&c);
    if (st != NB_OK) return end(&c, st);
    nb_tensor **dirs = arena_array(ctx, n_in), **g = arena_array(ctx, n_in);
    if (!dirs || !g) return end(&c, failed(ctx));
    st = directions(&c, n_in, v, c.x, false, dirs);
    if (st == NB_OK) st = grads_of(ctx, 1, &c.y, NULL, n_in, c.x, g, true);
    if (st == NB_OK) st = grads_of(ctx, n_in, g, dirs, n_in, c.x, hvps, create_graph);
    if (st == NB_OK) st = give_output(&c, out, create_graph);
    return end(&c, st);
}

nb_status nb_jacobian(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *inputs, void *user, nb_tensor **jac,
                      bool create_graph) {
    fcall c;
    nb_status st = begin(&c, ctx, "jacobian", f, n_in, inputs, user, jac, create_graph);
    if (st == NB_OK) st = jacobian_of(&c, c.y, jac, create_graph);
    return end(&c, st);
}

nb_status nb_hessian(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *inputs, void *user, nb_tensor **hess,
                     bool create_graph) {
    fcall c;
    nb_status st = begin(&c, ctx, "hessian", f, n_in, inputs, user, hess, create_graph);
    if (st == NB_OK) st = need_scalar(&c);
    if (st != NB_OK) return end(&c, st);
    nb_tensor **g = arena_array(ctx, n_in);
    if (!g) return end(&c, failed(ctx));
    st = grads_of(ctx, 1, &c.y, NULL, n_in, c.x, g, true);
    for (int i = 0; i < n_in && st == NB_OK; i++) st = jacobian_of(&c, g[i], hess + i * n_in, create_graph);
    return end(&c, st);
}

/* ---- per-sample gradients -------------------------------------------------------------------- */
static nb_status per_sample_args(nb_ctx *ctx, const char *fn, nb_tensor *x, nb_tensor *gy, nb_tensor **gw,
                                 nb_tensor **gb) {
    if (nb__null(ctx, fn, 2, x, gy)) return ctx ? failed(ctx) : NB_ERR_NULL;
    if (ctx->status != NB_OK) return ctx->status;
    if (!gw || !gb) return nb__fail(ctx, NB_ERR_NULL, "%s: NULL result pointer", fn), NB_ERR_NULL;
    if (x->dtype == NB_I64 || x->dtype != gy->dtype)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: x is %s and gy %s; both must be the same float dtype", fn,
                        nb_dtype_name(x->dtype), nb_dtype_name(gy->dtype)),
               NB_ERR_DTYPE;
    return NB_OK;
}

static nb_status both(nb_ctx *ctx, const nb_tensor *gw, const nb_tensor *gb) { return gw && gb ? NB_OK : failed(ctx); }

nb_status nb_linear_per_sample_grads(nb_ctx *ctx, nb_tensor *x, nb_tensor *gy, nb_tensor **gw, nb_tensor **gb) {
    static const char fn[] = "linear_per_sample_grads";
    nb_status st = per_sample_args(ctx, fn, x, gy, gw, gb);
    if (st != NB_OK) return st;
    bool ok = x->ndim >= 2 && gy->ndim == x->ndim;
    for (int d = 0; ok && d < x->ndim - 1; d++) ok = x->shape[d] == gy->shape[d];
    if (!ok) {
        char a[128], b[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: x %s and gy %s must be (N, ..., in) and (N, ..., out)", fn,
                        nb_shape_str(x, a, sizeof a), nb_shape_str(gy, b, sizeof b)),
               NB_ERR_SHAPE;
    }
    /* the middle axes (positions of a sequence) are summed: (N, T, out)^T (N, T, in) */
    const int64_t n = x->shape[0];
    int64_t t = 1; /* the middle sizes' product (a -1 is ambiguous when n or a width is 0) */
    for (int i = 1; i < x->ndim - 1; i++) t *= x->shape[i];
    nb_tensor *x3 = nb_reshape(ctx, x, NB_SHAPE(n, t, x->shape[x->ndim - 1]));
    nb_tensor *g3 = nb_reshape(ctx, gy, NB_SHAPE(n, t, gy->shape[gy->ndim - 1]));
    *gw = nb_matmul(ctx, nb_transpose(ctx, g3, 1, 2), x3);
    *gb = nb_sum(ctx, g3, 1, (int[]){1}, false);
    return both(ctx, *gw, *gb);
}

nb_status nb_conv2d_per_sample_grads(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, const nb_conv_opts *opts,
                                     nb_tensor *gy, nb_tensor **gw, nb_tensor **gb) {
    static const char fn[] = "conv2d_per_sample_grads";
    nb_status st = per_sample_args(ctx, fn, x, gy, gw, gb);
    if (st != NB_OK) return st;
    if (nb__null(ctx, fn, 1, w)) return failed(ctx);
    char sx[128], sw[128], sg[128];
    nb_shape_str(x, sx, sizeof sx), nb_shape_str(w, sw, sizeof sw), nb_shape_str(gy, sg, sizeof sg);
    const nb_conv_opts o = opts ? *opts : (nb_conv_opts){0};
    const int64_t G = o.groups ? o.groups : 1;
    if (x->ndim != 4 || w->ndim != 4 || gy->ndim != 4 || G < 1 || x->shape[1] != w->shape[1] * G || w->shape[0] % G)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: x %s, w %s (groups %lld) and gy %s must be (N, C, H, W), (O, C/groups, kh, kw) and (N, O, OH, OW)",
                        fn, sx, sw, (long long)G, sg),
               NB_ERR_SHAPE;
    /* conv2d's window: zero fields take the defaults, "same" pads half the dilated kernel */
    int64_t k[2] = {w->shape[2], w->shape[3]}, s[2], p[2], d[2];
    for (int a = 0; a < 2; a++) {
        s[a] = o.stride[a] ? o.stride[a] : 1;
        d[a] = o.dilation[a] ? o.dilation[a] : 1;
        p[a] = o.same ? d[a] * (k[a] - 1) / 2 : o.padding[a];
    }
    const nb_window2d win = {k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1]};
    int64_t oh, ow;
    if (!nb__window_out(ctx, fn, x, x->shape[2], x->shape[3], win, &oh, &ow)) return failed(ctx);
    const int64_t n = x->shape[0], O = w->shape[0];
    if (gy->shape[0] != n || gy->shape[1] != O || gy->shape[2] != oh || gy->shape[3] != ow)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: gy %s is not conv2d's output shape (%lld,%lld,%lld,%lld) for x %s, w %s", fn,
                        sg, (long long)n, (long long)O, (long long)oh, (long long)ow, sx, sw),
               NB_ERR_SHAPE;
    nb_tensor *cols = nb_unfold(ctx, x, win, 0.0); /* (N, C*kh*kw, OH*OW) */
    if (!cols) return failed(ctx);
    const int64_t K = cols->shape[1] / G, L = cols->shape[2];
    nb_tensor *g = nb_reshape(ctx, gy, NB_SHAPE(n, G, O / G, L));
    nb_tensor *c = nb_transpose(ctx, nb_reshape(ctx, cols, NB_SHAPE(n, G, K, L)), 2, 3);
    *gw = nb_reshape(ctx, nb_matmul(ctx, g, c), NB_SHAPE(n, O, w->shape[1], k[0], k[1]));
    *gb = nb_sum(ctx, gy, 2, (int[]){2, 3}, false);
    return both(ctx, *gw, *gb);
}

nb_status nb_per_sample_grads(nb_ctx *ctx, nb_tensor *loss, int n_layers, nb_per_sample_layer *layers) {
    static const char fn[] = "per_sample_grads";
    if (nb__null(ctx, fn, 1, loss)) return ctx ? failed(ctx) : NB_ERR_NULL;
    if (ctx->status != NB_OK) return ctx->status;
    if (n_layers < 1 || !layers) return nb__fail(ctx, NB_ERR_NULL, "%s: no layers", fn), NB_ERR_NULL;
    if (loss->numel != 1) {
        char s[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: loss %s must have one element (the sum of the samples' losses)", fn,
                        nb_shape_str(loss, s, sizeof s)),
               NB_ERR_SHAPE;
    }
    nb_tensor **ys = arena_array(ctx, n_layers), **gys = arena_array(ctx, n_layers);
    if (!ys || !gys) return failed(ctx);
    for (int l = 0; l < n_layers; l++) {
        const nb_per_sample_layer *p = &layers[l];
        if (!p->x || !p->y || !p->w || (unsigned)p->kind > NB_PER_SAMPLE_CONV2D)
            return nb__fail(ctx, NB_ERR_NULL, "%s: layer %d has a NULL x, y or w, or an unknown kind", fn, l), NB_ERR_NULL;
        ys[l] = p->y;
    }
    nb_status st = nb_grad(ctx, 1, &loss, NULL, n_layers, ys, gys, false);
    for (int l = 0; l < n_layers && st == NB_OK; l++) {
        nb_per_sample_layer *p = &layers[l];
        st = p->kind == NB_PER_SAMPLE_LINEAR ? nb_linear_per_sample_grads(ctx, p->x, gys[l], &p->grad_w, &p->grad_b)
                                             : nb_conv2d_per_sample_grads(ctx, p->x, p->w, &p->conv, gys[l], &p->grad_w, &p->grad_b);
    }
    return st;
}
