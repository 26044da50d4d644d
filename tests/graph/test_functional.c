/* Functional autodiff and per-sample gradients (src/graph/functional.c): closed forms (the
 * Jacobian of A x, the Hessian of x^T A x = A + A^T), the identities jvp = J v, vjp = v^T J,
 * hvp = H v against the dense forms, gradchecks of every result built with create_graph,
 * per-sample gradients against N separate backward passes, and bad arguments. */
#include "common.h"

#include <string.h>

TestSuite(functional, .init = ctx_setup, .fini = ctx_teardown);

static nb_tensor *leaf(const double *v, int ndim, const int64_t *shape) {
    nb_tensor *t = test_from(ctx, v, ndim, shape);
    nb_requires_grad(t, true);
    return t;
}
static nb_tensor *flat(nb_ctx *c, nb_tensor *t) { return nb_reshape(c, t, NB_SHAPE(-1)); }

/* ---- functions under test ------------------------------------------------------------------- */
/* in[0] (M, K) times in[1] (K) */
static nb_tensor *f_matvec(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_matmul(c, in[0], in[1]);
}
/* x^T A x with A (3, 3) constant in user */
static nb_tensor *f_quadratic(nb_ctx *c, nb_tensor *const *in, void *u) {
    return nb_sum_all(c, nb_mul(c, in[0], nb_matmul(c, (nb_tensor *)u, in[0])));
}
/* x (3), y (2) -> (2, 3): sin(y x^T) * exp(y) by row, nonlinear in both */
static nb_tensor *f_vec(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_mul(c, nb_sin(c, nb_outer(c, in[1], in[0])), nb_unsqueeze(c, nb_exp(c, in[1]), 1));
}
/* a scalar of x (3), y (2): sum(f_vec^2) + sum(x^3) sum(y) */
static nb_tensor *f_scalar(nb_ctx *c, nb_tensor *const *in, void *u) {
    nb_tensor *v = f_vec(c, in, u);
    return nb_add(c, nb_sum_all(c, nb_square(c, v)),
                  nb_mul(c, nb_sum_all(c, nb_pow_scalar(c, in[0], 3)), nb_sum_all(c, in[1])));
}
/* sum(x y) + sum(x^3): H_xx = diag(6x), H_xy = H_yx = I, H_yy = 0 */
static nb_tensor *f_cubic(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_add(c, nb_sum_all(c, nb_mul(c, in[0], in[1])), nb_sum_all(c, nb_pow_scalar(c, in[0], 3)));
}
static nb_tensor *f_fails(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_matmul(c, in[0], in[0]); /* (3) x (3) is fine; (2, 3) x (2, 3) is not */
}

static void inputs_xy(nb_tensor **in) {
    in[0] = leaf((double[]){0.3, -0.7, 1.1}, NB_SHAPE(3));
    in[1] = leaf((double[]){0.5, -0.4}, NB_SHAPE(2));
}

/* ---- closed forms ----------------------------------------------------------------------------- */
Test(functional, jacobian_of_a_matrix_vector_product) {
    static const double a[] = {1, 2, 3, 4, 5, 6}, x[] = {0.5, -1, 2};
    nb_tensor *in[2] = {leaf(a, NB_SHAPE(2, 3)), leaf(x, NB_SHAPE(3))}, *jac[2];
    cr_assert_eq(nb_jacobian(ctx, f_matvec, 2, in, NULL, jac, false), NB_OK, "%s", nb_ctx_error(ctx));
    /* d(Ax)_i / dA_kl = delta_ik x_l: shape (2, 2, 3) */
    cr_assert(jac[0]->ndim == 3 && jac[0]->shape[0] == 2 && jac[0]->shape[1] == 2 && jac[0]->shape[2] == 3);
    assert_values(jac[0], (double[]){0.5, -1, 2, 0, 0, 0, 0, 0, 0, 0.5, -1, 2}, 12, 0);
    /* d(Ax)/dx = A: shape (2, 3) */
    cr_assert(jac[1]->ndim == 2 && jac[1]->shape[0] == 2 && jac[1]->shape[1] == 3);
    assert_values(jac[1], a, 6, 0);
    cr_assert(!jac[0]->requires_grad && !jac[1]->requires_grad);
    cr_assert(in[0]->grad == NULL && in[1]->grad == NULL, "the inputs' .grad is left alone");
    cr_assert(in[0]->requires_grad && in[1]->requires_grad);
}

