/* The autodiff engine (src/graph/autograd.c, ctx.c): accumulation, nb_grad, create_graph,
 * modes, hooks, custom ops, anomaly mode, threads, memory reuse and thread-count invariance. */
#include "common.h"

#include <omp.h>
#include <pthread.h>
#include <string.h>

TestSuite(autograd, .init = ctx_setup, .fini = ctx_teardown);

static nb_tensor *leaf(const double *v, int ndim, const int64_t *shape) {
    nb_tensor *t = test_from(ctx, v, ndim, shape);
    nb_requires_grad(t, true);
    return t;
}

/* ---- accumulation and nb_grad ---------------------------------------------------------------- */
Test(autograd, tensor_used_several_times_accumulates) {
    nb_tensor *x = leaf((double[]){1.5, -2.0, 0.5}, NB_SHAPE(3));
    /* y = sum(x*x + x) + sum(x)*x[0]  ->  dy/dx_i = 2x_i + 1 + x_0 + [i==0] sum(x) */
    nb_tensor *s = nb_sum_all(ctx, x);
    nb_tensor *y = nb_add(ctx, nb_sum_all(ctx, nb_add(ctx, nb_mul(ctx, x, x), x)),
                          nb_mul(ctx, s, nb_reshape(ctx, nb_slice(ctx, x, 0, 0, 1, 1), 0, NULL)));
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(x->grad, (double[]){2 * 1.5 + 1 + 1.5 + 0.0, 2 * -2.0 + 1 + 1.5, 2 * 0.5 + 1 + 1.5}, 3, 1e-15);
    /* a second backward over the kept graph adds the same again */
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(x->grad, (double[]){2 * 5.5, 2 * -1.5, 2 * 3.5}, 3, 1e-15);
    cr_assert_eq(nb_zero_grad(x), NB_OK);
    assert_values(x->grad, (double[]){0, 0, 0}, 3, 0);
}

Test(autograd, grad_function_leaves_dot_grad_alone) {
    nb_tensor *x = leaf((double[]){1, 2}, NB_SHAPE(2)), *unused = leaf((double[]){7, 8, 9}, NB_SHAPE(3));
    nb_tensor *w = leaf((double[]){3, 4}, NB_SHAPE(2));
    nb_tensor *y = nb_sum_all(ctx, nb_mul(ctx, x, w));
    nb_tensor *g[3];
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 3, (nb_tensor *[]){x, unused, w}, g, false), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(g[0], (double[]){3, 4}, 2, 0);
    assert_values(g[1], (double[]){0, 0, 0}, 3, 0);
    assert_values(g[2], (double[]){1, 2}, 2, 0);
    cr_assert(x->grad == NULL && unused->grad == NULL && w->grad == NULL);
    /* an existing .grad is untouched too */
    nb_backward(ctx, y, NULL);
    assert_values(x->grad, (double[]){3, 4}, 2, 0);
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, g, false), NB_OK);
    assert_values(x->grad, (double[]){3, 4}, 2, 0);
    /* several outputs with explicit output gradients */
    nb_tensor *y2 = nb_mul(ctx, x, x);
    nb_tensor *go = test_from(ctx, (double[]){10, 100}, NB_SHAPE(2));
    cr_assert_eq(nb_grad(ctx, 2, (nb_tensor *[]){y, y2}, (nb_tensor *[]){NULL, go}, 1, &x, g, false), NB_OK, "%s",
                 nb_ctx_error(ctx));
    assert_values(g[0], (double[]){3 + 10 * 2 * 1, 4 + 100 * 2 * 2}, 2, 0);
}

/* ---- higher order ----------------------------------------------------------------------------- */
Test(autograd, second_derivatives_closed_forms) {
    static const double xv[] = {-1.3, -0.2, 0.4, 1.7};
    nb_tensor *x = leaf(xv, NB_SHAPE(4));
    nb_tensor *g, *h;
    /* x^3: 3x^2, 6x */
    nb_tensor *y = nb_sum_all(ctx, nb_mul(ctx, x, nb_mul(ctx, x, x)));
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, &g, true), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert(g->requires_grad);
    nb_tensor *gs = nb_sum_all(ctx, g);
    cr_assert_eq(nb_grad(ctx, 1, &gs, NULL, 1, &x, &h, true), NB_OK, "%s", nb_ctx_error(ctx));
    for (int i = 0; i < 4; i++) {
        assert_close(nb_get(g, i), 3 * xv[i] * xv[i], 1e-14, 1e-14);
        assert_close(nb_get(h, i), 6 * xv[i], 1e-14, 1e-14);
    }
    /* third derivative of x^3 is 6 */
    nb_tensor *hs = nb_sum_all(ctx, h), *t3;
    cr_assert_eq(nb_grad(ctx, 1, &hs, NULL, 1, &x, &t3, false), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(t3, (double[]){6, 6, 6, 6}, 4, 1e-14);
    /* tanh: 1 - t^2, -2 t (1 - t^2) */
    y = nb_sum_all(ctx, nb_tanh(ctx, x));
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, &g, true), NB_OK);
    gs = nb_sum_all(ctx, g);
    cr_assert_eq(nb_grad(ctx, 1, &gs, NULL, 1, &x, &h, false), NB_OK);
    for (int i = 0; i < 4; i++) {
        double t = tanh(xv[i]);
        assert_close(nb_get(g, i), 1 - t * t, 1e-14, 1e-14);
        assert_close(nb_get(h, i), -2 * t * (1 - t * t), 1e-14, 1e-14);
    }
}

/* loss of a 3-4-1 tanh MLP on fixed data, parameters p[0..3) */
static nb_tensor *mlp_loss(nb_ctx *c, nb_tensor *const *p, nb_tensor *x, nb_tensor *t) {
    nb_tensor *h = nb_tanh(c, nb_linear(c, x, p[0], p[1]));
    return nb_mse_loss(c, nb_linear(c, h, p[2], NULL), t, NB_REDUCE_MEAN);
}

