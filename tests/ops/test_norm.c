/* batch/layer/group norm: PyTorch values (train, eval, running statistics); the fused
 * primitives against the composite they replaced (values, gradients, second derivatives, in f64
 * and f32, contiguous and strided inputs); gradcheck and gradgradcheck; the same bits for 1 and
 * 2 threads; accuracy in f32 for a large mean; what the forward keeps; errors. */
#include "nn_test_util.h"

static nb_ctx *ctx;
static void setup(void) { ctx = nb_ctx_new(); nb_ctx_seed(ctx, 13); }
static void teardown(void) { nb_ctx_free(ctx); }
TestSuite(norm, .init = setup, .fini = teardown, .timeout = 120);

Test(norm, batch_norm_matches_pytorch_over_two_steps_and_eval) {
    nb_tensor *w = ref_tensor(ctx, NB_SHAPE(3), 1.2, false), *b = ref_tensor(ctx, NB_SHAPE(3), 1.3, false);
    nb_tensor *rm = nb_tensor_new(NB_F32, NB_SHAPE(3)), *rv = nb_tensor_new(NB_F32, NB_SHAPE(3));
    nb_fill(rv, 1.0);
    nb_tensor *x1 = nb_affine(ctx, ref_tensor(ctx, NB_SHAPE(4, 3, 5, 5), 1.4, false), 2.0, 0.5);
    nb_tensor *x2 = nb_affine(ctx, ref_tensor(ctx, NB_SHAPE(4, 3, 5, 5), 1.5, false), 3.0, -1.0);
    assert_ref(nb_batch_norm(ctx, x1, w, b, rm, rv, 0.1, 1e-5), REF_BN_TRAIN1);
    cr_assert_not_null(nb_batch_norm(ctx, x2, w, b, rm, rv, 0.1, 1e-5));
    assert_values(rm, REF_BN_RMEAN, 3, 1e-6); /* f32 running statistics */
    assert_values(rv, REF_BN_RVAR, 3, 1e-6);
    nb_ctx_set_train(ctx, false);
    nb_tensor *y = nb_batch_norm(ctx, x1, w, b, rm, rv, 0.1, 1e-5);
    assert_values(y, REF_BN_EVAL, 300, 1e-5);
    assert_values(rm, REF_BN_RMEAN, 3, 1e-6); /* eval leaves them alone */
    nb_ctx_set_train(ctx, true);
    /* 2-D input (N, C): statistics over N */
    nb_fill(rv, 1.0);
    nb_fill(rm, 0.0);
    assert_ref(nb_batch_norm(ctx, ref_tensor(ctx, NB_SHAPE(8, 3), 1.6, false), NULL, NULL, rm, rv, 0.1, 1e-5), REF_BN1D_TRAIN);
    assert_values(rv, REF_BN1D_RVAR, 3, 1e-6);
    nb_tensor_free(rm);
    nb_tensor_free(rv);
}

Test(norm, layer_and_group_norm_match_pytorch) {
    nb_tensor *x = ref_tensor(ctx, NB_SHAPE(3, 4, 5), 1.7, false);
    assert_ref(nb_layer_norm(ctx, x, 2, ref_tensor(ctx, NB_SHAPE(4, 5), 1.8, false), ref_tensor(ctx, NB_SHAPE(4, 5), 1.9, false), 1e-5),
               REF_LAYERNORM);
    x = ref_tensor(ctx, NB_SHAPE(2, 6, 3, 3), 2.0, false);
    assert_ref(nb_group_norm(ctx, x, 3, ref_tensor(ctx, NB_SHAPE(6), 2.1, false), ref_tensor(ctx, NB_SHAPE(6), 2.2, false), 1e-5),
               REF_GROUPNORM);
    assert_ref(nb_group_norm(ctx, x, 6, NULL, NULL, 1e-5), REF_INSTNORM);
}