Test(functional, hessian_of_a_quadratic_form_is_a_plus_a_transposed) {
    static const double a[] = {1, 2, 0, -1, 3, 4, 5, 0.5, -2};
    nb_tensor *A = test_from(ctx, a, NB_SHAPE(3, 3));
    nb_tensor *x = leaf((double[]){0.2, -1.5, 0.7}, NB_SHAPE(3)), *h;
    cr_assert_eq(nb_hessian(ctx, f_quadratic, 1, &x, A, &h, false), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert(h->ndim == 2 && h->shape[0] == 3 && h->shape[1] == 3);
    double want[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) want[i * 3 + j] = a[i * 3 + j] + a[j * 3 + i];
    assert_values(h, want, 9, 1e-14);
    /* hvp = (A + A^T) v, and the value of f comes back too */
    nb_tensor *v = test_from(ctx, (double[]){1, -2, 0.5}, NB_SHAPE(3)), *hv, *out;
    cr_assert_eq(nb_hvp(ctx, f_quadratic, 1, &x, A, &v, &out, &hv, false), NB_OK, "%s", nb_ctx_error(ctx));
    double hvw[3] = {0}, fx = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            hvw[i] += want[i * 3 + j] * nb_get(v, j);
            fx += nb_get(x, i) * a[i * 3 + j] * nb_get(x, j);
        }
    assert_values(hv, hvw, 3, 1e-14);
    assert_close(nb_item(out), fx, 1e-14, 1e-14);
    cr_assert(!out->requires_grad && !hv->requires_grad);
}