Test(autograd, hessian_vector_product_matches_finite_differences) {
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(5, 3)), *t = nb_randn(ctx, NB_F64, NB_SHAPE(5, 1));
    nb_tensor *p[3] = {rand_leaf(ctx, NB_SHAPE(4, 3)), rand_leaf(ctx, NB_SHAPE(4)), rand_leaf(ctx, NB_SHAPE(1, 4))};
    nb_tensor *v[3] = {nb_randn(ctx, NB_F64, NB_SHAPE(4, 3)), nb_randn(ctx, NB_F64, NB_SHAPE(4)),
                       nb_randn(ctx, NB_F64, NB_SHAPE(1, 4))};
    nb_tensor *g[3], *hv[3];
    nb_tensor *loss = mlp_loss(ctx, p, x, t);
    cr_assert_eq(nb_grad(ctx, 1, &loss, NULL, 3, p, g, true), NB_OK, "%s", nb_ctx_error(ctx));
    nb_tensor *gv = NULL;
    for (int i = 0; i < 3; i++) {
        nb_tensor *d = nb_sum_all(ctx, nb_mul(ctx, g[i], v[i]));
        gv = gv ? nb_add(ctx, gv, d) : d;
    }
    cr_assert_eq(nb_grad(ctx, 1, &gv, NULL, 3, p, hv, false), NB_OK, "%s", nb_ctx_error(ctx));
    /* central differences of the gradient along v */
    const double eps = 1e-5;
    nb_tensor *gp[3], *gm[3];
    for (int sgn = 1; sgn >= -1; sgn -= 2) {
        for (int i = 0; i < 3; i++)
            for (int64_t e = 0; e < p[i]->numel; e++) nb_set(p[i], e, nb_get(p[i], e) + sgn * eps * nb_get(v[i], e));
        nb_tensor *l = mlp_loss(ctx, p, x, t);
        cr_assert_eq(nb_grad(ctx, 1, &l, NULL, 3, p, sgn > 0 ? gp : gm, false), NB_OK);
        for (int i = 0; i < 3; i++)
            for (int64_t e = 0; e < p[i]->numel; e++) nb_set(p[i], e, nb_get(p[i], e) - sgn * eps * nb_get(v[i], e));
    }
    double maxabs = 0;
    for (int i = 0; i < 3; i++)
        for (int64_t e = 0; e < p[i]->numel; e++) {
            double fd = (nb_get(gp[i], e) - nb_get(gm[i], e)) / (2 * eps);
            assert_close(nb_get(hv[i], e), fd, 1e-7, 1e-5, "(param %d element %lld)", i, (long long)e);
            maxabs = fmax(maxabs, fabs(fd));
        }
    cr_assert(maxabs > 1e-3, "the Hessian-vector product should not be trivially zero");
}

/* ---- modes ------------------------------------------------------------------------------------ */
Test(autograd, no_grad_and_detach) {
    nb_tensor *x = leaf((double[]){1, 2, 3}, NB_SHAPE(3));
    int64_t n0 = nb_ctx_nodes(ctx);
    nb_tensor *y = NULL;
    NB_NO_GRAD(ctx) {
        cr_assert(!nb_ctx_grad_enabled(ctx));
        y = nb_exp(ctx, nb_mul(ctx, x, x));
    }
    cr_assert(nb_ctx_grad_enabled(ctx));
    cr_assert(!y->requires_grad && y->node == NULL);
    cr_assert_eq(nb_ctx_nodes(ctx), n0);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, y), NULL), NB_ERR_STATE);
    nb_ctx_clear_error(ctx);
    /* nested scopes restore the outer mode */
    nb_ctx_set_grad_enabled(ctx, false);
    NB_NO_GRAD(ctx) {}
    cr_assert(!nb_ctx_grad_enabled(ctx));
    nb_ctx_set_grad_enabled(ctx, true);

    nb_tensor *d = nb_detach(ctx, nb_mul(ctx, x, x));  /* a constant x^2 sharing data */
    cr_assert(!d->requires_grad && !d->node);
    nb_tensor *z = nb_sum_all(ctx, nb_mul(ctx, d, x));  /* dz/dx = x^2, not 3x^2 */
    cr_assert_eq(nb_backward(ctx, z, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(x->grad, (double[]){1, 4, 9}, 3, 0);
    nb_tensor *dx = nb_detach(ctx, x);
    cr_assert(dx->data == x->data && !dx->requires_grad);

    cr_assert_eq(nb_requires_grad(z, true), NB_ERR_STATE);
    cr_assert(strstr(nb_last_error(), "leaf") && strstr(nb_last_error(), "sum"), "%s", nb_last_error());
    cr_assert_eq(nb_requires_grad(nb_arange(ctx, NB_I64, 0, 3, 1), true), NB_ERR_DTYPE);
}

/* ---- hooks ------------------------------------------------------------------------------------ */
typedef struct {
    int calls;
    double seen[4];
    double scale;  /* 0: observe only; otherwise replace the gradient by scale * gradient */
} hook_state;

static nb_tensor *hook_fn(nb_ctx *c, nb_tensor *g, void *user) {
    hook_state *h = user;
    h->calls++;
    for (int64_t i = 0; i < g->numel && i < 4; i++) h->seen[i] = nb_get(g, i);
    return h->scale != 0 ? nb_mul_scalar(c, g, h->scale) : g;
}

Test(autograd, hooks_on_leaves_and_intermediates) {
    nb_tensor *x = leaf((double[]){1, 2}, NB_SHAPE(2));
    hook_state hx = {0}, hm = {0};
    cr_assert_eq(nb_add_hook(ctx, x, hook_fn, &hx), NB_OK);
    nb_tensor *m = nb_mul(ctx, x, x);  /* used twice below: hook still called once, on the total */
    cr_assert_eq(nb_add_hook(ctx, m, hook_fn, &hm), NB_OK);
    nb_tensor *y = nb_add(ctx, nb_sum_all(ctx, nb_mul_scalar(ctx, m, 3)), nb_sum_all(ctx, m));  /* dy/dm = 4 */
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(hm.calls, 1);
    cr_assert(hm.seen[0] == 4 && hm.seen[1] == 4);
    cr_assert_eq(hx.calls, 1);
    cr_assert(hx.seen[0] == 8 && hx.seen[1] == 16);
    assert_values(x->grad, (double[]){8, 16}, 2, 0);

    /* replacements: the intermediate's gradient doubled, the leaf's scaled by 10 */
    hm.scale = 2, hx.scale = 10;
    nb_zero_grad(x);
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert(hm.calls == 2 && hx.calls == 2);
    cr_assert(hx.seen[0] == 16 && hx.seen[1] == 32);  /* after the intermediate's replacement */
    assert_values(x->grad, (double[]){160, 320}, 2, 0);
    /* nb_grad runs them too */
    nb_tensor *g;
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, &g, false), NB_OK);
    assert_values(g, (double[]){160, 320}, 2, 0);
    cr_assert(hm.calls == 3 && hx.calls == 3);
    /* cleared hooks are not called */
    nb_clear_hooks(x);
    nb_clear_hooks(m);
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, &g, false), NB_OK);
    assert_values(g, (double[]){8, 16}, 2, 0);
    cr_assert(hm.calls == 3 && hx.calls == 3);
}