/* ---- the composite these ops were until the fused kernels (the reference) ------------------- */
static nb_tensor *ref_standardize(nb_ctx *c, nb_tensor *x, int naxes, const int *axes, double eps, nb_tensor **mean_out,
                                  nb_tensor **var_out) {
    nb_tensor *mean = nb_mean(c, x, naxes, axes, true);
    nb_tensor *d = nb_sub(c, x, mean);
    nb_tensor *var = nb_mean(c, nb_mul(c, d, d), naxes, axes, true);
    if (mean_out) *mean_out = mean;
    if (var_out) *var_out = var;
    return nb_div(c, d, nb_sqrt(c, nb_add_scalar(c, var, eps)));
}
static nb_tensor *ref_affine(nb_ctx *c, nb_tensor *y, nb_tensor *w, nb_tensor *b, int ndim, const int64_t *shape) {
    if (w) y = nb_mul(c, y, nb_reshape(c, w, ndim, shape));
    if (b) y = nb_add(c, y, nb_reshape(c, b, ndim, shape));
    return y;
}
static nb_tensor *ref_batch_norm(nb_ctx *c, nb_tensor *x, nb_tensor *w, nb_tensor *b, nb_tensor *rm, nb_tensor *rv,
                                 double momentum, double eps) {
    int axes[NB_MAX_DIMS], na = 0;
    int64_t cshape[NB_MAX_DIMS] = {x->shape[1]};
    for (int d = 0; d < x->ndim; d++)
        if (d != 1) axes[na++] = d;
    for (int d = 1; d < x->ndim - 1; d++) cshape[d] = 1;
    const int cnd = x->ndim - 1;
    const int64_t C = x->shape[1], count = x->numel / C;
    nb_tensor *y;
    if (nb_ctx_is_train(c) || !rm) {
        nb_tensor *mean, *var;
        y = ref_standardize(c, x, na, axes, eps, &mean, &var);
        if (nb_ctx_is_train(c) && rm)
            for (int64_t i = 0; i < C; i++) {
                nb_set(rm, i, (1 - momentum) * nb_get(rm, i) + momentum * nb_get(mean, i));
                nb_set(rv, i, (1 - momentum) * nb_get(rv, i) + momentum * nb_get(var, i) * count / (count - 1));
            }
    } else {
        nb_tensor *mean = nb_reshape(c, nb_cast(c, rm, x->dtype), cnd, cshape);
        nb_tensor *var = nb_reshape(c, nb_cast(c, rv, x->dtype), cnd, cshape);
        y = nb_div(c, nb_sub(c, x, mean), nb_sqrt(c, nb_add_scalar(c, var, eps)));
    }
    return ref_affine(c, y, w, b, cnd, cshape);
}
static nb_tensor *ref_layer_norm(nb_ctx *c, nb_tensor *x, int ndims, nb_tensor *w, nb_tensor *b, double eps) {
    int axes[NB_MAX_DIMS];
    for (int i = 0; i < ndims; i++) axes[i] = x->ndim - ndims + i;
    return ref_affine(c, ref_standardize(c, x, ndims, axes, eps, NULL, NULL), w, b, ndims, x->shape + x->ndim - ndims);
}
static nb_tensor *ref_group_norm(nb_ctx *c, nb_tensor *x, int groups, nb_tensor *w, nb_tensor *b, double eps) {
    int axis = 2;
    nb_tensor *y = ref_standardize(c, nb_reshape(c, x, NB_SHAPE(x->shape[0], groups, -1)), 1, &axis, eps, NULL, NULL);
    int64_t cshape[NB_MAX_DIMS] = {x->shape[1]};
    for (int d = 1; d < x->ndim - 1; d++) cshape[d] = 1;
    return ref_affine(c, nb_reshape(c, y, x->ndim, x->shape), w, b, x->ndim - 1, cshape);
}

/* ---- one op under test: fused or reference, with its settings -------------------------------- */
typedef enum { BN, BN_RELU, LN, GN } norm_kind;
typedef struct {
    norm_kind kind;
    int arg;                  /* layer norm: normalised axes; group norm: groups */
    nb_tensor *stats[2];      /* batch norm: running mean and variance, or NULL */
    bool reference;           /* the composite instead of the primitive */
} norm_case;

