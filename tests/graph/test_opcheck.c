/* nb_opcheck (src/graph/opcheck.c): a correct op passes, and each property catches the op
 * that breaks it, naming the property. */
#include "common.h"

TestSuite(opcheck, .init = ctx_setup, .fini = ctx_teardown);

static bool two_shapes(int k, int n_in, int *ndim, int64_t shape[][NB_MAX_DIMS], void *user) {
    (void)user;
    if (k < 0 || k > 1) return false;
    for (int i = 0; i < n_in; i++) ndim[i] = 2, shape[i][0] = 3 + k, shape[i][1] = 4;
    return true;
}
static bool with_bad_case(int k, int n_in, int *ndim, int64_t shape[][NB_MAX_DIMS], void *user) {
    if (k == -1) {
        for (int i = 0; i < n_in; i++) ndim[i] = 1, shape[i][0] = 5;
        return true;
    }
    return two_shapes(k, n_in, ndim, shape, user);
}

static nb_tensor *softsign_mul(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_mul(c, nb_softsign(c, in[0]), in[1]);
}

static nb_opcheck_def def_of(const char *name, nb_fn f, int n_in) {
    return (nb_opcheck_def){.name = name, .f = f, .n_in = n_in, .shapes = two_shapes, .lo = 0.2, .hi = 1.5,
                            .smooth = true, .check_nan = true};
}

Test(opcheck, a_correct_op_passes_every_property) {
    nb_opcheck_def d = def_of("softsign_mul", softsign_mul, 2);
    nb_opcheck_report r;
    cr_assert_eq(nb_opcheck(ctx, &d, &r), NB_OK, "%s: %s", r.property, r.message);
    /* 2 cases x 4 layouts of gradients, 2 f32, 2 threads, nan, arena */
    cr_assert_geq(r.checks, 13, "%d checks", r.checks);
    cr_assert(r.ok && strstr(r.message, "ok"));
}

/* gradcheck: a custom op whose backward forgets a factor 2 */
static nb_status twice_bad_bw(nb_ctx *c, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    (void)n;
    gin[0] = g;
    return nb_ctx_status(c);
}
static const nb_op TWICE_BAD = {"twice", twice_bad_bw, NB_DIFFERENTIABLE};
static nb_tensor *twice(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_tensor *y = nb_empty(c, in[0]->dtype, in[0]->ndim, in[0]->shape);
    for (int64_t i = 0; i < y->numel; i++) nb_set(y, i, 2 * nb_get(in[0], i));
    nb_record(c, &TWICE_BAD, y, 1, in);
    return y;
}
/* f32: the f32 path computes something else */
static nb_tensor *f32_differs(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_mul_scalar(c, in[0], in[0]->dtype == NB_F32 ? 1.01 : 1.0);
}
/* threads: the value depends on the thread count */
static nb_tensor *thread_dependent(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_add_scalar(c, in[0], 1e-9 * nb_get_num_threads());
}
/* nan: NaN replaced by 0 */
static nb_tensor *nan_eater(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_where(c, nb_eq(c, in[0], in[0]), in[0], nb_zeros_like(c, in[0]));
}
/* bad_shape: accepts anything / refuses with a message that does not name it */
static nb_tensor *accepts_anything(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_exp(c, in[0]);
}
static nb_tensor *anonymous_error(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    if (in[0]->ndim != 2) return nb_ctx_fail(c, NB_ERR_SHAPE, "oops");
    return nb_exp(c, in[0]);
}
/* arena: every call keeps more than the last */
static int grow_calls;
static nb_tensor *grows(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    int64_t n = 1000 * ++grow_calls;
    if (!nb_zeros(c, NB_F64, 1, &n)) return NULL;
    return nb_exp(c, in[0]);
}