Test(autograd, grad_wrt_an_intermediate_returns_its_hooked_gradient) {
    nb_tensor *x = leaf((double[]){1, 2}, NB_SHAPE(2));
    nb_tensor *m = nb_mul(ctx, x, x);
    hook_state hm = {.scale = 3};
    cr_assert_eq(nb_add_hook(ctx, m, hook_fn, &hm), NB_OK);
    nb_tensor *y = nb_sum_all(ctx, nb_mul_scalar(ctx, m, 2)); /* dy/dm = 2, hooked: 6 */
    nb_tensor *g;
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &m, &g, false), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(g, (double[]){6, 6}, 2, 0);
    cr_assert_eq(hm.calls, 1);
}

Test(autograd, mean_of_an_empty_axis_is_nan) {
    nb_tensor *e = nb_zeros(ctx, NB_F64, NB_SHAPE(0, 3));
    nb_tensor *m = nb_mean(ctx, e, 1, (int[]){0}, false);
    cr_assert_not_null(m, "%s", nb_ctx_error(ctx));
    cr_assert_eq(m->numel, 3);
    cr_assert(isnan(nb_get(m, 0)));
}

static nb_tensor *bad_hook(nb_ctx *c, nb_tensor *g, void *user) { return nb_zeros(c, NB_F64, NB_SHAPE(5)); }

Test(autograd, hook_returning_wrong_shape_fails) {
    nb_tensor *x = leaf((double[]){1, 2}, NB_SHAPE(2));
    nb_add_hook(ctx, x, bad_hook, NULL);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, x), NULL), NB_ERR_SHAPE);
    cr_assert(strstr(nb_ctx_error(ctx), "hook") && strstr(nb_ctx_error(ctx), "(5)"), "%s", nb_ctx_error(ctx));
}

Test(autograd, hooks_on_persistent_parameters_are_freed) {
    nb_params *ps = nb_params_new();
    nb_tensor *w = nb_params_add(ps, "w", NB_SHAPE(2));
    nb_fill(w, 3.0);
    hook_state h = {0};
    nb_add_hook(ctx, w, hook_fn, &h);
    nb_add_hook(ctx, w, hook_fn, &h);  /* two hooks chain */
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, nb_mul(ctx, w, w)), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(h.calls, 2);
    assert_values(w->grad, (double[]){6, 6}, 2, 0);
    nb_params_free(ps);  /* frees the hooks (checked by the sanitizer build) */
}

/* ---- custom ops ------------------------------------------------------------------------------- */
/* cube(x) = x^3 with its own forward loop and a backward made of ops (so it is twice
 * differentiable), the way torch.autograd.Function is used */
static nb_status cube_bw(nb_ctx *c, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_mul(c, g, nb_mul_scalar(c, nb_mul(c, n->in[0], n->in[0]), 3.0));
    return NB_OK;
}
static const nb_op OP_CUBE = {"cube", cube_bw, NB_DIFFERENTIABLE};

static nb_tensor *my_cube(nb_ctx *c, nb_tensor *x) {
    if (!x) return NULL;
    nb_tensor *out = nb_empty(c, NB_F64, x->ndim, x->shape);
    if (!out) return NULL;
    double *o = out->data;
    for (int64_t i = 0; i < x->numel; i++) {
        double v = nb_get(x, i);  /* any strides */
        o[i] = v * v * v;
    }
    if (!nb_record(c, &OP_CUBE, out, 1, &x) && nb_ctx_status(c) != NB_OK) return NULL;
    return out;
}

/* square with a fused, non-differentiable backward kernel */
static nb_status fused_square_bw(nb_ctx *c, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *r = nb_empty(c, NB_F64, g->ndim, g->shape);
    if (!r) return NB_ERR_NOMEM;
    for (int64_t i = 0; i < r->numel; i++) ((double *)r->data)[i] = 2 * nb_get(n->in[0], i) * nb_get(g, i);
    gin[0] = r;
    return NB_OK;
}
static const nb_op OP_FUSED_SQUARE = {"fused_square", fused_square_bw, NB_ONCE_DIFFERENTIABLE};

static nb_tensor *fused_square(nb_ctx *c, nb_tensor *x) {
    nb_tensor *out = nb_empty(c, NB_F64, x->ndim, x->shape);
    for (int64_t i = 0; i < x->numel; i++) ((double *)out->data)[i] = nb_get(x, i) * nb_get(x, i);
    nb_record(c, &OP_FUSED_SQUARE, out, 1, &x);
    return out;
}

static nb_tensor *cube_f(nb_ctx *c, nb_tensor *const *in, void *u) { return my_cube(c, nb_mul(c, in[0], in[1])); }
static nb_tensor *square_f(nb_ctx *c, nb_tensor *const *in, void *u) { return fused_square(c, nb_tanh(c, in[0])); }