static nb_tensor *norm_f(nb_ctx *c, nb_tensor *const *in, void *u) {
    const norm_case *k = u;
    nb_tensor *rm = k->stats[0], *rv = k->stats[1], *w = in[1], *b = in[2];
    if (k->reference) switch (k->kind) {
        case BN: return ref_batch_norm(c, in[0], w, b, rm, rv, 0.1, 1e-5);
        case BN_RELU: return nb_relu(c, ref_batch_norm(c, in[0], w, b, rm, rv, 0.1, 1e-5));
        case LN: return ref_layer_norm(c, in[0], k->arg, w, b, 1e-5);
        case GN: return ref_group_norm(c, in[0], k->arg, w, b, 1e-5);
        }
    switch (k->kind) {
    case BN: return nb_batch_norm(c, in[0], w, b, rm, rv, 0.1, 1e-5);
    case BN_RELU: return nb_batch_norm_relu(c, in[0], w, b, rm, rv, 0.1, 1e-5);
    case LN: return nb_layer_norm(c, in[0], k->arg, w, b, 1e-5);
    case GN: return nb_group_norm(c, in[0], k->arg, w, b, 1e-5);
    }
    return NULL;
}

/* the shapes of a case: x, and the affine parameters (per channel, or layer norm's axes) */
typedef struct {
    norm_kind kind;
    int arg;
    int ndim;
    int64_t x[4];
    bool train, running;
} shape_case;

static const shape_case CASES[] = {
    {BN, 0, 4, {4, 3, 5, 6}, true, true},  {BN, 0, 2, {7, 5}, true, true},     {BN, 0, 3, {3, 4, 9}, true, false},
    {BN, 0, 4, {4, 3, 5, 6}, false, true}, {BN, 0, 4, {2, 3, 4, 4}, false, false},
    {BN_RELU, 0, 4, {4, 3, 5, 6}, true, true}, {BN_RELU, 0, 2, {7, 5}, false, true},
    {LN, 1, 2, {6, 11}, true, false},      {LN, 2, 3, {3, 4, 5}, true, false}, {LN, 3, 4, {2, 3, 2, 5}, true, false},
    {GN, 2, 4, {3, 4, 5, 3}, true, false}, {GN, 3, 3, {2, 6, 7}, true, false}, {GN, 5, 4, {2, 5, 3, 3}, true, false},
    {GN, 1, 2, {4, 6}, true, false},
};

/* the parameter shape of a case */
static int param_shape(const shape_case *s, int64_t *shape) {
    if (s->kind != LN) {
        shape[0] = s->x[1];
        return 1;
    }
    for (int i = 0; i < s->arg; i++) shape[i] = s->x[s->ndim - s->arg + i];
    return s->arg;
}

/* an f64 leaf of this layout with the values of `vals` (a contiguous f64 tensor), as dtype */
static nb_tensor *leaf_as(nb_tensor *vals, test_layout lay, nb_dtype dt) {
    nb_tensor *t = test_leaf(ctx, vals->ndim, vals->shape, lay, DOM_ANY);
    nb_requires_grad(t, false);
    for (int64_t i = 0; i < t->numel; i++) nb_set(t, i, nb_get(vals, i));
    if (dt == NB_F32) t = nb_cast(ctx, t, NB_F32);
    cr_assert_eq(nb_requires_grad(t, true), NB_OK, "%s", nb_last_error());
    return t;
}

static void assert_close_all(const nb_tensor *got, const nb_tensor *want, double tol, const char *what, int k) {
    cr_assert_not_null(got, "case %d %s: NULL (%s)", k, what, nb_ctx_error(ctx));
    cr_assert_not_null(want, "case %d %s: reference NULL (%s)", k, what, nb_ctx_error(ctx));
    cr_assert(nb_same_shape(got, want), "case %d %s: shapes differ", k, what);
    for (int64_t i = 0; i < got->numel; i++) {
        const double a = nb_get(got, i), b = nb_get(want, i);
        cr_assert(fabs(a - b) <= tol * (1 + fabs(b)), "case %d %s, element %lld: %.17g, reference %.17g", k, what,
                  (long long)i, a, b);
    }
}