Test(functional, hessian_blocks_of_two_inputs) {
    nb_tensor *in[2] = {leaf((double[]){0.5, -2}, NB_SHAPE(2)), leaf((double[]){3, 4}, NB_SHAPE(2))}, *h[4];
    cr_assert_eq(nb_hessian(ctx, f_cubic, 2, in, NULL, h, false), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(h[0], (double[]){3, 0, 0, -12}, 4, 1e-14); /* diag(6x) */
    assert_values(h[1], (double[]){1, 0, 0, 1}, 4, 0);
    assert_values(h[2], (double[]){1, 0, 0, 1}, 4, 0);
    assert_values(h[3], (double[]){0, 0, 0, 0}, 4, 0); /* f is linear in y: zeros, not an error */
}

/* sum_k J[o, k] v[k] over the flattened inputs */
static double contract(const nb_tensor *j, int64_t o, const nb_tensor *v) {
    double s = 0;
    for (int64_t k = 0; k < v->numel; k++) s += nb_get(j, o * v->numel + k) * nb_get(v, k);
    return s;
}

Test(functional, jvp_vjp_and_hvp_agree_with_the_dense_forms) {
    nb_tensor *in[2], *jac[2], *hess[4];
    inputs_xy(in);
    nb_tensor *vx = test_from(ctx, (double[]){0.7, 0.1, -1.3}, NB_SHAPE(3)), *vy = test_from(ctx, (double[]){-0.6, 2.0}, NB_SHAPE(2));
    nb_tensor *w = test_from(ctx, (double[]){1, -1, 0.5, 2, 0.25, -3}, NB_SHAPE(2, 3));
    cr_assert_eq(nb_jacobian(ctx, f_vec, 2, in, NULL, jac, false), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert(jac[0]->ndim == 3 && jac[0]->shape[2] == 3 && jac[1]->ndim == 3 && jac[1]->shape[2] == 2);
    /* jvp = J_x vx + J_y vy (forward mode through the double-vjp identity) */
    nb_tensor *jv, *out;
    cr_assert_eq(nb_jvp(ctx, f_vec, 2, in, NULL, (nb_tensor *[]){vx, vy}, &out, &jv, false), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert(nb_same_shape(jv, out) && jv->ndim == 2 && jv->shape[0] == 2 && jv->shape[1] == 3);
    for (int64_t o = 0; o < 6; o++) assert_close(nb_get(jv, o), contract(jac[0], o, vx) + contract(jac[1], o, vy), 1e-13, 1e-12);
    /* vjp = w^T J */
    nb_tensor *vj[2];
    cr_assert_eq(nb_vjp(ctx, f_vec, 2, in, NULL, w, NULL, vj, false), NB_OK, "%s", nb_ctx_error(ctx));
    for (int i = 0; i < 2; i++) {
        const int64_t n = in[i]->numel;
        for (int64_t k = 0; k < n; k++) {
            double s = 0;
            for (int64_t o = 0; o < 6; o++) s += nb_get(w, o) * nb_get(jac[i], o * n + k);
            assert_close(nb_get(vj[i], k), s, 1e-13, 1e-12, "(input %d, element %lld)", i, (long long)k);
        }
    }
    /* hvp = H v, block by block */
    nb_tensor *hv[2];
    cr_assert_eq(nb_hessian(ctx, f_scalar, 2, in, NULL, hess, false), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_hvp(ctx, f_scalar, 2, in, NULL, (nb_tensor *[]){vx, vy}, NULL, hv, false), NB_OK, "%s", nb_ctx_error(ctx));
    for (int i = 0; i < 2; i++)
        for (int64_t k = 0; k < in[i]->numel; k++)
            assert_close(nb_get(hv[i], k), contract(hess[i * 2], k, vx) + contract(hess[i * 2 + 1], k, vy), 1e-12, 1e-12,
                         "(input %d, element %lld)", i, (long long)k);
    /* the Hessian of a smooth function is symmetric: H_xy = H_yx^T */
    for (int64_t k = 0; k < 3; k++)
        for (int64_t l = 0; l < 2; l++) assert_close(nb_get(hess[1], k * 2 + l), nb_get(hess[2], l * 3 + k), 1e-12, 1e-12);
}

static nb_tensor *f_const(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)in, (void)u;
    return nb_ones(c, NB_F64, NB_SHAPE(2));
}

Test(functional, one_element_defaults_and_independent_inputs) {
    /* f(s, z) = s z + s^3 with s (1) and z 0-d: v may be NULL for one-element inputs and outputs */
    nb_tensor *in[2] = {leaf((double[]){2}, NB_SHAPE(1)), leaf((double[]){5}, 0, NULL)};
    nb_tensor *jv, *vj[2], *hv[2], *jac[2];
    cr_assert_eq(nb_jvp(ctx, f_cubic, 2, in, NULL, NULL, NULL, &jv, false), NB_OK, "%s", nb_ctx_error(ctx));
    assert_close(nb_item(jv), (5 + 12) + 2, 1e-13, 0); /* d/ds = z + 3 s^2, d/dz = s, v = 1 */
    cr_assert_eq(nb_vjp(ctx, f_cubic, 2, in, NULL, NULL, NULL, vj, false), NB_OK, "%s", nb_ctx_error(ctx));
    assert_close(nb_item(vj[0]), 17, 1e-13, 0);
    assert_close(nb_item(vj[1]), 2, 1e-13, 0);
    cr_assert_eq(nb_hvp(ctx, f_cubic, 2, in, NULL, NULL, NULL, hv, false), NB_OK, "%s", nb_ctx_error(ctx));
    assert_close(nb_item(hv[0]), 6 * 2 + 1, 1e-13, 0);
    assert_close(nb_item(hv[1]), 1, 1e-13, 0);
    /* inputs that do not require grad are differentiated all the same */
    nb_tensor *c[2] = {nb_ones(ctx, NB_F64, NB_SHAPE(2, 1)), nb_full(ctx, NB_F64, NB_SHAPE(1), 3)};
    cr_assert_eq(nb_jacobian(ctx, f_matvec, 2, c, NULL, jac, false), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(jac[0], (double[]){3, 0, 0, 3}, 4, 0);
    assert_values(jac[1], (double[]){1, 1}, 2, 0);
    /* an output that depends on no input: zeros of the right shapes (torch's strict=False) */
    cr_assert_eq(nb_jacobian(ctx, f_const, 2, in, NULL, jac, false), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert(jac[0]->ndim == 2 && jac[0]->shape[0] == 2 && jac[0]->shape[1] == 1 && jac[1]->ndim == 1);
    assert_values(jac[0], (double[]){0, 0}, 2, 0);
    cr_assert_eq(nb_jvp(ctx, f_const, 2, in, NULL, NULL, NULL, &jv, true), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(jv, (double[]){0, 0}, 2, 0);
}

/* ---- create_graph: every result is differentiable again ------------------------------------------ */
static nb_tensor *g_vjp(nb_ctx *c, nb_tensor *const *in, void *u) {
    nb_tensor *r[2];
    if (nb_vjp(c, f_vec, 2, in, NULL, (nb_tensor *)u, NULL, r, true) != NB_OK) return NULL;
    return nb_concat(c, 2, (nb_tensor *[]){r[0], r[1]}, 0);
}
static nb_tensor *g_jvp(nb_ctx *c, nb_tensor *const *in, void *u) { /* x, y, vx, vy */
    (void)u;
    nb_tensor *r;
    return nb_jvp(c, f_vec, 2, in, NULL, in + 2, NULL, &r, true) == NB_OK ? r : NULL;
}
static nb_tensor *g_hvp(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_tensor *r[2];
    if (nb_hvp(c, f_scalar, 2, in, NULL, in + 2, NULL, r, true) != NB_OK) return NULL;
    return nb_concat(c, 2, r, 0);
}
static nb_tensor *g_jacobian(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_tensor *r[2];
    if (nb_jacobian(c, f_vec, 2, in, NULL, r, true) != NB_OK) return NULL;
    return nb_concat(c, 2, (nb_tensor *[]){flat(c, r[0]), flat(c, r[1])}, 0);
}
static nb_tensor *g_hessian(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_tensor *r[4];
    if (nb_hessian(c, f_scalar, 2, in, NULL, r, true) != NB_OK) return NULL;
    return nb_concat(c, 4, (nb_tensor *[]){flat(c, r[0]), flat(c, r[1]), flat(c, r[2]), flat(c, r[3])}, 0);
}

Test(functional, create_graph_results_pass_gradcheck) {
    nb_tensor *in[4];
    inputs_xy(in);
    in[2] = leaf((double[]){0.7, 0.1, -1.3}, NB_SHAPE(3));
    in[3] = leaf((double[]){-0.6, 2.0}, NB_SHAPE(2));
    nb_tensor *w = test_from(ctx, (double[]){1, -1, 0.5, 2, 0.25, -3}, NB_SHAPE(2, 3));
    check_grads_named(g_vjp, 2, in, w, false, "vjp");
    check_grads_named(g_jvp, 4, in, NULL, false, "jvp (in x, y and the directions)");
    check_grads_named(g_hvp, 4, in, NULL, false, "hvp");
    check_grads_named(g_jacobian, 2, in, NULL, false, "jacobian");
    check_grads_named(g_hessian, 2, in, NULL, false, "hessian");
    /* results stay connected to the inputs, and without create_graph they are constants */
    nb_tensor *r[2];
    cr_assert_eq(nb_vjp(ctx, f_vec, 2, in, NULL, w, NULL, r, true), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert(r[0]->requires_grad && r[1]->requires_grad);
    nb_tensor *gx;
    cr_assert_eq(nb_grad(ctx, 1, (nb_tensor *[]){nb_sum_all(ctx, r[0])}, NULL, 1, in, &gx, false), NB_OK, "%s",
                 nb_ctx_error(ctx));
    cr_assert(in[0]->grad == NULL);
}

Test(functional, grad_mode_is_on_inside_and_restored) {
    nb_tensor *in[2], *jv;
    inputs_xy(in);
    nb_tensor *v[2] = {nb_ones(ctx, NB_F64, NB_SHAPE(3)), nb_ones(ctx, NB_F64, NB_SHAPE(2))};
    NB_NO_GRAD(ctx) {
        cr_assert_eq(nb_jvp(ctx, f_vec, 2, in, NULL, v, NULL, &jv, false), NB_OK, "%s", nb_ctx_error(ctx));
        cr_assert_not(nb_ctx_grad_enabled(ctx));
    }
    cr_assert(nb_ctx_grad_enabled(ctx));
    /* and after a failure */
    cr_assert_neq(nb_jvp(ctx, f_vec, 2, in, NULL, (nb_tensor *[]){v[1], v[0]}, NULL, &jv, false), NB_OK);
    cr_assert(nb_ctx_grad_enabled(ctx));
}

/* status and message of the call just made; the error is cleared for the next one */
static void expect(nb_status got, nb_status want, const char *const *words) {
    const char *msg = nb_last_error();
    cr_assert_eq(got, want, "%s, want %s: %s", nb_status_name(got), nb_status_name(want), msg);
    for (int w = 0; words[w]; w++) cr_assert(strstr(msg, words[w]), "'%s' lacks '%s'", msg, words[w]);
    nb_ctx_clear_error(ctx);
}

Test(functional, bad_arguments_name_the_function) {
    nb_tensor *in[2], *r[4], *one;
    inputs_xy(in);
    nb_tensor *v[2] = {nb_ones(ctx, NB_F64, NB_SHAPE(3)), nb_ones(ctx, NB_F64, NB_SHAPE(2))};
    expect(nb_vjp(NULL, f_vec, 2, in, NULL, NULL, NULL, r, false), NB_ERR_NULL, (const char *[]){"vjp", "context", 0});
    expect(nb_vjp(ctx, NULL, 2, in, NULL, NULL, NULL, r, false), NB_ERR_NULL, (const char *[]){"vjp", "NULL", 0});
    expect(nb_jvp(ctx, f_vec, 2, (nb_tensor *[]){in[0], NULL}, NULL, v, NULL, r, false), NB_ERR_NULL,
           (const char *[]){"jvp", "input 1", 0});
    expect(nb_jacobian(ctx, f_vec, 2, in, NULL, NULL, false), NB_ERR_NULL, (const char *[]){"jacobian", 0});
    expect(nb_vjp(ctx, f_vec, 2, in, NULL, v[0], NULL, r, false), NB_ERR_SHAPE,
           (const char *[]){"vjp: v f64 (3)", "the output", "(2,3)", 0});
    expect(nb_vjp(ctx, f_vec, 2, in, NULL, NULL, NULL, r, false), NB_ERR_NULL, (const char *[]){"vjp", "v is NULL", "(2,3)", 0});
    expect(nb_jvp(ctx, f_vec, 2, in, NULL, (nb_tensor *[]){v[1], v[0]}, NULL, r, false), NB_ERR_SHAPE,
           (const char *[]){"jvp", "v[0] f64 (2)", "input 0, f64 (3)", 0});
    expect(nb_jvp(ctx, f_vec, 2, in, NULL, (nb_tensor *[]){v[0], NULL}, NULL, r, false), NB_ERR_NULL,
           (const char *[]){"jvp", "v[1] is NULL", 0});
    expect(nb_hvp(ctx, f_vec, 2, in, NULL, v, NULL, r, false), NB_ERR_SHAPE, (const char *[]){"hvp", "(2,3)", "one element", 0});
    expect(nb_hessian(ctx, f_vec, 2, in, NULL, r, false), NB_ERR_SHAPE, (const char *[]){"hessian", "(2,3)", "one element", 0});
    expect(nb_jvp(ctx, f_vec, 2, (nb_tensor *[]){nb_arange(ctx, NB_I64, 0, 3, 1), in[1]}, NULL, v, NULL, r, false),
           NB_ERR_DTYPE, (const char *[]){"jvp", "input 0 is i64", 0});
    expect(nb_vjp(ctx, f_fails, 1, (nb_tensor *[]){nb_ones(ctx, NB_F64, NB_SHAPE(2, 3))}, NULL, NULL, NULL, r, false),
           NB_ERR_SHAPE, (const char *[]){"matmul", 0});
    expect(nb_jacobian(ctx, f_matvec, 2, (nb_tensor *[]){nb_ones(ctx, NB_F64, NB_SHAPE(1, 1, 1, 1, 2, 3)), in[0]}, NULL, r,
                       false),
           NB_ERR_SHAPE, (const char *[]){"jacobian", "input 0", "would have 11 dims", 0});
    /* a context that has already failed keeps its first error */
    one = nb_matmul(ctx, v[0], v[1]);
    cr_assert_null(one);
    cr_assert_eq(nb_vjp(ctx, f_vec, 2, in, NULL, NULL, NULL, r, false), NB_ERR_SHAPE);
    cr_assert(strstr(nb_ctx_error(ctx), "matmul"), "%s", nb_ctx_error(ctx));
}

/* ---- per-sample gradients ----------------------------------------------------------------------- */
/* A small CNN: conv2d (groups 2, per-axis options) -> tanh -> flatten -> linear -> tanh ->
 * linear over a sequence axis; the loss sums per-sample terms. */
typedef struct {
    nb_tensor *w1, *b1, *w2, *b2, *w3;
    nb_conv_opts conv;
    nb_tensor *x1, *y1, *x2, *y2, *x3, *y3; /* the layers' inputs and outputs of the last forward */
} cnn;

static nb_tensor *cnn_loss(nb_ctx *c, cnn *m, nb_tensor *x) {
    m->x1 = x;
    m->y1 = nb_conv2d_ex(c, x, m->w1, m->b1, &m->conv);
    m->x2 = nb_flatten(c, nb_tanh(c, m->y1), 1);
    m->y2 = nb_linear(c, m->x2, m->w2, m->b2);
    const int64_t n = x->shape[0];
    m->x3 = nb_reshape(c, nb_tanh(c, m->y2), NB_SHAPE(n, 2, 3)); /* (N, T = 2, 3) */
    m->y3 = nb_linear(c, m->x3, m->w3, NULL);
    return nb_sum_all(c, nb_square(c, nb_sin(c, m->y3)));
}

static void check_per_sample(const nb_conv_opts *opts, int64_t h, int64_t w) {
    const int64_t N = 3;
    cnn m = {.conv = *opts};
    m.w1 = rand_leaf(ctx, NB_SHAPE(4, 2 / (opts->groups ? opts->groups : 1), 3, 3));
    m.b1 = rand_leaf(ctx, NB_SHAPE(4));
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(N, 2, h, w));
    nb_tensor *probe = nb_conv2d_ex(ctx, x, m.w1, NULL, opts);
    cr_assert_not_null(probe, "%s", nb_ctx_error(ctx));
    const int64_t feat = probe->numel / N;
    m.w2 = rand_leaf(ctx, NB_SHAPE(6, feat));
    m.b2 = rand_leaf(ctx, NB_SHAPE(6));
    m.w3 = rand_leaf(ctx, NB_SHAPE(2, 3));
    nb_tensor *loss = cnn_loss(ctx, &m, x);
    nb_per_sample_layer layers[3] = {
        {.kind = NB_PER_SAMPLE_CONV2D, .x = m.x1, .y = m.y1, .w = m.w1, .conv = *opts},
        {.kind = NB_PER_SAMPLE_LINEAR, .x = m.x2, .y = m.y2, .w = m.w2},
        {.kind = NB_PER_SAMPLE_LINEAR, .x = m.x3, .y = m.y3, .w = m.w3},
    };
    cr_assert_eq(nb_per_sample_grads(ctx, loss, 3, layers), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert(layers[0].grad_w->ndim == 5 && layers[0].grad_w->shape[0] == N && layers[0].grad_w->shape[1] == 4);
    cr_assert(layers[2].grad_w->ndim == 3 && layers[2].grad_w->shape[1] == 2 && layers[2].grad_w->shape[2] == 3);
    cr_assert(m.w1->grad == NULL, ".grad is left alone");
    /* against one backward per sample */
    for (int64_t n = 0; n < N; n++) {
        cnn one = m;
        nb_tensor *ln = cnn_loss(ctx, &one, nb_slice(ctx, x, 0, n, n + 1, 1)), *g[5];
        cr_assert_eq(nb_grad(ctx, 1, &ln, NULL, 5, (nb_tensor *[]){m.w1, m.b1, m.w2, m.b2, m.w3}, g, false), NB_OK, "%s",
                     nb_ctx_error(ctx));
        nb_tensor *want[5] = {g[0], g[1], g[2], g[3], g[4]};
        nb_tensor *got[5] = {layers[0].grad_w, layers[0].grad_b, layers[1].grad_w, layers[1].grad_b, layers[2].grad_w};
        for (int p = 0; p < 5; p++) {
            nb_tensor *gn = nb_reshape(ctx, nb_slice(ctx, got[p], 0, n, n + 1, 1), want[p]->ndim, want[p]->shape);
            cr_assert_not_null(gn, "%s", nb_ctx_error(ctx));
            for (int64_t k = 0; k < gn->numel; k++)
                assert_close(nb_get(gn, k), nb_get(want[p], k), 1e-13, 1e-11, "(sample %lld, parameter %d, element %lld)",
                             (long long)n, p, (long long)k);
        }
    }
}

Test(functional, per_sample_grads_match_one_backward_per_sample) {
    check_per_sample(&(nb_conv_opts){.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2}, 5, 7);
    check_per_sample(&(nb_conv_opts){.same = true, .dilation = {1, 2}}, 4, 5);
    check_per_sample(&(nb_conv_opts){0}, 3, 4);
}

static nb_tensor *g_linear_ps(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_tensor *gw, *gb;
    if (nb_linear_per_sample_grads(c, in[0], in[1], &gw, &gb) != NB_OK) return NULL;
    return nb_concat(c, 2, (nb_tensor *[]){flat(c, gw), flat(c, gb)}, 0);
}
static nb_tensor *g_conv_ps(nb_ctx *c, nb_tensor *const *in, void *u) {
    nb_tensor *gw, *gb;
    if (nb_conv2d_per_sample_grads(c, in[0], (nb_tensor *)u, &(nb_conv_opts){.stride = {1, 2}, .padding = {1, 1}, .groups = 2},
                                   in[1], &gw, &gb) != NB_OK)
        return NULL;
    return nb_concat(c, 2, (nb_tensor *[]){flat(c, gw), flat(c, gb)}, 0);
}

Test(functional, per_sample_grads_are_made_of_ops) {
    nb_tensor *lin[2] = {test_leaf(ctx, NB_SHAPE(2, 3, 4), LAYOUT_T, DOM_ANY), test_leaf(ctx, NB_SHAPE(2, 3, 5), LAYOUT_SLICE, DOM_ANY)};
    check_grads_named(g_linear_ps, 2, lin, NULL, true, "linear_per_sample_grads");
    nb_tensor *w = nb_randn(ctx, NB_F64, NB_SHAPE(4, 1, 2, 3));
    nb_tensor *conv[2] = {rand_leaf(ctx, NB_SHAPE(2, 2, 3, 4)), rand_leaf(ctx, NB_SHAPE(2, 4, 4, 2))};
    check_grads_named(g_conv_ps, 2, conv, w, true, "conv2d_per_sample_grads");
}

Test(functional, per_sample_bad_arguments) {
    nb_tensor *x = nb_ones(ctx, NB_F64, NB_SHAPE(2, 3)), *gw, *gb;
    cr_assert_eq(nb_linear_per_sample_grads(ctx, x, nb_ones(ctx, NB_F64, NB_SHAPE(3, 5)), &gw, &gb), NB_ERR_SHAPE);
    cr_assert(strstr(nb_ctx_error(ctx), "linear_per_sample_grads") && strstr(nb_ctx_error(ctx), "(3,5)"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_eq(nb_linear_per_sample_grads(ctx, x, nb_ones(ctx, NB_F32, NB_SHAPE(2, 5)), &gw, &gb), NB_ERR_DTYPE);
    nb_ctx_clear_error(ctx);
    cr_assert_eq(nb_linear_per_sample_grads(ctx, x, NULL, &gw, &gb), NB_ERR_NULL);
    nb_ctx_clear_error(ctx);
    nb_tensor *img = nb_ones(ctx, NB_F64, NB_SHAPE(2, 2, 4, 4)), *w = nb_ones(ctx, NB_F64, NB_SHAPE(3, 2, 3, 3));
    cr_assert_eq(nb_conv2d_per_sample_grads(ctx, img, w, NULL, nb_ones(ctx, NB_F64, NB_SHAPE(2, 3, 4, 4)), &gw, &gb), NB_ERR_SHAPE);
    cr_assert(strstr(nb_ctx_error(ctx), "conv2d_per_sample_grads") && strstr(nb_ctx_error(ctx), "(2,3,4,4)"), "%s",
              nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_eq(nb_conv2d_per_sample_grads(ctx, img, w, &(nb_conv_opts){.groups = 2}, nb_ones(ctx, NB_F64, NB_SHAPE(2, 3, 2, 2)),
                                            &gw, &gb),
                 NB_ERR_SHAPE);
    nb_ctx_clear_error(ctx);
    /* gy with OH and OW swapped (as many positions): refused, not read as the wrong layout */
    nb_tensor *wide = nb_ones(ctx, NB_F64, NB_SHAPE(2, 2, 4, 6));
    cr_assert_eq(nb_conv2d_per_sample_grads(ctx, wide, w, NULL, nb_ones(ctx, NB_F64, NB_SHAPE(2, 3, 4, 2)), &gw, &gb), NB_ERR_SHAPE);
    cr_assert(strstr(nb_ctx_error(ctx), "(2,3,2,4)"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    /* a kernel larger than the padded input: named here, not by unfold */
    cr_assert_eq(nb_conv2d_per_sample_grads(ctx, nb_ones(ctx, NB_F64, NB_SHAPE(2, 2, 2, 2)), w, NULL,
                                            nb_ones(ctx, NB_F64, NB_SHAPE(2, 3, 1, 1)), &gw, &gb),
                 NB_ERR_SHAPE);
    cr_assert(strstr(nb_ctx_error(ctx), "conv2d_per_sample_grads"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    nb_tensor *wl = rand_leaf(ctx, NB_SHAPE(2, 3)), *y = nb_linear(ctx, x, wl, NULL);
    nb_per_sample_layer l = {.kind = NB_PER_SAMPLE_LINEAR, .x = x, .y = y, .w = wl};
    cr_assert_eq(nb_per_sample_grads(ctx, y, 1, &l), NB_ERR_SHAPE);
    cr_assert(strstr(nb_ctx_error(ctx), "per_sample_grads") && strstr(nb_ctx_error(ctx), "one element"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_eq(nb_per_sample_grads(ctx, nb_sum_all(ctx, y), 1, &l), NB_OK, "%s", nb_ctx_error(ctx));
    assert_values(l.grad_w, (double[]){1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 12, 0);
    assert_values(l.grad_b, (double[]){1, 1, 1, 1}, 4, 0);
}