Test(autograd, custom_op_passes_gradcheck_and_gradgradcheck) {
    nb_tensor *in[2] = {test_leaf(ctx, NB_SHAPE(3, 4), LAYOUT_T, DOM_ANY), test_leaf(ctx, NB_SHAPE(4), LAYOUT_SLICE, DOM_ANY)};
    check_grads_named(cube_f, 2, in, NULL, true, "cube");
    nb_tensor *y = my_cube(ctx, in[0]);
    cr_assert(y->node && y->node->op == &OP_CUBE && y->requires_grad);
    for (int i = 0; i < 12; i++) assert_close(nb_get(y, i), pow(nb_get(in[0], i), 3), 1e-15, 1e-15);
    /* no input requires grad: nothing recorded, no error */
    nb_tensor *c = my_cube(ctx, nb_detach(ctx, in[0]));
    cr_assert(c && !c->node && nb_ctx_status(ctx) == NB_OK);
}

Test(autograd, once_differentiable_op_rejects_create_graph) {
    nb_tensor *x = test_leaf(ctx, NB_SHAPE(2, 3), LAYOUT_CONTIG, DOM_ANY);
    nb_gradcheck_report rep;
    cr_assert_eq(nb_gradcheck(ctx, square_f, 1, &x, NULL, NULL, &rep), NB_OK, "%s", rep.message);
    nb_tensor *y = nb_sum_all(ctx, square_f(ctx, &x, NULL)), *g;
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, &g, false), NB_OK);
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, &g, true), NB_ERR_UNSUPPORTED);
    cr_assert(strstr(nb_ctx_error(ctx), "fused_square") && strstr(nb_ctx_error(ctx), "once-differentiable"), "%s",
              nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_eq(nb_gradgradcheck(ctx, square_f, 1, &x, NULL, NULL, &rep), NB_ERR_UNSUPPORTED);
}

/* ---- anomaly mode ----------------------------------------------------------------------------- */
Test(autograd, anomaly_names_op_and_call_site_forward) {
    nb_ctx_set_anomaly(ctx, true);
    nb_tensor *x = leaf((double[]){1, -1}, NB_SHAPE(2));
    nb_tensor *ok = nb_exp(ctx, x);
    cr_assert_not_null(ok);
    const int line = __LINE__ + 1;
    nb_tensor *y = nb_log(ctx, x);
    cr_assert_null(y);
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_NUMERIC);
    char site[64];
    snprintf(site, sizeof site, "test_autograd.c:%d", line);
    cr_assert(strstr(nb_ctx_error(ctx), "log") && strstr(nb_ctx_error(ctx), site), "%s (want %s)", nb_ctx_error(ctx), site);
    /* the first error is kept by what follows */
    cr_assert_null(nb_sum_all(ctx, nb_mul(ctx, y, x)));
    cr_assert(strstr(nb_ctx_error(ctx), site));
    /* without anomaly mode NaN flows silently */
    nb_ctx_reset(ctx);
    nb_ctx_set_anomaly(ctx, false);
    x = leaf((double[]){1, -1}, NB_SHAPE(2));
    cr_assert(isnan(nb_get(nb_log(ctx, x), 1)));
}

Test(autograd, anomaly_names_op_and_call_site_backward) {
    nb_ctx_set_anomaly(ctx, true);
    nb_tensor *x = leaf((double[]){0, 4}, NB_SHAPE(2));
    const int line = __LINE__ + 1;
    nb_tensor *r = nb_sqrt(ctx, x);  /* finite forward, infinite gradient at 0 */
    nb_tensor *y = nb_sum_all(ctx, nb_mul_scalar(ctx, r, 3.0));
    cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_ERR_NUMERIC);
    char site[64];
    snprintf(site, sizeof site, "test_autograd.c:%d", line);
    cr_assert(strstr(nb_ctx_error(ctx), "backward of sqrt") && strstr(nb_ctx_error(ctx), site), "%s (want %s)",
              nb_ctx_error(ctx), site);
    cr_assert(x->grad == NULL || isfinite(nb_get(x->grad, 1)));
}

/* ---- threads, memory, determinism ------------------------------------------------------------ */
#define TRAIN_STEPS 15

/* a small regression MLP trained by plain SGD in its own context; returns the final weights */
static void train(uint64_t seed, float *out, uint64_t *mallocs_after_warmup, uint64_t *mallocs_end) {
    nb_ctx *c = nb_ctx_new();
    nb_ctx_seed(c, seed);
    nb_params *ps = nb_params_new();
    nb_tensor *w1 = nb_params_add(ps, "fc1.weight", NB_SHAPE(16, 8)), *b1 = nb_params_add(ps, "fc1.bias", NB_SHAPE(16));
    nb_tensor *w2 = nb_params_add(ps, "fc2.weight", NB_SHAPE(1, 16));
    nb_rng r = nb_rng_new(seed);
    for (int i = 0; i < ps->n; i++) nb_rng_normal(&r, ps->p[i], 0.0, 0.3);
    for (int step = 0; step < TRAIN_STEPS; step++) {
        if (step == 3 && mallocs_after_warmup) *mallocs_after_warmup = nb_ctx_mallocs(c);
        nb_tensor *x = nb_randn(c, NB_F32, NB_SHAPE(32, 8));
        nb_tensor *t = nb_sum(c, x, 1, (int[]){1}, true);
        nb_tensor *h = nb_tanh(c, nb_linear(c, x, w1, b1));
        nb_tensor *loss = nb_mse_loss(c, nb_linear(c, h, w2, NULL), t, NB_REDUCE_MEAN);
        nb_params_zero_grad(ps);
        if (nb_backward(c, loss, NULL) != NB_OK) break;
        for (int64_t i = 0; i < ps->total; i++) ps->flat[i] -= 0.05f * ps->grad_flat[i];
        nb_ctx_reset(c);
    }
    if (mallocs_end) *mallocs_end = nb_ctx_mallocs(c);
    memcpy(out, ps->flat, (size_t)ps->total * sizeof(float));
    nb_params_free(ps);
    nb_ctx_free(c);
}