/* y, then the gradients of sum(y * r) for x, w, b, of the primitive and of the composite */
static void compare_case(int k, const shape_case *s, test_layout lay, nb_dtype dt, double tol) {
    nb_ctx_set_train(ctx, s->train);
    int64_t ps[4];
    const int pn = param_shape(s, ps);
    nb_tensor *vals[3] = {nb_randn(ctx, NB_F64, s->ndim, s->x), nb_randn(ctx, NB_F64, pn, ps), nb_randn(ctx, NB_F64, pn, ps)};
    nb_tensor *in[3];
    for (int i = 0; i < 3; i++) in[i] = leaf_as(vals[i], i == 0 ? lay : LAYOUT_SLICE, dt);
    nb_tensor *stats[2][2] = {{NULL, NULL}, {NULL, NULL}};
    for (int r = 0; r < 2 && s->running; r++) {
        stats[r][0] = nb_full(ctx, dt, NB_SHAPE(s->x[1]), 0.3);
        stats[r][1] = nb_full(ctx, dt, NB_SHAPE(s->x[1]), 1.7);
    }
    norm_case fused = {s->kind, s->arg, {stats[0][0], stats[0][1]}, false};
    norm_case ref = {s->kind, s->arg, {stats[1][0], stats[1][1]}, true};
    nb_tensor *y = norm_f(ctx, in, &fused), *yr = norm_f(ctx, in, &ref);
    assert_close_all(y, yr, tol, "output", k);
    for (int r = 0; r < 2 && s->running; r++) assert_close_all(stats[0][r], stats[1][r], tol, "running statistics", k);
    nb_tensor *gout = nb_cast(ctx, nb_randn(ctx, NB_F64, y->ndim, y->shape), dt), *g[3], *gr[3];
    cr_assert_eq(nb_grad(ctx, 1, &y, &gout, 3, in, g, false), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_grad(ctx, 1, &yr, &gout, 3, in, gr, false), NB_OK, "%s", nb_ctx_error(ctx));
    const char *names[3] = {"gradient of x", "gradient of weight", "gradient of bias"};
    for (int i = 0; i < 3; i++) assert_close_all(g[i], gr[i], tol, names[i], k);
    nb_ctx_set_train(ctx, true);
}

Test(norm, fused_ops_equal_the_composite_in_f64_and_f32) {
    const test_layout lays[3] = {LAYOUT_CONTIG, LAYOUT_T, LAYOUT_SLICE};
    for (int k = 0; k < (int)(sizeof CASES / sizeof *CASES); k++)
        for (int l = 0; l < 3; l++) {
            nb_mark m = nb_ctx_mark(ctx);
            compare_case(k, &CASES[k], lays[l], NB_F64, 1e-12);
            compare_case(k, &CASES[k], lays[l], NB_F32, 1e-5);
            nb_ctx_release(ctx, m);
        }
}

/* Outputs exactly 0 (x at its channel's mean, bias 0): the ReLU passes no gradient there, in the
 * fused backward (which finds y > 0 again from x) as in the composite. */
Test(norm, relu_at_exact_zeros_matches_the_composite) {
    for (int d = 0; d < 2; d++) {
        const nb_dtype dt = d ? NB_F32 : NB_F64;
        double xs[24];
        for (int i = 0; i < 24; i++) xs[i] = (double)(i % 3) - 1.0; /* -1, 0, 1 in every channel of every sample */
        nb_tensor *x = nb_cast(ctx, test_from(ctx, xs, NB_SHAPE(4, 2, 3)), dt), *w = nb_full(ctx, dt, NB_SHAPE(2), 1.5);
        nb_requires_grad(x, true);
        nb_requires_grad(w, true);
        nb_tensor *in[3] = {x, w, NULL}, *g[2], *gr[2];
        norm_case fused = {BN_RELU, 0, {NULL, NULL}, false}, ref = {BN_RELU, 0, {NULL, NULL}, true};
        nb_tensor *y = norm_f(ctx, in, &fused), *yr = norm_f(ctx, in, &ref);
        int zeros = 0;
        for (int64_t i = 0; i < y->numel; i++) zeros += nb_get(y, i) == 0;
        cr_assert_eq(zeros, 16, "outputs at 0: %d", zeros); /* the -1s and the exact 0s */
        nb_tensor *gout = nb_cast(ctx, nb_randn(ctx, NB_F64, 3, y->shape), dt);
        cr_assert_eq(nb_grad(ctx, 1, &y, &gout, 2, in, g, false), NB_OK, "%s", nb_ctx_error(ctx));
        cr_assert_eq(nb_grad(ctx, 1, &yr, &gout, 2, in, gr, false), NB_OK, "%s", nb_ctx_error(ctx));
        for (int i = 0; i < 2; i++) assert_close_all(g[i], gr[i], d ? 1e-5 : 1e-12, "gradient", i);
    }
}