/* gradgradcheck: y = x^2 whose backward 2 g detach(x) is right to first order only */
static nb_status detached_rule(nb_ctx *c, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_mul(c, g, nb_mul_scalar(c, nb_detach(c, n->in[0]), 2.0));
    return gin[0] ? NB_OK : nb_ctx_status(c);
}
static const nb_op DETACHED_SQ = {"detached_sq", detached_rule, NB_DIFFERENTIABLE};
static nb_tensor *detached_sq(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_tensor *x = in[0], *y = nb_empty(c, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    for (int64_t i = 0; i < x->numel; i++) nb_set(y, i, nb_get(x, i) * nb_get(x, i));
    if (!nb_record(c, &DETACHED_SQ, y, 1, &x) && nb_ctx_status(c) != NB_OK) return NULL;
    return y;
}

static void expect_failure(nb_opcheck_def d, const char *property, const char *in_message) {
    nb_opcheck_report r;
    cr_assert_eq(nb_opcheck(ctx, &d, &r), NB_ERR_NUMERIC, "%s passed opcheck", d.name);
    cr_assert_str_eq(r.property, property, "%s: failed %s (%s), expected %s", d.name, r.property, r.message, property);
    cr_assert(strstr(r.message, in_message), "%s: \"%s\" lacks \"%s\"", d.name, r.message, in_message);
    cr_assert(strstr(nb_last_error(), property), "%s", nb_last_error());
    cr_assert_eq(nb_ctx_status(ctx), NB_OK, "the context is usable after opcheck");
}

Test(opcheck, each_property_catches_its_defect) {
    expect_failure(def_of("twice", twice, 1), "gradcheck", "analytic");
    expect_failure(def_of("detached_sq", detached_sq, 1), "gradgradcheck", "second derivatives");
    expect_failure(def_of("f32_differs", f32_differs, 1), "f32", "in f32 and");
    expect_failure(def_of("thread_dependent", thread_dependent, 1), "threads", "differs between 1 and 2 threads");
    expect_failure(def_of("nan_eater", nan_eater, 1), "nan", "has none");
    nb_opcheck_def d = def_of("accepts_anything", accepts_anything, 1);
    d.shapes = with_bad_case;
    expect_failure(d, "bad_shape", "was accepted");
    d = def_of("anonymous_error", anonymous_error, 1);
    d.shapes = with_bad_case;
    expect_failure(d, "bad_shape", "does not name the op");
    expect_failure(def_of("grows", grows, 1), "arena", "repeated calls grow");
}

Test(opcheck, bad_definitions_are_refused) {
    nb_opcheck_def d = def_of("x", softsign_mul, 0);
    cr_assert_eq(nb_opcheck(ctx, &d, NULL), NB_ERR_VALUE);
    nb_ctx_clear_error(ctx);
    d = def_of("x", softsign_mul, 2);
    d.lo = d.hi = 1;
    cr_assert_eq(nb_opcheck(ctx, &d, NULL), NB_ERR_VALUE);
    nb_ctx_clear_error(ctx);
    cr_assert_eq(nb_opcheck(NULL, &d, NULL), NB_ERR_NULL);
    cr_assert_eq(nb_opcheck(ctx, NULL, NULL), NB_ERR_NULL);
    d = def_of("x", softsign_mul, 2);
    d.hi = INFINITY;
    cr_assert_eq(nb_opcheck(ctx, &d, NULL), NB_ERR_VALUE);
    d = def_of("", softsign_mul, 2);
    cr_assert_eq(nb_opcheck(ctx, &d, NULL), NB_ERR_VALUE);
    /* bad options leave the context alone: the next, correct call passes (it used to fail
     * "gradcheck" with the options' message) */
    cr_assert_eq(nb_ctx_status(ctx), NB_OK, "%s", nb_ctx_error(ctx));
    nb_opcheck_report r;
    d = def_of("softsign_mul", softsign_mul, 2);
    cr_assert_eq(nb_opcheck(ctx, &d, &r), NB_OK, "%s: %s", r.property, r.message);
    /* an earlier failure in the context is refused, not blamed on the op and then wiped */
    cr_assert_null(nb_matmul(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3)), nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3))));
    cr_assert_eq(nb_opcheck(ctx, &d, &r), NB_ERR_STATE);
    cr_assert(strstr(nb_last_error(), "earlier error") && strstr(nb_last_error(), "matmul"), "%s", nb_last_error());
    cr_assert_eq(nb_ctx_status(ctx), NB_ERR_SHAPE, "the earlier error is still there");
    nb_ctx_clear_error(ctx);
}

/* A generator that never returns false is stopped after NB_OPCHECK_MAX_CASES cases (it ran
 * forever), and says why. */
static bool endless_shapes(int k, int n_in, int *ndim, int64_t shape[][NB_MAX_DIMS], void *user) {
    (void)user;
    if (k < 0) return false;
    for (int i = 0; i < n_in; i++) ndim[i] = 1, shape[i][0] = 2;
    return true;
}

Test(opcheck, an_endless_shape_generator_is_stopped) {
    nb_opcheck_def d = def_of("softsign_mul", softsign_mul, 2);
    d.shapes = endless_shapes;
    nb_opcheck_report r;
    cr_assert_neq(nb_opcheck(ctx, &d, &r), NB_OK);
    cr_assert_str_eq(r.property, "shapes");
    cr_assert(strstr(r.message, "more than 256 cases"), "%s", r.message);
    nb_ctx_clear_error(ctx);
}

/* gradcheck of an expanded input (stride 0) moved every copy of the element it perturbed and
 * called a correct 2x op wrong: refused, naming the input and axis */
static nb_tensor *twice_x(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_mul_scalar(c, in[0], 2.0);
}

Test(opcheck, gradcheck_refuses_an_expanded_input_and_reports_ok) {
    nb_tensor *x = nb_rand(ctx, NB_F64, NB_SHAPE(3, 1));
    nb_tensor *e = nb_expand(ctx, x, NB_SHAPE(3, 4)), *c = nb_contiguous(ctx, e);
    cr_assert_eq(nb_requires_grad(e, true), NB_OK);
    cr_assert_eq(nb_gradcheck(ctx, twice_x, 1, &e, NULL, NULL, NULL), NB_ERR_VALUE);
    cr_assert(strstr(nb_ctx_error(ctx), "input 0 has stride 0 along axis 1"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_eq(nb_requires_grad(c, true), NB_OK);
    nb_gradcheck_report rep;
    cr_assert_eq(nb_gradcheck(ctx, twice_x, 1, &c, NULL, NULL, &rep), NB_OK, "%s", rep.message);
    cr_assert_str_eq(rep.message, "gradcheck: ok");
    cr_assert_eq(nb_gradgradcheck(ctx, twice_x, 1, &c, NULL, NULL, &rep), NB_OK, "%s", rep.message);
    cr_assert_str_eq(rep.message, "gradgradcheck: ok");
}