#define NW (16 * 8 + 16 + 16 + 64)
typedef struct {
    uint64_t seed;
    float w[NW];
} train_job;
static void *train_thread(void *p) {
    train_job *j = p;
    train(j->seed, j->w, NULL, NULL);
    return NULL;
}

Test(autograd, independent_contexts_on_two_threads_match_serial) {
    train_job par[2] = {{11, {0}}, {22, {0}}}, ser[2] = {{11, {0}}, {22, {0}}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&th[i], NULL, train_thread, &par[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) train_thread(&ser[i]);
    for (int i = 0; i < 2; i++) cr_assert_eq(memcmp(par[i].w, ser[i].w, sizeof par[i].w), 0, "thread %d differs", i);
    cr_assert_neq(memcmp(par[0].w, par[1].w, sizeof par[0].w), 0);
}

Test(autograd, steady_training_loop_makes_no_malloc) {
    float w[NW];
    uint64_t warm = 0, end = 0;
    train(5, w, &warm, &end);
    cr_assert(warm > 0);
    cr_assert_eq(end, warm, "mallocs grew from %llu to %llu after warm-up", (unsigned long long)warm, (unsigned long long)end);
}

Test(autograd, mark_and_release) {
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(64));
    size_t used0 = nb_ctx_bytes_used(ctx);
    int64_t nodes0 = nb_ctx_nodes(ctx);
    nb_mark m = nb_ctx_mark(ctx);
    nb_tensor *a = nb_exp(ctx, nb_mul(ctx, x, x));
    cr_assert(nb_ctx_bytes_used(ctx) > used0 && nb_ctx_nodes(ctx) == nodes0 + 2);
    nb_ctx_release(ctx, m);
    cr_assert_eq(nb_ctx_bytes_used(ctx), used0);
    cr_assert_eq(nb_ctx_nodes(ctx), nodes0);
    nb_tensor *b = nb_exp(ctx, nb_mul(ctx, x, x));
    cr_assert_eq(a, b, "released memory is reused");
    /* a release across a chunk boundary: allocate more than the first chunk holds */
    size_t used1 = nb_ctx_bytes_used(ctx);
    m = nb_ctx_mark(ctx);
    cr_assert_not_null(nb_zeros(ctx, NB_F64, NB_SHAPE(400000)));
    cr_assert(nb_ctx_bytes_used(ctx) > used1 + 3200000);
    nb_ctx_release(ctx, m);
    cr_assert_eq(nb_ctx_bytes_used(ctx), used1);
    cr_assert_eq(nb_ctx_nodes(ctx), nodes0 + 2);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, b), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    for (int i = 0; i < 64; i++) {
        double v = nb_get(x, i);
        assert_close(nb_get(x->grad, i), 2 * v * exp(v * v), 1e-12, 1e-12);
    }
}

/* thread-count independence: tests/test_determinism.c, under every BLIS kernel set */

Test(autograd, long_lived_leaf_gets_long_lived_grad) {
    nb_tensor *w = nb_tensor_from(NB_F64, NB_SHAPE(3), (double[]){1, 2, 3});
    cr_assert_not_null(w);
    nb_requires_grad(w, true);
    hook_state h = {0};
    nb_add_hook(ctx, w, hook_fn, &h);
    for (int step = 0; step < 2; step++) {
        cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, nb_mul(ctx, w, w)), NULL), NB_OK, "%s", nb_ctx_error(ctx));
        nb_ctx_reset(ctx);  /* .grad survives the reset */
    }
    cr_assert(w->grad && w->grad->persistent && h.calls == 2);
    assert_values(w->grad, (double[]){4, 8, 12}, 3, 0);
    nb_tensor *c = nb_tensor_clone(nb_transpose(ctx, nb_reshape(ctx, nb_arange(ctx, NB_F64, 0, 6, 1), NB_SHAPE(2, 3)), 0, 1));
    assert_values(c, (double[]){0, 3, 1, 4, 2, 5}, 6, 0);
    nb_tensor_free(c);
    nb_tensor_free(w);  /* with its .grad and hooks (checked by the sanitizer build) */
}

/* ---- the custom-op API cannot crash -------------------------------------------------------------- */
/* a user's op that refuses an input with its own message on the context */
static nb_tensor *picky_op(nb_ctx *c, nb_tensor *x) {
    if (x->ndim != 2) {
        char s[64];
        return nb_ctx_fail(c, NB_ERR_SHAPE, "picky: x %s must be 2-D", nb_shape_str(x, s, sizeof s));
    }
    return nb_mul_scalar(c, x, 2.0);
}

Test(autograd, custom_op_fails_the_context_with_its_message) {
    nb_tensor *x = test_leaf(ctx, NB_SHAPE(3), LAYOUT_CONTIG, DOM_ANY);
    cr_assert_null(picky_op(ctx, x));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_SHAPE);
    cr_assert_str_eq(nb_ctx_error(ctx), "picky: x (3) must be 2-D");
    cr_assert_str_eq(nb_last_error(), "picky: x (3) must be 2-D");
    /* the next op given the NULL keeps the first error */
    cr_assert_null(nb_sum_all(ctx, picky_op(ctx, x)));
    cr_assert_str_eq(nb_ctx_error(ctx), "picky: x (3) must be 2-D");
    /* failing with NB_OK is still a failure; a NULL context only sets the thread-local error */
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_ctx_fail(ctx, NB_OK, "odd"));
    cr_assert_neq(nb_ctx_status(ctx), NB_OK);
    cr_assert_null(nb_ctx_fail(NULL, NB_ERR_VALUE, "no context %d", 7));
    cr_assert_str_eq(nb_last_error(), "no context 7");
}

static const nb_op OP_NO_BACKWARD = {"forgot_backward", NULL, NB_DIFFERENTIABLE};
static const nb_op OP_ARGSORTISH = {"argsortish", NULL, NB_NOT_DIFFERENTIABLE};