/* gradcheck + gradgradcheck in f64, contiguous and strided x (the registry adds broadcast) */
Test(norm, gradients_and_second_derivatives) {
    const test_layout lays[3] = {LAYOUT_CONTIG, LAYOUT_T, LAYOUT_SLICE};
    for (int k = 0; k < (int)(sizeof CASES / sizeof *CASES); k++)
        for (int l = 0; l < 3; l++) {
            const shape_case *s = &CASES[k];
            nb_mark m = nb_ctx_mark(ctx);
            nb_ctx_set_train(ctx, s->train);
            int64_t ps[4];
            const int pn = param_shape(s, ps);
            /* values away from the ReLU's kink: a bias of 0.5 moves the outputs off 0 */
            nb_tensor *in[3] = {test_leaf(ctx, s->ndim, s->x, lays[l], DOM_ANY), test_leaf(ctx, pn, ps, LAYOUT_CONTIG, DOM_AWAY0),
                                test_leaf(ctx, pn, ps, LAYOUT_SLICE, DOM_ANY)};
            nb_tensor *stats[2] = {NULL, NULL};
            if (s->running) stats[0] = nb_full(ctx, NB_F64, NB_SHAPE(s->x[1]), 0.3), stats[1] = nb_full(ctx, NB_F64, NB_SHAPE(s->x[1]), 1.7);
            norm_case c = {s->kind, s->arg, {stats[0], stats[1]}, false};
            char what[64];
            snprintf(what, sizeof what, "case %d, layout %d", k, l);
            check_grads_in(ctx, norm_f, 3, in, &c, true, what);
            nb_ctx_set_train(ctx, true);
            nb_ctx_release(ctx, m);
        }
}

/* a Hessian-vector product through the op (create_graph) equals the composite's */
Test(norm, second_derivatives_equal_the_composite) {
    for (int k = 0; k < (int)(sizeof CASES / sizeof *CASES); k++) {
        const shape_case *s = &CASES[k];
        nb_ctx_set_train(ctx, s->train);
        int64_t ps[4];
        const int pn = param_shape(s, ps);
        nb_tensor *in[3] = {rand_leaf(ctx, s->ndim, s->x), rand_leaf(ctx, pn, ps), rand_leaf(ctx, pn, ps)};
        nb_tensor *stats[2] = {NULL, NULL};
        if (s->running) stats[0] = nb_full(ctx, NB_F64, NB_SHAPE(s->x[1]), 0.3), stats[1] = nb_full(ctx, NB_F64, NB_SHAPE(s->x[1]), 1.7);
        nb_tensor *r = nb_randn(ctx, NB_F64, s->ndim, s->x), *v = nb_randn(ctx, NB_F64, s->ndim, s->x);
        nb_tensor *u = nb_randn(ctx, NB_F64, pn, ps), *hv[2][3];
        for (int ref = 0; ref < 2; ref++) {
            norm_case c = {s->kind, s->arg, {stats[0], stats[1]}, ref};
            nb_tensor *loss = nb_sum_all(ctx, nb_mul(ctx, norm_f(ctx, in, &c), r)), *g[2];
            cr_assert_eq(nb_grad(ctx, 1, &loss, NULL, 2, in, g, true), NB_OK, "%s", nb_ctx_error(ctx));
            nb_tensor *dot = nb_add(ctx, nb_sum_all(ctx, nb_mul(ctx, g[0], v)), nb_sum_all(ctx, nb_mul(ctx, g[1], u)));
            cr_assert_eq(nb_grad(ctx, 1, &dot, NULL, 3, in, hv[ref], false), NB_OK, "%s", nb_ctx_error(ctx));
        }
        for (int i = 0; i < 3; i++) assert_close_all(hv[0][i], hv[1][i], 1e-10, "Hessian-vector product", k);
        nb_ctx_set_train(ctx, true);
    }
}