Test(autograd, record_refuses_a_missing_backward) {
    nb_tensor *x = test_leaf(ctx, NB_SHAPE(3), LAYOUT_CONTIG, DOM_ANY);
    nb_tensor *out = nb_zeros_like(ctx, x);
    cr_assert_null(nb_record(ctx, &OP_NO_BACKWARD, out, 1, &x));
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_STATE);
    cr_assert(strstr(nb_ctx_error(ctx), "forgot_backward") && strstr(nb_ctx_error(ctx), "NB_NOT_DIFFERENTIABLE"), "%s",
              nb_ctx_error(ctx));
    cr_assert(!out->requires_grad && !out->node, "nothing was recorded");
}

Test(autograd, backward_through_a_non_differentiable_node_is_an_error) {
    nb_tensor *x = test_leaf(ctx, NB_SHAPE(3), LAYOUT_CONTIG, DOM_ANY);
    nb_tensor *out = nb_zeros_like(ctx, x);
    cr_assert_not_null(nb_record(ctx, &OP_ARGSORTISH, out, 1, &x), "%s", nb_ctx_error(ctx));
    nb_tensor *loss = nb_sum_all(ctx, nb_mul(ctx, out, x)); /* x also reaches the loss directly */
    cr_assert_eq(nb_backward(ctx, loss, NULL), NB_ERR_UNSUPPORTED);
    cr_assert(strstr(nb_ctx_error(ctx), "argsortish") && strstr(nb_ctx_error(ctx), "not differentiable"), "%s",
              nb_ctx_error(ctx));
    /* the context works again after clearing */
    nb_ctx_clear_error(ctx);
    nb_tensor *y = nb_sum_all(ctx, nb_mul(ctx, x, x)), *g;
    cr_assert_eq(nb_grad(ctx, 1, &y, NULL, 1, &x, &g, false), NB_OK, "%s", nb_ctx_error(ctx));
    for (int i = 0; i < 3; i++) assert_close(nb_get(g, i), 2 * nb_get(x, i), 1e-14, 1e-14);
}

Test(autograd, nan_propagates_through_activations_as_in_pytorch) {
    const double nan = NAN;
    nb_tensor *x = test_from(ctx, (double[]){nan, -1, 2}, NB_SHAPE(3));
    nb_tensor *outs[] = {nb_relu(ctx, x), nb_leaky_relu(ctx, x, 0.1), nb_hardtanh(ctx, x, -1, 1), nb_clamp(ctx, x, 0, 1),
                         nb_elu(ctx, x, 1), nb_silu(ctx, x), nb_gelu(ctx, x), nb_softplus(ctx, x), nb_hardswish(ctx, x),
                         nb_maximum(ctx, x, nb_zeros_like(ctx, x)), nb_minimum(ctx, nb_zeros_like(ctx, x), x)};
    for (size_t k = 0; k < sizeof outs / sizeof *outs; k++) {
        cr_assert_not_null(outs[k], "%s", nb_ctx_error(ctx));
        cr_assert(isnan(nb_get(outs[k], 0)), "output %zu: NaN in, %g out", k, nb_get(outs[k], 0));
        cr_assert(!isnan(nb_get(outs[k], 1)) && !isnan(nb_get(outs[k], 2)), "output %zu", k);
    }
}

Test(autograd, context_settings_under_old_and_new_names) {
    cr_assert(nb_ctx_is_train(ctx) && nb_ctx_grad_enabled(ctx));
    nb_set_train(ctx, false); /* the names before 0.1 still work */
    cr_assert(!nb_ctx_is_train(ctx) && !nb_is_train(ctx));
    cr_assert(nb_set_grad_enabled(ctx, false));
    cr_assert(!nb_ctx_set_grad_enabled(ctx, true));
    cr_assert(nb_grad_enabled(ctx));
    nb_set_anomaly(ctx, true);
    nb_ctx_set_anomaly(ctx, false);
    /* NULL-safe: setters do nothing and say so, getters say false */
    nb_ctx_set_train(NULL, true);
    cr_assert(strstr(nb_last_error(), "ctx_set_train: context is NULL"), "%s", nb_last_error());
    cr_assert(!nb_ctx_is_train(NULL) && !nb_ctx_grad_enabled(NULL) && !nb_ctx_set_grad_enabled(NULL, true));
    nb_ctx_set_anomaly(NULL, true);
}

Test(autograd, backward_of_several_outputs_is_the_sum_of_their_backwards) {
    nb_tensor *x = test_leaf(ctx, NB_SHAPE(3, 4), LAYOUT_T, DOM_ANY), *w = test_leaf(ctx, NB_SHAPE(4), LAYOUT_CONTIG, DOM_ANY);
    nb_tensor *h = nb_tanh(ctx, nb_mul(ctx, x, w)); /* shared by both outputs */
    nb_tensor *y1 = nb_sum_all(ctx, nb_exp(ctx, h)), *y2 = nb_sum(ctx, nb_mul(ctx, h, h), 1, (int[]){0}, false);
    nb_tensor *g2 = nb_randn(ctx, NB_F64, NB_SHAPE(4));
    nb_tensor *outs[2] = {y1, y2}, *gouts[2] = {NULL, g2};
    cr_assert_eq(nb_backward_many(ctx, 2, outs, gouts), NB_OK, "%s", nb_ctx_error(ctx));
    /* against nb_grad of <y1, 1> + <y2, g2> */
    nb_tensor *want[2], *in[2] = {x, w};
    nb_tensor *total = nb_add(ctx, y1, nb_sum_all(ctx, nb_mul(ctx, y2, g2)));
    cr_assert_eq(nb_grad(ctx, 1, &total, NULL, 2, in, want, false), NB_OK, "%s", nb_ctx_error(ctx));
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < in[k]->numel; i++) assert_close(nb_get(in[k]->grad, i), nb_get(want[k], i), 1e-12, 1e-12);
    /* a non-scalar output without its gradient is an error naming it */
    gouts[1] = NULL;
    cr_assert_eq(nb_backward_many(ctx, 2, outs, gouts), NB_ERR_SHAPE);
    cr_assert(strstr(nb_ctx_error(ctx), "output 1"), "%s", nb_ctx_error(ctx));
}

/* ---- first writes into .grad ------------------------------------------------------------------ */
/* A weight's gradient is written by its GEMM straight into .grad when .grad is zero from
 * zero_grad and the weight has no other use: the same bits as the sum 0 + g the engine did
 * before, and later gradients (no zero_grad in between, shared weights, hooks) add as always. */
typedef struct {
    nb_params *ps;
    nb_tensor *w1, *b1, *w2, *x;
} grad_net;

static grad_net grad_net_new(void) {
    grad_net n = {.ps = nb_params_new()};
    n.w1 = nb_params_add(n.ps, "w1", NB_SHAPE(24, 40));
    n.b1 = nb_params_add(n.ps, "b1", NB_SHAPE(24));
    n.w2 = nb_params_add(n.ps, "w2", NB_SHAPE(7, 24));
    nb_rng r = nb_rng_new(11);
    for (int i = 0; i < n.ps->n; i++) nb_rng_uniform(&r, n.ps->p[i], -0.3, 0.3);
    n.x = nb_tensor_new(NB_F32, NB_SHAPE(9, 40));
    nb_rng_uniform(&r, n.x, -1, 1);
    return n;
}

static nb_tensor *grad_net_loss(nb_ctx *c, const grad_net *n) {
    nb_tensor *h = nb_linear_act(c, n->x, n->w1, n->b1, NB_ACT_TANH, 0.0);
    return nb_sum_all(c, nb_mul(c, nb_linear(c, h, n->w2, NULL), nb_linear(c, h, n->w2, NULL))); /* w2 used twice */
}

static void grad_net_free(grad_net *n) {
    nb_tensor_free(n->x);
    nb_params_free(n->ps);
}

Test(autograd, first_gradient_written_into_grad_has_the_bits_of_the_sum) {
    grad_net n = grad_net_new();
    nb_tensor *ps3[3] = {n.w1, n.b1, n.w2}, *g[3];
    cr_assert_eq(nb_grad(ctx, 1, (nb_tensor *[]){grad_net_loss(ctx, &n)}, NULL, 3, ps3, g, false), NB_OK, "%s", nb_ctx_error(ctx));
    for (int round = 0; round < 3; round++) {
        /* round 0: .grad zero from params_add; 1: from zero_grad; 2: no zero_grad, so it adds */
        if (round == 1) nb_params_zero_grad(n.ps);
        cr_assert_eq(nb_backward(ctx, grad_net_loss(ctx, &n), NULL), NB_OK, "%s", nb_ctx_error(ctx));
        for (int k = 0; k < 3; k++)
            for (int64_t i = 0; i < g[k]->numel; i++) {
                const float want = round < 2 ? (float)nb_get(g[k], i) : (float)nb_get(g[k], i) + (float)nb_get(g[k], i);
                const float got = ((const float *)ps3[k]->grad->data)[i];
                cr_assert(memcmp(&want, &got, sizeof got) == 0, "round %d, param %d, element %lld: %.9g, want %.9g", round, k,
                          (long long)i, got, want);
            }
    }
    grad_net_free(&n);
}

static nb_tensor *double_it(nb_ctx *c, nb_tensor *g, void *user) {
    (void)user;
    return nb_mul_scalar(c, g, 2.0);
}

Test(autograd, a_hook_on_a_weight_still_sees_its_gradient) {
    grad_net n = grad_net_new();
    nb_tensor *g;
    cr_assert_eq(nb_grad(ctx, 1, (nb_tensor *[]){grad_net_loss(ctx, &n)}, NULL, 1, &n.w1, &g, false), NB_OK);
    cr_assert_eq(nb_add_hook(ctx, n.w1, double_it, NULL), NB_OK);
    nb_params_zero_grad(n.ps);
    cr_assert_eq(nb_backward(ctx, grad_net_loss(ctx, &n), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    for (int64_t i = 0; i < g->numel; i++) assert_close(nb_get(n.w1->grad, i), 2 * nb_get(g, i), 1e-6, 1e-6);
    grad_net_free(&n);
}

/* A user's rule that returns a gradient of the wrong shape: the error names the op whose rule
 * it is (it named the engine's inner sum_to) */
static nb_status wrong_shape_bw(nb_ctx *c, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    (void)n;
    gin[0] = nb_ones(c, g->dtype, NB_SHAPE(7));
    return NB_OK;
}
static const nb_op WRONG_SHAPE_OP = {"myop", wrong_shape_bw, NB_DIFFERENTIABLE};
Test(autograd, wrong_gradient_shape_names_the_op) {
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(4));
    nb_requires_grad(x, true);
    nb_tensor *y = nb_mul_scalar(ctx, nb_detach(ctx, x), 2.0);
    nb_record(ctx, &WRONG_SHAPE_OP, y, 1, &x);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, y), NULL), NB_ERR_SHAPE);
    cr_assert(strstr(nb_ctx_error(ctx), "backward of myop") && strstr(nb_ctx_error(ctx), "(7)"), "%s", nb_ctx_error(ctx));
}

/* A value a node used, changed in place before its backward (an optimizer step between two
 * backwards over one graph, nb_set on an input, a write through a view): backward refuses, as
 * torch's "modified by an inplace operation", instead of mixing old and new values. */