/* outputs and gradients, with n threads, on sizes where the kernels split their work */
static void run_threads(int threads, const shape_case *s, nb_dtype dt, nb_tensor **out) {
    nb_set_num_threads(threads);
    nb_ctx_seed(ctx, 99);
    int64_t ps[4];
    const int pn = param_shape(s, ps);
    nb_tensor *vals[3] = {nb_randn(ctx, NB_F64, s->ndim, s->x), nb_randn(ctx, NB_F64, pn, ps), nb_randn(ctx, NB_F64, pn, ps)};
    nb_tensor *in[3];
    for (int i = 0; i < 3; i++) in[i] = leaf_as(vals[i], LAYOUT_CONTIG, dt);
    nb_tensor *rm = nb_zeros(ctx, NB_F64, NB_SHAPE(s->x[1])), *rv = nb_ones(ctx, NB_F64, NB_SHAPE(s->x[1]));
    norm_case c = {s->kind, s->arg, {s->running ? rm : NULL, s->running ? rv : NULL}, false};
    nb_tensor *y = norm_f(ctx, in, &c), *gout = nb_cast(ctx, nb_randn(ctx, NB_F64, y->ndim, y->shape), dt);
    cr_assert_eq(nb_grad(ctx, 1, &y, &gout, 3, in, out + 1, false), NB_OK, "%s", nb_ctx_error(ctx));
    out[0] = y;
    out[4] = rv;
}

Test(norm, same_bits_for_one_and_two_threads) {
    const shape_case big[] = {
        {BN, 0, 4, {16, 8, 20, 21}, true, true}, {BN, 0, 2, {1100, 40}, true, true}, {BN_RELU, 0, 4, {9, 8, 30, 17}, true, true},
        {GN, 4, 4, {6, 8, 31, 30}, true, false}, {LN, 1, 2, {300, 130}, true, false},
    };
    const int prev = nb_get_num_threads();
    const bool was_auto = nb_threads_auto();
    for (int k = 0; k < (int)(sizeof big / sizeof *big); k++)
        for (int d = 0; d < 2; d++) {
            nb_tensor *one[5], *two[5];
            run_threads(1, &big[k], d ? NB_F32 : NB_F64, one);
            run_threads(2, &big[k], d ? NB_F32 : NB_F64, two);
            for (int i = 0; i < 5; i++)
                for (int64_t j = 0; j < one[i]->numel; j++) {
                    const double a = nb_get(one[i], j), b = nb_get(two[i], j);
                    cr_assert(memcmp(&a, &b, sizeof a) == 0, "case %d (%s), tensor %d, element %lld: %.17g vs %.17g", k,
                              d ? "f32" : "f64", i, (long long)j, a, b);
                }
        }
    nb_set_num_threads(was_auto ? 0 : prev);
}

/* f32 data with a mean 10^4 times its spread: statistics summed around the first value in
 * double, so the f32 result agrees with f64 on the same values (a composite in f32 is off by
 * ~1e-3 here: its mean is rounded to 1e4 +- 5e-4). */
Test(norm, f32_is_accurate_for_a_large_mean) {
    nb_tensor *x64 = nb_affine(ctx, nb_randn(ctx, NB_F64, NB_SHAPE(16, 3, 8, 8)), 1.0, 1e4);
    nb_tensor *x32 = nb_cast(ctx, x64, NB_F32);
    x64 = nb_cast(ctx, x32, NB_F64); /* the same values */
    nb_tensor *xs[2] = {x32, x64}, *y[2][3];
    for (int i = 0; i < 2; i++) {
        y[i][0] = nb_batch_norm(ctx, xs[i], NULL, NULL, NULL, NULL, 0.1, 1e-5);
        y[i][1] = nb_group_norm(ctx, xs[i], 3, NULL, NULL, 1e-5);
        y[i][2] = nb_layer_norm(ctx, xs[i], 2, NULL, NULL, 1e-5);
    }
    for (int k = 0; k < 3; k++) assert_close_all(y[0][k], y[1][k], 2e-6, "f32 against f64", k);
}

/* The same for the gradients, through the f32 plane kernels (centred on the f32 rounding of the
 * mean, whose error goes into each plane's coefficients): batch norm + ReLU and group norm with
 * weight and bias, planes long enough for whole blocks of vectors and a tail. */
Test(norm, f32_gradients_are_accurate_for_a_large_mean) {
    const norm_kind kinds[2] = {BN_RELU, GN};
    for (int k = 0; k < 2; k++) {
        nb_tensor *x64 = nb_affine(ctx, nb_randn(ctx, NB_F64, NB_SHAPE(6, 4, 19, 21)), 1.0, 1e4);
        x64 = nb_cast(ctx, nb_cast(ctx, x64, NB_F32), NB_F64); /* values f32 can hold */
        nb_tensor *w64 = nb_affine(ctx, nb_randn(ctx, NB_F64, NB_SHAPE(4)), 0.3, 1.0), *b64 = nb_randn(ctx, NB_F64, NB_SHAPE(4));
        nb_tensor *gout = nb_randn(ctx, NB_F64, NB_SHAPE(6, 4, 19, 21)), *g[2][3];
        for (int d = 0; d < 2; d++) {
            const nb_dtype dt = d ? NB_F32 : NB_F64;
            nb_tensor *in[3] = {nb_cast(ctx, x64, dt), nb_cast(ctx, w64, dt), nb_cast(ctx, b64, dt)}, *go = nb_cast(ctx, gout, dt);
            for (int i = 0; i < 3; i++) nb_requires_grad(in[i], true);
            norm_case c = {kinds[k], 2, {NULL, NULL}, false};
            nb_tensor *y = norm_f(ctx, in, &c);
            cr_assert_eq(nb_grad(ctx, 1, &y, &go, 3, in, g[d], false), NB_OK, "%s", nb_ctx_error(ctx));
        }
        const char *names[3] = {"gradient of x", "gradient of weight", "gradient of bias"};
        for (int i = 0; i < 3; i++) assert_close_all(g[1][i], g[0][i], 1e-6, names[i], k);
    }
}

/* The forward keeps x, the parameters and per-channel statistics: one node, and arena use of
 * one output plus small vectors (the composite kept six tensors of x's size). */
Test(norm, forward_keeps_only_the_output_and_statistics) {
    nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(8, 16, 16, 16)), *w = nb_ones(ctx, NB_F32, NB_SHAPE(16));
    nb_requires_grad(x, true);
    nb_requires_grad(w, true);
    const size_t before = nb_ctx_bytes_used(ctx);
    const int64_t nodes = nb_ctx_nodes(ctx);
    nb_tensor *y = nb_batch_norm_relu(ctx, x, w, NULL, NULL, NULL, 0.1, 1e-5);
    cr_assert_not_null(y);
    cr_assert_eq(nb_ctx_nodes(ctx), nodes + 1);
    const size_t xbytes = (size_t)x->numel * sizeof(float);
    cr_assert_leq(nb_ctx_bytes_used(ctx) - before, xbytes + 16384, "%zu bytes for a %zu-byte input",
                  nb_ctx_bytes_used(ctx) - before, xbytes);
}

Test(norm, batch_norm_layer_fuses_the_relu_when_asked) {
    nb_params *ps = nb_params_new();
    nb_batch_norm_layer l[2];
    cr_assert_eq(nb_batch_norm_layer_init(&l[0], ps, "a", 3), NB_OK);
    cr_assert_eq(nb_batch_norm_layer_init(&l[1], ps, "b", 3), NB_OK);
    cr_assert(!l[1].relu);
    l[1].relu = true;
    nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(4, 3, 5, 5));
    nb_tensor *want = nb_relu(ctx, nb_batch_norm_layer_forward(ctx, &l[0], x));
    nb_tensor *got = nb_batch_norm_layer_forward(ctx, &l[1], x);
    for (int64_t i = 0; i < x->numel; i++) cr_assert_eq(nb_get(got, i), nb_get(want, i), "element %lld", (long long)i);
    for (int64_t c = 0; c < 3; c++) cr_assert_eq(nb_get(l[1].running_var, c), nb_get(l[0].running_var, c));
    cr_assert_neq(nb_get(l[1].running_var, 0), 1.0); /* updated: 0.9 + 0.1 * var */
    nb_batch_norm_layer_free(&l[0]);
    nb_batch_norm_layer_free(&l[1]);
    nb_params_free(ps);
}