Test(autograd, inplace_change_of_a_used_value_is_refused) {
    nb_params *ps = nb_params_new_dtype(NB_F64);
    nb_tensor *W = nb_params_add(ps, "W", NB_SHAPE(2, 3));
    for (int i = 0; i < 6; i++) nb_set(W, i, 0.4 * sin(i + 1.0));
    nb_optim *opt = nb_optim_new(&nb_sgd, ps, &(nb_hparams){.lr = 0.5});
    nb_tensor *x = nb_rand(ctx, NB_F64, NB_SHAPE(4, 3));
    nb_tensor *h = nb_linear(ctx, x, W, NULL); /* uses W through its transposed view */
    nb_tensor *l1 = nb_sum_all(ctx, nb_tanh(ctx, h)), *l2 = nb_sum_all(ctx, nb_square(ctx, h));
    cr_assert_eq(nb_backward(ctx, l1, NULL), NB_OK);
    cr_assert_eq(nb_optim_step(opt), NB_OK); /* W changes */
    nb_params_zero_grad(ps);
    cr_assert_eq(nb_backward(ctx, l2, NULL), NB_ERR_STATE);
    cr_assert(strstr(nb_ctx_error(ctx), "was modified in place after the op used it"), "%s", nb_ctx_error(ctx));
    for (int i = 0; i < 6; i++) cr_assert_eq(nb_get(W->grad, i), 0.0, "a refused backward added to .grad");
    /* the usual loop (forward again after the step) is fine */
    nb_ctx_reset(ctx);
    x = nb_rand(ctx, NB_F64, NB_SHAPE(4, 3));
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, nb_square(ctx, nb_linear(ctx, x, W, NULL))), NULL), NB_OK,
                 "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_optim_step(opt), NB_OK);
    /* a step input changed with nb_set, and with nb_fill through a view of it */
    nb_ctx_reset(ctx);
    nb_tensor *a = rand_leaf(ctx, NB_SHAPE(3));
    nb_tensor *e = nb_exp(ctx, a); /* exp's backward reads its output */
    nb_tensor *y = nb_sum_all(ctx, nb_mul(ctx, e, e));
    cr_assert_eq(nb_set(e, 1, 5.0), NB_OK);
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_ERR_STATE);
    cr_assert(strstr(nb_ctx_error(ctx), "backward of mul: input 0"), "%s", nb_ctx_error(ctx));
    nb_ctx_reset(ctx);
    nb_tensor *m = rand_leaf(ctx, NB_SHAPE(2, 2)), *mt = nb_transpose(ctx, m, 0, 1);
    nb_tensor *c = nb_detach(ctx, m); /* a view without history: shares m's elements */
    y = nb_sum_all(ctx, nb_mul(ctx, mt, mt));
    cr_assert_eq(nb_fill(c, 1.0), NB_OK);
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_ERR_STATE, "%s", nb_ctx_error(ctx));
    nb_optim_free(opt);
    nb_params_free(ps);
}

/* What the check must not refuse (torch accepts each): an input the rule does not read (a bias
 * after add, a gathered table, a view's source), an op's output written after it was recorded,
 * a frozen parameter an optimizer step skipped, a user op writing a long-lived buffer with no
 * node to record. */
static nb_status copy_bw(nb_ctx *c, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    (void)n;
    gin[0] = nb_mul_scalar(c, g, 2.0);
    return NB_OK;
}
static const nb_op OP_TWICE = {"twice", copy_bw, NB_DIFFERENTIABLE};

Test(autograd, inplace_changes_the_backward_does_not_read_are_fine) {
    nb_params *ps = nb_params_new_dtype(NB_F64);
    nb_tensor *W = nb_params_add(ps, "W", NB_SHAPE(3, 3)), *b = nb_params_add(ps, "b", NB_SHAPE(3));
    nb_tensor *E = nb_params_add(ps, "E", NB_SHAPE(5, 3)), *F = nb_params_add(ps, "F", NB_SHAPE(3, 3));
    nb_rng r = nb_rng_new(3);
    nb_rng_normal(&r, W, 0, 1), nb_rng_normal(&r, E, 0, 1), nb_rng_normal(&r, F, 0, 1);
    nb_tensor *x = nb_rand(ctx, NB_F64, NB_SHAPE(2, 3));
    nb_tensor *idx = nb_from(ctx, NB_I64, NB_SHAPE(2), (int64_t[]){1, 4});
    nb_tensor *h = nb_add(ctx, nb_matmul(ctx, x, W), b);               /* b: add reads no input */
    nb_tensor *e = nb_index_select(ctx, E, 0, idx);                    /* E: gathered, not read */
    nb_tensor *y = nb_sum_all(ctx, nb_mul(ctx, nb_tanh(ctx, h), e));
    cr_assert_eq(nb_fill(b, 0.25), NB_OK);
    cr_assert_eq(nb_fill(E, 0.5), NB_OK);
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    /* a frozen parameter is not written by the step, so a graph through it stays valid; the
     * step's parameter is, so a graph through it does not */
    nb_ctx_reset(ctx);
    cr_assert_eq(nb_requires_grad(F, false), NB_OK);
    nb_optim *opt = nb_optim_new(&nb_sgd, ps, &(nb_hparams){.lr = 0.1});
    nb_tensor *u = rand_leaf(ctx, NB_SHAPE(2, 3));
    x = nb_rand(ctx, NB_F64, NB_SHAPE(2, 3));
    nb_tensor *through_f = nb_sum_all(ctx, nb_tanh(ctx, nb_matmul(ctx, u, F)));
    nb_tensor *through_w = nb_sum_all(ctx, nb_tanh(ctx, nb_matmul(ctx, u, W)));
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, nb_matmul(ctx, x, W)), NULL), NB_OK);
    cr_assert_eq(nb_optim_step(opt), NB_OK); /* W changes, F does not */
    cr_assert_eq(nb_backward(ctx, through_f, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_backward(ctx, through_w, NULL), NB_ERR_STATE);
    /* a user op that records first and writes its output after (its rule reads no output) */
    nb_ctx_reset(ctx);
    nb_tensor *a = rand_leaf(ctx, NB_SHAPE(3)), *o = nb_zeros_like(ctx, a);
    cr_assert_not_null(nb_record(ctx, &OP_TWICE, o, 1, &a));
    for (int i = 0; i < 3; i++) nb_set(o, i, 2 * nb_get(a, i));
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, o), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_get(a->grad, 0), 2.0);
    /* no node to record (grad off): a long-lived output is the caller's business */
    nb_tensor *buf = nb_tensor_new(NB_F64, NB_SHAPE(3));
    NB_NO_GRAD(ctx) { cr_assert_null(nb_record(ctx, &OP_TWICE, buf, 1, &a)); }
    cr_assert_eq(nb_ctx_status(ctx), NB_OK, "%s", nb_ctx_error(ctx));
    nb_tensor_free(buf);
    nb_optim_free(opt);
    nb_params_free(ps);
}