Test(norm, errors) {
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(4, 3, 2, 2));
    ASSERT_ERROR(ctx, nb_batch_norm(ctx, x, nb_ones(ctx, NB_F32, NB_SHAPE(4)), NULL, NULL, NULL, 0.1, 1e-5), NB_ERR_SHAPE,
                 "batch_norm", "weight (4)", "(4,3,2,2)");
    ASSERT_ERROR(ctx, nb_batch_norm_relu(ctx, x, NULL, nb_ones(ctx, NB_F64, NB_SHAPE(3)), NULL, NULL, 0.1, 1e-5), NB_ERR_DTYPE,
                 "batch_norm_relu", "bias is f64");
    ASSERT_ERROR(ctx, nb_batch_norm(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(1, 3)), NULL, NULL, NULL, NULL, 0.1, 1e-5), NB_ERR_SHAPE,
                 "(1,3)", "more than 1");
    ASSERT_ERROR(ctx, nb_batch_norm(ctx, x, NULL, NULL, nb_zeros(ctx, NB_F32, NB_SHAPE(3)), NULL, 0.1, 1e-5), NB_ERR_NULL,
                 "batch_norm", "both running_mean and running_var");
    ASSERT_ERROR(ctx, nb_group_norm(ctx, x, 2, NULL, NULL, 1e-5), NB_ERR_VALUE, "groups 2", "(4,3,2,2)");
    ASSERT_ERROR(ctx, nb_layer_norm(ctx, x, 1, nb_ones(ctx, NB_F32, NB_SHAPE(3)), NULL, 1e-5), NB_ERR_SHAPE, "layer_norm", "(3)",
                 "(4,3,2,2)");
    ASSERT_ERROR(ctx, nb_layer_norm(ctx, nb_zeros(ctx, NB_I64, NB_SHAPE(2, 3)), 1, NULL, NULL, 1e-5), NB_ERR_DTYPE, "layer_norm",
                 "i64");
}

/* empty batches and groups: no statistics to take, no crash */
Test(norm, empty_inputs) {
    nb_tensor *y = nb_layer_norm(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(0, 4)), 1, NULL, NULL, 1e-5);
    cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
    cr_assert_eq(y->numel, 0);
    y = nb_group_norm(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(2, 4, 0)), 2, NULL, NULL, 1e-5);
    cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
    cr_assert_eq(y->numel, 0);
}

/* Nothing to normalise (a dimension of 0): the output is empty, so the gradients of weight and
 * bias are 0. The fused backward left them unwritten (-inf, NaN, stale memory) and batch norm
 * in eval mode failed under create_graph. */
Test(norm, empty_inputs_have_zero_gradients) {
    nb_ctx *c = nb_ctx_new();
    for (int k = 0; k < 6; k++) {
        const nb_dtype dt = k % 2 ? NB_F64 : NB_F32;
        const bool create = k >= 4;
        nb_ctx_reset(c);
        nb_tensor *x = nb_zeros(c, dt, NB_SHAPE(2, 4, 0)), *w = nb_ones(c, dt, NB_SHAPE(4)), *b = nb_zeros(c, dt, NB_SHAPE(4));
        nb_tensor *rm = nb_zeros(c, NB_F64, NB_SHAPE(4)), *rv = nb_ones(c, NB_F64, NB_SHAPE(4));
        nb_requires_grad(x, true), nb_requires_grad(w, true), nb_requires_grad(b, true);
        nb_ctx_set_train(c, k < 2);
        nb_tensor *y = k < 2 ? nb_group_norm(c, x, 2, w, b, 1e-5) : nb_batch_norm(c, x, w, b, rm, rv, 0.1, 1e-5);
        nb_tensor *gs[2], *wb[2] = {w, b};
        cr_assert_eq(nb_grad(c, 1, (nb_tensor *[]){nb_sum_all(c, y)}, NULL, 2, wb, gs, create), NB_OK, "case %d: %s", k,
                     nb_ctx_error(c));
        for (int j = 0; j < 2; j++)
            for (int64_t i = 0; i < 4; i++) cr_assert_eq(nb_get(gs[j], i), 0.0, "case %d grad %d[%lld]", k, j, (long long)i);
    }
    nb_ctx_free(c);
}
